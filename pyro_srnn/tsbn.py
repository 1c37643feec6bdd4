"""The temporal sigmoid belief network (TSBN) of Gan, Li, Henao, Carlson and Carin (NIPS 2015), one hidden
layer, as Pyro's model and guide (docs/TSBN.md).

    (T1) p(h_t,j = 1 | h_{t-1}, v_{t-1})      = sigmoid(W1_j . h_{t-1} + W3_j . v_{t-1} + b_j)
    (T2) p(v_t,m = 1 | h_t, v_{t-1})          = sigmoid(W2_m . h_t + W4_m . v_{t-1} + c_m)
    (T3) q(h_t,j = 1 | h_{t-1}, v_t, v_{t-1}) = sigmoid(U1_j . h_{t-1} + U2_j . v_t + U3_j . v_{t-1} + d_j)

h_t in {0, 1}^J (J = config.z), h_0 = 0, v_0 = 0 (u_t = v_{t-1}, as the SRNN's input). The binary h_t have no
reparameterised gradient: the TSBN trains by the score function with TraceGraph_ELBO, whose learning signal
for h_t holds only the costs downstream of it (every site from step t on: hence one observed site per step),
minus a baseline: the NVIL network of Mnih and Gregor (2014), a small MLP of what h_t's guide distribution
sees and of the frames still to come in the chunk, trained by Pyro to regress the learning signal.
"""
from __future__ import annotations

import pyro
import pyro.distributions as dist
import torch
from pyro import poutine
from torch import nn

from .config import SRNNConfig
from .model import normal_init_
from .sequence_model import Batch, SequenceModel


