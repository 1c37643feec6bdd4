"""The optimiser step of training (R3, R4): Adam, and one SVI step with the gradient rescaled and clipped."""
from __future__ import annotations

import math

import pyro
import torch

from .config import SRNNConfig
from .sequence_model import SequenceModel


def svi_step(model: SequenceModel, elbo, optimizer, config: SRNNConfig, batch, temperature: float = 1.0,
             parallel=None):
    """One SVI step on a chunk: Pyro's ELBO, its gradient rescaled to total norm <= max_grad_norm and
    clipped element-wise (pyro.optim clips per parameter, so the update is written out here); no update
    when the gradient is not finite. ``parallel`` is the DistributedDataParallel wrapper of ``model`` when
    training on several processes. Returns the loss per frame, the ELBO's terms summed over the batch
    (reconstruction, KL without the temperature), the detached state to carry (what the guide returned), and
    the gradient norm before rescaling."""
    carried = {}
    model.train()  # after an evaluation: cuDNN's GRU has no backward pass in eval mode

    def guide(*args):
        carried["state"] = model.guide(*args)

    with pyro.validation_enabled(False):  # the data were checked when read; this is the hot path
        loss = (parallel or model)(batch, elbo, temperature, guide=guide)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    grad_norm = float(clip_gradients(model, config))
    if math.isfinite(grad_norm):
        optimizer.step()
    terms = elbo.last_terms  # the terms the loss was built from
    state = elbo.carried(carried["state"])
    return loss.item(), (float(terms.reconstruction.sum()), float(terms.kl.sum())), \
        tuple(s.detach() for s in state), grad_norm


def clip_gradients(model: SequenceModel, config: SRNNConfig) -> torch.Tensor:
    """Rescale the gradient to total norm <= max_grad_norm, then clip it element-wise (R4), on the device;
    returns the norm before rescaling as a tensor (no host synchronisation, so a CUDA graph can hold it)."""
    params = [p for p in model.parameters() if p.grad is not None]
    grad_norm = torch.nn.utils.clip_grad_norm_(params, config.max_grad_norm)
    torch.nn.utils.clip_grad_value_(params, config.grad_clip_value)
    return grad_norm


def make_optimizer(model: SequenceModel, config: SRNNConfig) -> torch.optim.Optimizer:
    return torch.optim.Adam(model.parameters(), lr=config.lr, betas=config.adam_betas, eps=config.adam_eps,
                            weight_decay=config.weight_decay, decoupled_weight_decay=True)
