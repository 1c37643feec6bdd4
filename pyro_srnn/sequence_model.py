"""The one interface between a sequence model of piano rolls and everything that trains, scores and samples it.

Training (:mod:`pyro_srnn.train`, :mod:`pyro_srnn.step`), evaluation (:mod:`pyro_srnn.evaluate`: the ELBO, the
IWAE bound, per piece, active units), sampling (:mod:`pyro_srnn.sample`: priming, temperature, ``--music``),
checkpoints, reports, sweeps and the Python API hold a :class:`SequenceModel` and call only what it declares
here. A model writes a Pyro ``model`` and ``guide`` over a :class:`Batch`, one generative step, and the state
it carries from one chunk of a stream to the next; :func:`pyro_srnn.models.build_model` makes the one a
configuration names. The SRNN (:mod:`pyro_srnn.model`, with its RNN and NADE variants) and the TSBN
(:mod:`pyro_srnn.tsbn`) are the two implementations.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .config import SRNNConfig


@dataclass
class Batch:
    """B sequences of T frames. Padding sits at the end of each row and is masked out."""

    x: torch.Tensor  # (B, T, 88) observed frames, float 0/1
    u: torch.Tensor  # (B, T, 88) inputs: u_t = x_{t-1}
    mask: torch.Tensor  # (B, T) bool, True on real frames
    state: tuple  # the model's state before the first frame, each (B, ...): zeros, or carried from the last chunk

    @property
    def size(self) -> int:
        return self.x.shape[0]

    @property
    def steps(self) -> int:
        return self.x.shape[1]

    @property
    def frames(self) -> torch.Tensor:
        return self.mask.sum()

    def _map(self, fn) -> "Batch":
        return Batch(fn(self.x), fn(self.u), fn(self.mask), tuple(fn(s) for s in self.state))

    def repeated(self, copies: int) -> "Batch":
        """Every sequence ``copies`` times in a row (the particles of importance-weighted training)."""
        return self if copies == 1 else self._map(lambda t: t.repeat_interleave(copies, 0))

    def to(self, device) -> "Batch":
        return self._map(lambda t: t.to(device))


class SequenceModel(nn.Module):
    """A generative model p(x | u) of piano-roll frames with its inference network, as Pyro programs.

    A subclass sets ``name`` (its ``SRNNConfig.model``) and writes :meth:`initial_state`, :meth:`model`,
    :meth:`guide` and :meth:`generate`; the rest has defaults. Its latent sample sites carry the same names in
    model and guide, and each observed site is a log-likelihood of frames; the ELBO's terms are then read
    from the traces by :func:`pyro_srnn.elbo.sequence_terms`, whatever the distributions.
    """

    name: str = ""
    # The departures from ancestral sampling it takes (pyro_srnn.sample.Controls' fields); others are refused.
    sampling_controls: tuple = ("temperature", "burn_in")

    def __init__(self, config: SRNNConfig):
        super().__init__()
        self.config = config

    # -- what a subclass writes

    def initial_state(self, n: int, device="cpu") -> tuple:
        """The state before a stream's first frame, for ``n`` streams: a tuple of tensors, each (n, ...)."""
        raise NotImplementedError

    def model(self, batch: Batch, kl_scale: float = 1.0, shared=None):
        """p(x, latents | u), with the latent sites' log-densities scaled by ``kl_scale`` (KL annealing)."""
        raise NotImplementedError

    def guide(self, batch: Batch, kl_scale: float = 1.0, shared=None) -> tuple:
        """q(latents | x, u). Returns the state after the batch's last frame (the next chunk's initial state)."""
        raise NotImplementedError

    def generate(self, u: torch.Tensor, state: tuple, temperature: float = 1.0, z_scale: float = 1.0):
        """One step of the generative model from the input frame u_t (the previous frame) and the state:
        returns (state, x_t). ``temperature`` divides the emission's logits."""
        raise NotImplementedError

    # -- defaults a subclass may override

    def prepare(self, batch: Batch):
        """What model and guide share for one batch (computed once, passed to both as ``shared``); None."""
        return None

    @property
    def exact(self) -> bool:
        """Whether the model has no latent variables, so that its ELBO is the exact log-likelihood."""
        return False

    @property
    def pretrain_updates(self) -> int:
        """The updates :meth:`pretrain` reports to ``on_step`` (0: none worth a progress bar)."""
        return 0

    def pretrain(self, frames, on_step=None) -> float | None:
        """Before the first update: start a part of the model from the training frames (an array (n, 88)),
        deterministically. Returns its final score per frame, if it has one; the default does nothing."""
        return None

    @classmethod
    def activation_floats_per_frame(cls, config: SRNNConfig) -> int:
        """About how many floats one frame of a training chunk keeps for the backward pass (pyro_srnn.memory)."""
        return 40 * config.z + 10 * config.x_dim

    def forward(self, batch: Batch, elbo, kl_scale: float = 1.0, guide=None):
        """The training objective: minus the (KL-annealed) ELBO per frame of the batch, as the ``elbo`` (one of
        :mod:`pyro_srnn.elbo`'s, via make_elbo) computes it, with :meth:`prepare`'s shared part computed once
        for model and guide. ``guide`` may wrap this model's own to read what it returns. Being the module's
        forward lets DistributedDataParallel see the whole step."""
        frames = batch.frames
        batch = batch.repeated(elbo.particles)  # an importance-weighted bound's K particles (else 1)
        return elbo.differentiable_loss(self.model, guide or self.guide, batch, kl_scale,
                                        self.prepare(batch)) / frames
