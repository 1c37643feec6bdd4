"""The SRNN's z-chain as one fused autograd function: the guide's T reparameterised draws and the four MLPs of
every step (M3, M6).

Written with autograd, each of the T steps keeps a dozen small tensors and its backward pass computes every
weight's gradient from its own 16 rows, T products summed. Here the forward pass runs the T steps in one loop
keeping what the backward needs; the backward walks the steps in reverse carrying only the gradient of the
recurrent state, keeps each step's gradient of the pre-activations, and computes the weight gradients after
the loop as one product over all T x B rows (cuDNN's scheme for RNNs). The forward arithmetic is the step-by-step
code's, operation for operation (:meth:`pyro_srnn.model.Paths.posterior_step` with ``Normal.rsample``), so
values and draws are those of the step-by-step code for the same noise; the gradients agree to float rounding
(tests/test_fused.py). The same scheme for the GRUs measured slower than PyTorch's own (benchmarks/gru.py).

    pre_t   = C_t + z_{t-1} W_z                     C_t: the d_t and a_t parts of the four first layers
    h_t     = f(pre_t)                              (B, 4 hidden): prior mean, prior log-variance, posterior
    o_t     = h_t W_out + b_out                     mean offset, posterior log-variance, each hidden wide
    mu_q    = o_t[0] + o_t[2] (residual) or o_t[2]
    z_t     = mu_q + eps_t * sqrt(exp(o_t[3]) + floor)
"""
from __future__ import annotations

import torch


def clipped_leaky_relu(x: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
    """f(x) = clip(leaky_relu(x, slope 1/3), -3, 3), the paper's nonlinearity (here beside its backward pass)."""
    return torch.clamp(torch.nn.functional.leaky_relu(x, 1.0 / 3.0), -3.0, 3.0, out=out)


def _clipped_leaky_relu_backward(grad: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """dL/dpre from dL/dh, h = f(pre), read off h alone: clamp passes the gradient inside (-3, 3) (autograd's
    clamp also at exactly -3 and 3, a set of measure zero), leaky_relu scales it by 1 where h > 0, else 1/3."""
    inside = torch.ops.aten.hardtanh_backward(grad, h, -3.0, 3.0)
    return torch.ops.aten.leaky_relu_backward(inside, h, 1.0 / 3.0, False)


class FusedChain(torch.autograd.Function):
    """Inputs: C (T, B, 4 hidden), W_z (z, 4 hidden), W_out (4, hidden, z), b_out (4, 1, z), z_0 (B, z), the
    standard normal noise eps (T, B, z), ``residual``, the variance floor. Outputs: z (T, B, z) and
    o (T, 4, B, z), the four MLPs' outputs [mu_p, lv_p, dmu_q, lv_q] of every step."""

    @staticmethod
    def forward(ctx, first_c, w_z, w_out, b_out, z0, eps, residual: bool, floor: float):
        steps, size, _ = first_c.shape
        hidden, z_dim = w_out.shape[1], w_out.shape[2]
        hs = first_c.new_empty(first_c.shape)  # contiguous, whatever the layout of first_c
        out = first_c.new_empty(steps, 4, size, z_dim)
        zs = first_c.new_empty(steps, size, z_dim)
        sd_q = first_c.new_empty(steps, size, z_dim)
        z_prev = z0
        for t in range(steps):
            h = clipped_leaky_relu(first_c[t] + z_prev @ w_z, out=hs[t])
            torch.baddbmm(b_out, h.view(size, 4, hidden).transpose(0, 1), w_out, out=out[t])
            mu_p, _, dmu_q, lv_q = out[t]
            mu_q = mu_p + dmu_q if residual else dmu_q
            torch.sqrt(lv_q.exp() + floor, out=sd_q[t])
            torch.add(mu_q, eps[t] * sd_q[t], out=zs[t])
            z_prev = zs[t]
        ctx.save_for_backward(hs, w_z, w_out, z0, eps, zs, sd_q, out)
        ctx.residual = residual
        return zs, out

    @staticmethod
    def backward(ctx, grad_zs, grad_out):
        hs, w_z, w_out, z0, eps, zs, sd_q, out = ctx.saved_tensors
        steps, size, width = hs.shape
        hidden, z_dim = w_out.shape[1], w_out.shape[2]
        grad_zs = torch.zeros_like(zs) if grad_zs is None else grad_zs
        # dL/do_t: the outputs' own uses (the sites' distributions) plus their use for z_t, added below
        grad_out = torch.zeros_like(out) if grad_out is None else grad_out.clone()
        grad_pre = torch.empty_like(hs)
        dz_dlv = eps * out[:, 3].exp() / (2 * sd_q)  # z_t = mu_q + eps_t sqrt(exp(lv_q) + floor)
        w_out_t, w_z_t = w_out.transpose(1, 2), w_z.t()
        carried = torch.zeros_like(z0)  # dL/dz_t through the steps after t
        for t in reversed(range(steps)):
            grad_z = grad_zs[t] + carried
            g = grad_out[t]
            g[2] += grad_z
            if ctx.residual:
                g[0] += grad_z
            g[3].addcmul_(grad_z, dz_dlv[t])
            grad_h = torch.bmm(g, w_out_t).transpose(0, 1).reshape(size, width)  # (B, 4 hidden)
            grad_pre[t] = _clipped_leaky_relu_backward(grad_h, hs[t])
            carried = grad_pre[t] @ w_z_t
        # the weights' gradients, each one product over all T x B rows
        rows = steps * size
        z_prevs = torch.cat([z0.unsqueeze(0), zs[:-1]]).reshape(rows, z_dim)
        grad_w_z = z_prevs.t() @ grad_pre.reshape(rows, width)
        h = hs.view(rows, 4, hidden).transpose(0, 1)  # (4, rows, hidden)
        grad_o = grad_out.transpose(0, 1).reshape(4, rows, z_dim)
        grad_w_out = torch.bmm(h.transpose(1, 2), grad_o)
        grad_b_out = grad_o.sum(1, keepdim=True)
        return grad_pre, grad_w_z, grad_w_out, grad_b_out, carried, None, None, None


def fused_chain(first_c, w_z, w_out, b_out, z0, eps, residual: bool, floor: float):
    """:class:`FusedChain` applied: (z, o) for all steps, as described there."""
    return FusedChain.apply(first_c, w_z, w_out, b_out, z0, eps, residual, floor)
