"""The optimiser step of training (R3, R4): Adam, and one SVI step with the gradient rescaled and clipped."""
from __future__ import annotations

import math

import pyro
import torch

from .config import SRNNConfig
from .model import SRNN


def svi_step(srnn: SRNN, elbo, optimizer, config: SRNNConfig, batch, temperature: float = 1.0, parallel=None):
    """One SVI step on a chunk: Pyro's ELBO, its gradient rescaled to total norm <= max_grad_norm and
    clipped element-wise (pyro.optim clips per parameter, so the update is written out here); no update
    when the gradient is not finite. ``parallel`` is the DistributedDataParallel wrapper of ``srnn`` when
    training on several processes. Returns the loss per frame, the ELBO's terms summed over the batch
    (reconstruction, KL without the temperature), the detached states (d_T, z_T) to carry, and the gradient
    norm before rescaling."""
    carried = {}
    srnn.train()  # after an evaluation: cuDNN's GRU has no backward pass in eval mode

    def guide(*args):
        carried["states"] = srnn.guide(*args)

    with pyro.validation_enabled(False):  # the data were checked when read; this is the hot path
        loss = (parallel or srnn)(batch, elbo, temperature, guide=guide)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    grad_norm = float(clip_gradients(srnn, config))
    if math.isfinite(grad_norm):
        optimizer.step()
    terms = elbo.last_terms  # the terms the loss was built from
    d_last, z_last = elbo.carried(carried["states"])
    return loss.item(), (float(terms.reconstruction.sum()), float(terms.kl.sum())), \
        (d_last.detach(), z_last.detach()), grad_norm


def clip_gradients(srnn: SRNN, config: SRNNConfig) -> torch.Tensor:
    """Rescale the gradient to total norm <= max_grad_norm, then clip it element-wise (R4), on the device;
    returns the norm before rescaling as a tensor (no host synchronisation, so a CUDA graph can hold it)."""
    params = [p for p in srnn.parameters() if p.grad is not None]
    grad_norm = torch.nn.utils.clip_grad_norm_(params, config.max_grad_norm)
    torch.nn.utils.clip_grad_value_(params, config.grad_clip_value)
    return grad_norm


def make_optimizer(srnn: SRNN, config: SRNNConfig) -> torch.optim.Optimizer:
    return torch.optim.Adam(srnn.parameters(), lr=config.lr, betas=config.adam_betas, eps=config.adam_eps,
                            weight_decay=config.weight_decay, decoupled_weight_decay=True)