class SigmoidBelief(nn.Module):
    """The logits of a sigmoid belief layer, p(y = 1 | s, v) = sigmoid(W_s s + W_v v + bias): s the previous or
    present hidden state, v the frames it also sees. W_v v depends on the data alone, so :meth:`frames_part`
    computes it for every step at once, and the time loop adds W_s s."""

    def __init__(self, state_dim: int, frames_dim: int, out_dim: int):
        super().__init__()
        self.state = nn.Linear(state_dim, out_dim, bias=False)
        self.frames = nn.Linear(frames_dim, out_dim)

    def frames_part(self, v: torch.Tensor):
        """W_v v + bias of every step, as a tuple of T tensors (B, out) (unbind: see GaussianMLPs.precompute)."""
        return self.frames(v).unbind(1)

    def forward(self, frames_part: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        return frames_part + self.state(s)


class Baseline(nn.Module):
    """NVIL's data-dependent baseline b(v_t, v_{t-1}, h_{t-1}, the frames after t): a one-hidden-layer MLP whose
    output, one number per sequence, Pyro subtracts from h_t's learning signal (and trains towards it). The
    signal sums the costs of every frame from t to the chunk's end, so what those frames hold (their number,
    and how often each key sounds in them) predicts most of it; they are data, not draws, so the baseline may
    see them and the gradient stays unbiased."""

    def __init__(self, in_dim: int, hidden: int):
        super().__init__()
        self.layer1 = nn.Linear(in_dim, hidden)
        self.out = nn.Linear(hidden, 1)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.out(torch.tanh(self.layer1(inputs))).squeeze(-1)


class TSBN(SequenceModel):
    """p(v, h | u) = prod_t p(v_t | h_t, v_{t-1}) p(h_t | h_{t-1}, v_{t-1}) and q(h | v, u) = prod_t q(h_t | h_{t-1},
    v_t, v_{t-1}); its state between chunks is (h_t,)."""

    name = "tsbn"

    def __init__(self, config: SRNNConfig):
        super().__init__(config)
        J, M = config.z, config.x_dim
        self.transition = SigmoidBelief(J, M, J)  # (T1): W1, W3, b
        self.emission = SigmoidBelief(J, M, M)  # (T2): W2, W4, c
        self.recognition = SigmoidBelief(J, 2 * M, J)  # (T3): U1, [U2 U3], d
        self.baseline = Baseline(3 * M + J + 1, config.baseline_hidden) if config.baseline_hidden else None
        for module in self.modules():  # small weights: every unit starts near p = 1/2, as in the paper's code
            if isinstance(module, nn.Linear):
                normal_init_(module.weight, 0.01)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    def pretrain(self, frames, on_step=None) -> None:
        """The emission's biases c start at the log-odds of each key in the training frames: from every key at
        p = 1/2 (61 nats per frame) the first hundreds of updates would go to learning which keys sound at all."""
        rate = torch.as_tensor(frames, dtype=torch.float64).mean(0).clamp(1e-4, 1 - 1e-4)
        with torch.no_grad():
            self.emission.frames.bias.copy_(torch.logit(rate).to(self.emission.frames.bias))

    def initial_state(self, n: int, device="cpu") -> tuple:
        """h_0 = 0."""
        return (torch.zeros(n, self.config.z, device=device),)

    @classmethod
    def activation_floats_per_frame(cls, config: SRNNConfig) -> int:
        return 12 * config.z + 12 * config.x_dim + 2 * config.baseline_hidden

    def model(self, batch: Batch, kl_scale: float = 1.0, shared=None):
        pyro.module("tsbn", self)
        transition_v = self.transition.frames_part(batch.u)  # W3 v_{t-1} + b, every step
        emission_v = self.emission.frames_part(batch.u)  # W4 v_{t-1} + c
        (h_prev,) = batch.state
        with pyro.plate("sequences", batch.size):
            for t in pyro.markov(range(batch.steps)):
                with poutine.mask(mask=batch.mask[:, t]):  # padding
                    with poutine.scale(scale=kl_scale):  # KL annealing on the h sites
                        h = pyro.sample(f"h_{t + 1}", dist.Bernoulli(
                            logits=self.transition(transition_v[t], h_prev)).to_event(1))  # (T1)
                    pyro.sample(f"x_{t + 1}", dist.Bernoulli(logits=self.emission(emission_v[t], h)).to_event(1),
                                obs=batch.x[:, t])  # (T2)
                h_prev = h

    def guide(self, batch: Batch, kl_scale: float = 1.0, shared=None) -> tuple:
        """Returns (h_T,)."""
        pyro.module("tsbn", self)
        seen = torch.cat([batch.x, batch.u], dim=-1)  # [v_t, v_{t-1}]
        recognition_v = self.recognition.frames_part(seen)  # U2 v_t + U3 v_{t-1} + d, every step
        real = batch.mask.to(batch.x.dtype)
        frames_left = real.flip(1).cumsum(1).flip(1)  # frames t..T of the chunk
        keys_after = (batch.x * real.unsqueeze(-1)).flip(1).cumsum(1).flip(1) - batch.x * real.unsqueeze(-1)
        (h_prev,) = batch.state
        with pyro.plate("sequences", batch.size):
            for t in pyro.markov(range(batch.steps)):
                logits = self.recognition(recognition_v[t], h_prev)  # (T3)
                with poutine.mask(mask=batch.mask[:, t]), poutine.scale(scale=kl_scale):
                    h = pyro.sample(f"h_{t + 1}", dist.Bernoulli(logits=logits).to_event(1),
                                    infer=self._baseline(seen[:, t], h_prev, frames_left[:, t], keys_after[:, t]))
                h_prev = h
        return (h_prev,)

    def _baseline(self, seen_t, h_prev, frames_left_t, keys_after_t) -> dict:
        """The site's baseline for TraceGraph_ELBO: the NVIL network's guess of its learning signal (none
        without a network). Its inputs are data and h_{t-1}, none downstream of h_t, so the gradient stays
        unbiased."""
        if self.baseline is None:
            return {}
        inputs = torch.cat([seen_t, h_prev, frames_left_t.unsqueeze(-1) / 100.0, keys_after_t / 100.0], dim=-1)
        return {"baseline": {"nn_baseline": self.baseline, "nn_baseline_input": inputs}}

    def generate(self, u: torch.Tensor, state: tuple, temperature: float = 1.0, z_scale: float = 1.0):
        """h_t ~ (T1), then v_t ~ (T2) with its logits divided by ``temperature``. Returns ((h_t,), v_t)."""
        (h_prev,) = state
        h = torch.bernoulli(torch.sigmoid(self.transition(self.transition.frames(u), h_prev)))
        logits = self.emission(self.emission.frames(u), h) / temperature
        return (h,), torch.bernoulli(torch.sigmoid(logits))
