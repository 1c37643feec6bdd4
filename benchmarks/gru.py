"""The fused-recurrence scheme of pyro_srnn.fused applied to a GRU, timed against PyTorch's own CPU GRU
(forward and backward, medians of interleaved repeats): ``python -m benchmarks.gru``. It measured slower
(docs/SPEED.md), so the SRNN keeps ``nn.GRU``; the function stays here, tested, for the record and for
other machines."""
import statistics
import sys
import time

import torch


class FusedGRU(torch.autograd.Function):
    """The recurrent part of a one-layer GRU (PyTorch's gate order r, z, n). Inputs: the input projections
    gi = x W_ih^T + b_ih of every step (T, B, 3H), W_hh (3H, H), b_hh (3H), h_0 (B, H). Output: h_1..h_T
    (T, B, H), with

        gh_t = h_{t-1} W_hh^T + b_hh,  r = sigmoid(gi_r + gh_r),  z = sigmoid(gi_z + gh_z),
        n = tanh(gi_n + r gh_n),  h_t = (h_{t-1} - n) z + n."""

    @staticmethod
    def forward(ctx, gi, w_hh, b_hh, h0):
        steps, size, width = gi.shape
        hidden = width // 3
        hs = gi.new_empty(steps, size, hidden)
        gates = gi.new_empty(steps, size, width)  # r, z and n of every step
        gh_n = gi.new_empty(steps, size, hidden)
        h = h0
        for t in range(steps):
            gh = torch.addmm(b_hh, h, w_hh.t())
            torch.sigmoid(gh[:, :2 * hidden] + gi[t, :, :2 * hidden], out=gates[t, :, :2 * hidden])
            r, z = gates[t, :, :hidden], gates[t, :, hidden:2 * hidden]
            gh_n[t] = gh[:, 2 * hidden:]
            n = torch.tanh(gi[t, :, 2 * hidden:] + gh_n[t] * r, out=gates[t, :, 2 * hidden:])
            torch.add((h - n) * z, n, out=hs[t])
            h = hs[t]
        ctx.save_for_backward(w_hh, h0, hs, gates, gh_n)
        return hs

    @staticmethod
    def backward(ctx, grad_hs):
        w_hh, h0, hs, gates, gh_n = ctx.saved_tensors
        steps, size, hidden = hs.shape
        h_prevs = torch.cat([h0.unsqueeze(0), hs[:-1]])
        grad_gi = torch.empty_like(gates)  # dL/d(gi_r, gi_z, gi_n) of every step
        grad_gh = torch.empty_like(gates)  # dL/d(gh_r, gh_z, gh_n)
        carried = torch.zeros_like(h0)  # dL/dh_t through the steps after t
        for t in reversed(range(steps)):
            grad_h = grad_hs[t] + carried
            r, z, n = gates[t].split(hidden, dim=-1)
            grad_pre_n = grad_h * (1 - z) * (1 - n * n)  # through n = tanh(pre_n)
            grad_r = grad_pre_n * gh_n[t]
            grad_gi[t, :, :hidden] = grad_r * r * (1 - r)
            grad_gi[t, :, hidden:2 * hidden] = grad_h * (h_prevs[t] - n) * z * (1 - z)
            grad_gi[t, :, 2 * hidden:] = grad_pre_n
            grad_gh[t, :, :2 * hidden] = grad_gi[t, :, :2 * hidden]
            torch.mul(grad_pre_n, r, out=grad_gh[t, :, 2 * hidden:])
            carried = torch.addmm(grad_h * z, grad_gh[t], w_hh)
        rows = steps * size
        grad_gh_rows = grad_gh.view(rows, 3 * hidden)
        grad_w_hh = grad_gh_rows.t() @ h_prevs.reshape(rows, hidden)
        return grad_gi, grad_w_hh, grad_gh_rows.sum(0), carried


def gru(module: torch.nn.GRU, inputs: torch.Tensor, h0: torch.Tensor) -> torch.Tensor:
    """The outputs (B, T, H) of a one-layer, batch-first ``nn.GRU`` over inputs (B, T, in) from h_0 (B, H):
    the input projections of all steps as one product, the recurrence fused (:class:`FusedGRU`). On a GPU the
    module itself runs (cuDNN fuses its recurrence already)."""
    if inputs.is_cuda:
        return module(inputs, h0.unsqueeze(0).contiguous())[0]
    gi = torch.nn.functional.linear(inputs, module.weight_ih_l0, module.bias_ih_l0)
    return FusedGRU.apply(gi.transpose(0, 1), module.weight_hh_l0, module.bias_hh_l0, h0).transpose(0, 1)


def main(repeats: int = 7):
    torch.set_flush_denormal(True)
    print(f"{'B':>3} {'T':>4} {'in':>4} {'H':>4} {'nn.GRU (ms)':>12} {'fused (ms)':>11} {'ratio':>6}")
    for size, steps, width, hidden in [(16, 100, 500, 300), (16, 100, 800, 300), (16, 100, 500, 30), (16, 100, 530, 30)]:
        torch.manual_seed(0)
        module = torch.nn.GRU(width, hidden, batch_first=True)
        inputs = torch.randn(size, steps, width, requires_grad=True)
        h0 = torch.zeros(size, hidden)
        candidates = {"nn.GRU": lambda: module(inputs, h0.unsqueeze(0))[0], "fused": lambda: gru(module, inputs, h0)}
        times = {name: [] for name in candidates}
        for name, fn in candidates.items():
            fn().sum().backward()
        for _ in range(repeats):
            for name, fn in candidates.items():
                started = time.perf_counter()
                fn().sum().backward()
                times[name].append(time.perf_counter() - started)
        own, fused = (statistics.median(times[n]) * 1000 for n in candidates)
        print(f"{size:>3} {steps:>4} {width:>4} {hidden:>4} {own:>12.1f} {fused:>11.1f} {own / fused:>6.2f}")


if __name__ == "__main__":
    main(*map(int, sys.argv[1:]))
