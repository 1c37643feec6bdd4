"""The SRNN of Fraccaro et al. (2016): its networks, and the Pyro model and guide (docs/MODEL.md).

    (M1) e(v)          = f(W2 f(W1 v + b1) + b2)                  shared embedding of u_t and x_t
    (M2) d_t           = GRU(d_{t-1}, e(u_t))                     deterministic path, u_t = x_{t-1}
    (M3) p(z_t | .)    = N(mu_p, exp(lv_p) + 1e-6), mu_p, lv_p = MLPs([d_t, z_{t-1}])
    (M4) p(x_t | .)    = Bernoulli(sigmoid(MLP([d_t, z_t])))         or, with emission "nade", a NADE whose
                                                                  biases b, c are MLP([d_t, z_t]) (RNN-NADE's)
    (M5) a_t           = backward GRU over [d_t, e(x_t)]          inference path
    (M6) q(z_t | .)    = N(mu_p + dmu_q, exp(lv_q) + 1e-6), dmu_q, lv_q = MLPs([a_t, z_{t-1}])
         f(x)          = clip(leaky_relu(x, 1/3), -3, 3)

With z = 0 the model is the RNN of Boulanger-Lewandowski et al. (2012), with a GRU: no latent layer, the
emission conditioned on d_t alone, and a guide that samples nothing, so the ELBO is the exact log-likelihood.

With ``dropout`` p > 0 (not in the paper), training drops units of e(.) and of the emission MLP's hidden layer,
the connections that do not recur; evaluation and sampling use the whole networks.
"""
from __future__ import annotations

import functools
import math

import pyro
import pyro.distributions as dist
import torch
import torch.nn.functional as F
from pyro import poutine
from pyro.distributions import TorchDistribution, constraints
from torch import nn

from .fused import clipped_leaky_relu, fused_chain
from .config import SRNNConfig
from .sequence_model import Batch, SequenceModel


# ----------------------------------------------------------------------------- networks


def normal_init_(weight: torch.Tensor, std: float):
    """weight ~ N(0, std^2) in place; a meta tensor (shapes only: checkpoint checks, memory estimates) is left as
    it is, because normal_ on the meta device imports TorchDynamo, which costs every command seconds."""
    if not weight.is_meta:
        with torch.no_grad():
            weight.normal_(0.0, std)


def _glorot_normal_(weight: torch.Tensor, fan_in: int, fan_out: int):
    normal_init_(weight, math.sqrt(2.0 / (fan_in + fan_out)))


def dropped(h: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Dropout with rate p while training; p = 0 (the paper) leaves h untouched without drawing a mask."""
    return F.dropout(h, p, training) if p and training else h


class Embedding(nn.Module):
    """The deterministic feature map e(v) = f(W2 f(W1 v + b1) + b2) applied to u_t and to x_t."""

    def __init__(self, x_dim: int, hidden: int, dropout: float = 0.0):
        super().__init__()
        self.layer1 = nn.Linear(x_dim, hidden)
        self.layer2 = nn.Linear(hidden, hidden)
        self.dropout = dropout

    def forward(self, v):
        e = clipped_leaky_relu(self.layer2(clipped_leaky_relu(self.layer1(v))))
        return dropped(e, self.dropout, self.training)


class GaussianMLPs(nn.Module):
    """Mean and log-variance of a diagonal Gaussian over z_t, each from its own one-hidden-layer MLP of
    [c_t, z_{t-1}], where c_t is d_t (prior) or a_t (posterior).

    Both MLPs' first layers live in one weight of width 2 * hidden (the same arithmetic as two separate
    layers), split into its c_t part, applied to all steps before the time loop by :meth:`precompute`, and
    its z_{t-1} part, applied inside the loop by :meth:`forward`.
    """

    def __init__(self, c_dim: int, z_dim: int, hidden: int):
        super().__init__()
        self.hidden = hidden
        self.first_c = nn.Linear(c_dim, 2 * hidden)
        self.first_z = nn.Linear(z_dim, 2 * hidden, bias=False)
        self.mean_out = nn.Linear(hidden, z_dim)
        self.logvar_out = nn.Linear(hidden, z_dim)
        self.fan_in = c_dim + z_dim

    def precompute(self, c: torch.Tensor):
        """The c_t part of the first layers for every step, as a tuple of T tensors (B, 2 * hidden).
        unbind, unlike c[:, t] in the loop, has a backward that does not fill a (B, T, width) tensor per step."""
        return self.first_c(c).unbind(1)

    def forward(self, c_part: torch.Tensor, z_prev: torch.Tensor):
        """From the precomputed c_t part of the first layers (:meth:`precompute`) and z_{t-1}."""
        h = clipped_leaky_relu(c_part + self.first_z(z_prev))
        h_mean, h_logvar = h.split(self.hidden, dim=-1)
        return self.mean_out(h_mean), self.logvar_out(h_logvar)

    def step(self, c: torch.Tensor, z_prev: torch.Tensor):
        """Mean and log-variance from c_t and z_{t-1} of a single step."""
        return self(self.first_c(c), z_prev)


PRETRAIN_FRAMES = 256  # training frames per update of the NADE's pretraining


class NADE(TorchDistribution):
    """The neural autoregressive distribution over a frame's keys, lowest key first (Larochelle and Murray
    2011; the emission of RNN-NADE): p(x) = prod_k Bernoulli(x_k | sigmoid(b_k + V_k . h_k)), with
    h_k = sigmoid(c + W[:, <k] x_<k). The biases b (..., K) and c (..., H) vary with the batch; the weights
    W (H, K) and V (K, H) are shared. Batch shape b.shape[:-1], event shape (K,). ``temperature`` divides every
    conditional's logit (1: the distribution itself)."""

    arg_constraints = {}
    support = constraints.independent(constraints.boolean, 1)

    def __init__(self, b, c, W, V, temperature: float = 1.0, validate_args=None):
        self.b, self.c, self.W, self.V, self.temperature = b, c, W, V, temperature
        super().__init__(b.shape[:-1], b.shape[-1:], validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):
        batch_shape = torch.Size(batch_shape)
        return NADE(self.b.expand(batch_shape + self.b.shape[-1:]), self.c.expand(batch_shape + self.c.shape[-1:]),
                    self.W, self.V, self.temperature)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """The logit of every key's conditional p(x_k = 1 | x_<k), all keys at once. The hidden
        pre-activations of key k are c plus W's columns of the sounding keys below it, so they change only at a
        sounding key: a frame with m sounding keys has m + 1 distinct hidden states, the cumulative sums of
        those columns. Each key reads the state of its segment (the number of sounding keys below it). Exact,
        and for frames of a few notes over 10x faster than the product over all 88 keys (on a CPU, forward and
        backward: benchmarks/nade.py)."""
        shape = torch.broadcast_shapes(x.shape, self.b.shape)
        x, b = x.expand(shape), self.b.expand(shape)
        c = self.c.expand(shape[:-1] + self.c.shape[-1:])
        if torch.cuda.is_available() and torch.cuda.is_current_stream_capturing():
            most = shape[-1]  # a CUDA graph cannot read a count back; every key may sound
        else:
            most = int(x.sum(-1).max()) if x.numel() else 0
        sounding = torch.sort(x, dim=-1, descending=True, stable=True)  # sounding keys first, lowest first
        keys, on = sounding.indices[..., :most], sounding.values[..., :most]
        columns = self.W.t()[keys] * on.unsqueeze(-1)  # (..., most, H); zero past a frame's own sounding keys
        states = torch.cat([c.unsqueeze(-2), c.unsqueeze(-2) + torch.cumsum(columns, -2)], -2)  # (..., most + 1, H)
        segment = (torch.cumsum(x, -1) - x).long()  # sounding keys below each key
        per_state = torch.sigmoid(states) @ self.V.t()  # (..., most + 1, K): V_k . h for every state and key
        return (b + per_state.gather(-2, segment.unsqueeze(-2)).squeeze(-2)) / self.temperature

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        return -F.binary_cross_entropy_with_logits(self.logits(x), x, reduction="none").sum(-1)

    @torch.no_grad()
    def sample(self, sample_shape=torch.Size()):
        """Key by key, every frame of the batch at once."""
        shape = self._extended_shape(sample_shape)
        b = self.b.expand(shape)
        a = self.c.expand(shape[:-1] + self.c.shape[-1:]).clone()
        x = torch.zeros(shape, dtype=b.dtype, device=b.device)
        for k in range(shape[-1]):
            logit = (b[..., k] + torch.sigmoid(a) @ self.V[k]) / self.temperature
            x[..., k] = torch.bernoulli(torch.sigmoid(logit))
            a = a + x[..., k:k + 1] * self.W[:, k]
        return x


class Emission(nn.Module):
    """p(x_t | z_t, d_t): an MLP of [d_t, z_t] gives the 88 logits of independent Bernoullis ("bernoulli", the
    paper), or a NADE's biases b (88) and c (H) ("nade"); :meth:`distribution` is the distribution itself."""

    def __init__(self, d_dim: int, z_dim: int, hidden: int, x_dim: int, dropout: float = 0.0,
                 kind: str = "bernoulli", nade_hidden: int = 0):
        super().__init__()
        self.kind, self.x_dim = kind, x_dim
        self.layer1 = nn.Linear(d_dim + z_dim, hidden)
        self.out = nn.Linear(hidden, x_dim + (nade_hidden if kind == "nade" else 0))
        if kind == "nade":
            self.W = nn.Parameter(torch.empty(nade_hidden, x_dim))
            self.V = nn.Parameter(torch.empty(x_dim, nade_hidden))
            for weight in (self.W, self.V):
                _glorot_normal_(weight, *weight.shape)
        self.dropout = dropout

    def forward(self, d, z):
        """The MLP's output: the Bernoulli logits, or the NADE's biases b and c side by side."""
        h = clipped_leaky_relu(self.layer1(torch.cat([d, z], dim=-1)))
        return self.out(dropped(h, self.dropout, self.training))

    def distribution(self, d, z, temperature: float = 1.0) -> dist.Distribution:
        """p(x_t | z_t, d_t) for every step given: batch shape d.shape[:-1], event shape (88,)."""
        out = self(d, z)
        if self.kind == "nade":
            return NADE(out[..., :self.x_dim], out[..., self.x_dim:], self.W, self.V, temperature)
        return dist.Bernoulli(logits=out / temperature).to_event(1)

    def pretrain_nade(self, frames: torch.Tensor, updates: int, lr: float, seed: int, on_step=None) -> float:
        """Fit the emission's NADE alone to training frames drawn at random, with its biases b and c constants
        (a memoryless NADE), and start the emission there: W and V take the fitted weights, the MLP's output
        bias the fitted b and c. Without it, a run of the paper's length (a few hundred updates at lr 1e-3)
        barely moves W and V from their initial scale, and the sequence model learns little more than
        independent keys. Returns the mean log-likelihood per frame of the last update."""
        keys, hidden = self.x_dim, self.W.shape[0]
        b = torch.zeros(keys, device=frames.device, requires_grad=True)
        c = torch.zeros(hidden, device=frames.device, requires_grad=True)
        optimizer = torch.optim.Adam([self.W, self.V, b, c], lr=lr)
        generator = torch.Generator(device="cpu").manual_seed(seed)  # leaves the run's own random streams alone
        log_likelihood = math.nan
        for _ in range(updates):
            x = frames[torch.randint(len(frames), (PRETRAIN_FRAMES,), generator=generator).to(frames.device)]
            loss = -NADE(b.expand(len(x), keys), c.expand(len(x), hidden), self.W, self.V).log_prob(x).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            log_likelihood = -loss.item()
            if on_step:
                on_step(log_likelihood)
        self.W.grad = self.V.grad = None
        with torch.no_grad():
            self.out.bias.copy_(torch.cat([b, c]))
        return log_likelihood


class FilteringPath(nn.Module):
    """a_t = MLP([d_t, e(x_t)]): the paper's filtering ablation, which sees no future frames."""

    def __init__(self, in_dim: int, hidden: int, a_dim: int):
        super().__init__()
        self.layer1 = nn.Linear(in_dim, hidden)
        self.out = nn.Linear(hidden, a_dim)

    def forward(self, inputs):
        return clipped_leaky_relu(self.out(clipped_leaky_relu(self.layer1(inputs))))


def reversal_index(mask: torch.Tensor) -> torch.Tensor:
    """Per row, the time index that reverses the real frames and leaves the padding behind them."""
    steps = mask.shape[1]
    t = torch.arange(steps, device=mask.device).expand_as(mask)
    lengths = mask.sum(1, keepdim=True)
    return torch.where(t < lengths, lengths - 1 - t, t)


def take_steps(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    return torch.gather(x, 1, index.unsqueeze(-1).expand(-1, -1, x.shape[-1]))


# ----------------------------------------------------------------------------- the SRNN


class SRNN(SequenceModel):
    """The generative model p(x, z | u) and the inference network q(z | x, u), with Pyro's model and guide.
    Its state between chunks is (d_t, z_t)."""

    name = "srnn"
    sampling_controls = ("temperature", "z_scale", "burn_in")

    def __init__(self, config: SRNNConfig):
        super().__init__(config)
        c = config
        self.embed = Embedding(c.x_dim, c.hidden, c.dropout)
        self.gru_d = nn.GRU(c.hidden, c.d, batch_first=True)
        if c.z:  # the stochastic layer; the RNN (z = 0) has none
            if c.filtering:
                self.filtering_path = FilteringPath(c.d + c.hidden, c.hidden, c.a)
            else:
                self.gru_a = nn.GRU(c.d + c.hidden, c.a, batch_first=True)
            self.prior = GaussianMLPs(c.d, c.z, c.hidden)
            self.posterior = GaussianMLPs(c.a, c.z, c.hidden)
        self.emission = Emission(c.d, c.z, c.hidden, c.x_dim, c.dropout, c.emission, c.nade_hidden)
        # the step's fused computations: the z-chain as one recurrence (Paths), u and x embedded together
        # (shared_embeddings); False: as before them, autograd step by step, the reference tests and `srnn bench` use
        self.fused = True
        self.reset_parameters()

    def reset_parameters(self):
        """As the reference code: Glorot normal for the MLPs, orthogonal recurrent GRU weights, zero biases."""
        for module in self.modules():
            if isinstance(module, nn.Linear):
                _glorot_normal_(module.weight, module.in_features, module.out_features)
            elif isinstance(module, nn.GRU):
                width = module.hidden_size
                for block in module.weight_ih_l0.split(width):
                    _glorot_normal_(block, module.input_size, width)
                for block in module.weight_hh_l0.split(width):
                    nn.init.orthogonal_(block)
        for module in self.modules():
            if isinstance(module, GaussianMLPs):  # each MLP's first layer is one layer of fan-in c + z
                for part in (module.first_c, module.first_z):
                    for block in part.weight.split(module.hidden):
                        _glorot_normal_(block, module.fan_in, module.hidden)
        for name, param in self.named_parameters():
            if "bias" in name:
                nn.init.zeros_(param)

    def normal(self, mean, logvar) -> dist.Distribution:
        """N(mean, diag(exp(logvar) + 1e-6)) over one z_t."""
        return dist.Normal(mean, self.standard_deviation(logvar)).to_event(1)

    def standard_deviation(self, logvar: torch.Tensor) -> torch.Tensor:
        return (logvar.exp() + self.config.variance_floor).sqrt()

    def shared_embeddings(self, u, x):
        """(e(u_t), e(x_t)) for every step (M1) from one embedding, or None where they cannot share it. Within a
        chunk u_t = x_{t-1}, so e(u) is e(x) one step later with e(u_1) of its own: one embedding of T + 1
        frames, half the work of two. None when u is anything else, or when dropout draws a mask for each
        (training with dropout > 0), or with ``fused`` off."""
        shared = self.fused and not (self.embed.dropout and self.training)
        if shared and u.shape[1] > 1 and torch.equal(u[:, 1:], x[:, :-1]):
            e = self.embed(torch.cat([u[:, :1], x], dim=1))
            return e[:, :-1], e[:, 1:]
        return None

    def forward_path(self, u, d0, e_u=None):
        """d_t = GRU(d_{t-1}, e(u_t)) for every step (e_u: e(u) where already computed)."""
        d, _ = self.gru_d(self.embed(u) if e_u is None else e_u, d0.unsqueeze(0).contiguous())
        return d

    def inference_path(self, d, x, mask, e_x=None):
        """a_t from a GRU run backwards over [d_t, e(x_t)], over each sequence's own frames only."""
        inputs = torch.cat([d, self.embed(x) if e_x is None else e_x], dim=-1)
        if self.config.filtering:
            return self.filtering_path(inputs)
        index = reversal_index(mask)
        a_reversed, _ = self.gru_a(take_steps(inputs, index))
        return take_steps(a_reversed, index)

    def initial_state(self, n: int, device="cpu") -> tuple:
        """(d_0, z_0) = 0."""
        return torch.zeros(n, self.config.d, device=device), torch.zeros(n, self.config.z, device=device)

    def prepare(self, batch: Batch) -> "Paths":
        return Paths(self, batch)

    @property
    def exact(self) -> bool:
        return not self.config.z  # the RNN

    @property
    def pretrain_updates(self) -> int:
        return self.config.nade_pretrain if self.config.emission == "nade" else 0

    def pretrain(self, frames, on_step=None) -> float | None:
        """The NADE emission's pretraining (:meth:`Emission.pretrain_nade`); none for the Bernoulli one."""
        c = self.config
        if not self.pretrain_updates:
            return None
        device = self.emission.W.device
        frames = torch.as_tensor(frames, dtype=torch.float32, device=device)
        return self.emission.pretrain_nade(frames, c.nade_pretrain, c.nade_pretrain_lr, c.seed, on_step)

    @classmethod
    def activation_floats_per_frame(cls, config: SRNNConfig) -> int:
        """The embedding and MLPs of width hidden, the two GRUs' gates, the z-chain's means and variances, the
        emission's logits; with a NADE, every key's hidden pre-activations, sigmoids and their products."""
        per_frame = 12 * config.hidden + 16 * (config.d + config.a) + 40 * config.z + 10 * config.x_dim
        if config.emission == "nade":
            per_frame += 4 * config.x_dim * config.nade_hidden
        return per_frame

    def model(self, batch: Batch, kl_scale: float = 1.0, paths: "Paths | None" = None):
        """p(x, z | u) = prod_t p(x_t | z_t, d_t) p(z_t | z_{t-1}, d_t)."""
        pyro.module("srnn", self)
        paths = paths or Paths(self, batch)  # d_t for every step (M1, M2)
        z_prev, zs = batch.state[1], []
        with pyro.plate("sequences", batch.size):
            with poutine.scale(scale=kl_scale):  # KL annealing on the z sites
                for t in pyro.markov(range(self.latent_steps(batch))):
                    with poutine.mask(mask=batch.mask[:, t]):  # padding
                        z_prev = pyro.sample(f"z_{t + 1}", paths.prior(t, z_prev))  # (M3)
                    zs.append(z_prev)
            z = paths.stacked(zs) if zs else z_prev.new_zeros(batch.size, batch.steps, 0)  # the RNN: no z_t
            emission = self.emission.distribution(paths.d, z)  # (M4), all steps at once
            pyro.sample("x", emission.mask(batch.mask).to_event(1), obs=batch.x)

    def guide(self, batch: Batch, kl_scale: float = 1.0, paths: "Paths | None" = None):
        """q(z | x, u) = prod_t q(z_t | z_{t-1}, a_t). Returns (d_T, z_T), the states a next chunk starts from."""
        pyro.module("srnn", self)
        paths = paths or Paths(self, batch)  # d_t and a_t for every step (M1, M2, M5)
        z_prev = batch.state[1]
        with pyro.plate("sequences", batch.size), poutine.scale(scale=kl_scale):
            for t in pyro.markov(range(self.latent_steps(batch))):
                with poutine.mask(mask=batch.mask[:, t]):
                    z_prev = pyro.sample(f"z_{t + 1}", paths.posterior(t, z_prev))  # (M6)
        return paths.d[:, -1], z_prev

    def generate(self, u: torch.Tensor, state: tuple, temperature: float = 1.0, z_scale: float = 1.0):
        """One step of the generative model from u_t and (d_{t-1}, z_{t-1}): d_t (M2), z_t ~ p(z_t | z_{t-1}, d_t)
        (M3), x_t ~ p(x_t | z_t, d_t) (M4). Returns ((d_t, z_t), x_t); x_t is the next step's u.

        Away from ancestral sampling (the defaults): ``temperature`` divides the emission's logits (below 1:
        fewer, surer notes), ``z_scale`` multiplies the prior's standard deviation."""
        d, z = state
        d = self.gru_d(self.embed(u).unsqueeze(1), d.unsqueeze(0))[1][0]
        if self.config.z:
            mean, logvar = self.prior.step(d, z)
            prior = self.normal(mean, logvar)
            if z_scale == 0.0:
                z = mean
            else:
                if z_scale != 1.0:
                    prior = dist.Normal(mean, prior.base_dist.scale * z_scale).to_event(1)
                z = prior.sample()
        x = self.emission.distribution(d, z, temperature).sample()
        return (d, z), x

    def latent_steps(self, batch: Batch) -> int:
        """The steps that sample a z_t: all of them, or none for the RNN (z = 0)."""
        return batch.steps if self.config.z else 0


class Paths:
    """What model and guide share for one batch, each part computed at most once: the z-independent paths
    d and a with the d_t / a_t parts of the first layers over all steps, and the z-chain.

    The guide's first request (:meth:`posterior` at t = 0) runs the whole chain of its draws at once
    (:mod:`pyro_srnn.fused`, when ``srnn.fused``): the noise of every step, drawn as the step-by-step
    guide would draw it, every step's four MLPs and draws in one fused recurrence. Each later request
    whose z_{t-1} is the chain's own draw (the guide going on, the model replayed on the guide's trace)
    gets that step of it; a request with any other z_{t-1} (the model run on its own, a guide whose sites
    a handler replaced) is computed step by step, as all of them are with ``fused`` off.
    """

    def __init__(self, srnn: SRNN, batch: Batch):
        self.srnn, self.batch = srnn, batch
        self._prior = {}
        self._chain = None

    @functools.cached_property
    def embedded(self):
        """(e(u), e(x)) from one embedding, or (None, None): each path embeds its own."""
        return self.srnn.shared_embeddings(self.batch.u, self.batch.x) or (None, None)

    @functools.cached_property
    def d(self):
        return self.srnn.forward_path(self.batch.u, self.batch.state[0], self.embedded[0])

    @functools.cached_property
    def prior_d(self):
        return self.srnn.prior.precompute(self.d)

    @functools.cached_property
    def a(self):
        return self.srnn.inference_path(self.d, self.batch.x, self.batch.mask, self.embedded[1])

    def prior(self, t: int, z_prev: torch.Tensor) -> dist.Distribution:
        """p(z_t | z_{t-1}, d_t) = N(mu_p, diag(exp(lv_p) + 1e-6)), mu_p, lv_p = MLPs([d_t, z_{t-1}]) (M3)."""
        chain = self._chain
        if chain is not None and chain.follows(t, z_prev):
            return dist.Normal(chain.mu_p[t], chain.sd_p[t]).to_event(1)
        return self.srnn.normal(*self.prior_step(t, z_prev))

    def posterior(self, t: int, z_prev: torch.Tensor) -> dist.Distribution:
        """q(z_t | z_{t-1}, a_t) = N(mu_q, diag(exp(lv_q) + 1e-6)) with mu_q = mu_p + dmu_q (the residual
        mean; dmu_q alone with ``--no-residual``), dmu_q, lv_q = MLPs([a_t, z_{t-1}]) (M6), mu_p from (M3)."""
        if t == 0 and self.srnn.fused:  # a guide starts: its whole chain, fresh noise
            self._chain = FusedDraws(self, z_prev)
        chain = self._chain
        if chain is not None and chain.follows(t, z_prev):
            q = DrawnNormal(chain.mu_q[t], chain.sd_q[t])
            q.draw = chain.z[t]
            return q.to_event(1)
        dmu_q, lv_q = self.posterior_step(t, z_prev)
        mu_p, _ = self.prior_step(t, z_prev)
        return self.srnn.normal(mu_p + dmu_q if self.srnn.config.residual else dmu_q, lv_q)

    def stacked(self, zs: list) -> torch.Tensor:
        """The z_t of every step as one (B, T, z) tensor: the chain's own, when these are its draws."""
        chain = self._chain
        if chain is not None and len(zs) == len(chain.z) and all(a is b for a, b in zip(zs, chain.z)):
            return chain.z_batch_first
        return torch.stack(zs, dim=1)

    def prior_step(self, t: int, z_prev: torch.Tensor):
        """Mean and log-variance of p(z_t | z_{t-1}, d_t), step by step."""
        stored = self._prior.get(t)
        if stored is None or stored[0] is not z_prev:
            stored = self._prior[t] = (z_prev, self.srnn.prior(self.prior_d[t], z_prev))
        return stored[1]

    def posterior_step(self, t: int, z_prev: torch.Tensor):
        """dmu_q and lv_q of q(z_t | z_{t-1}, a_t), step by step.

        The four MLPs of [d_t, z_{t-1}] (prior) and [a_t, z_{t-1}] (posterior) run as one matrix product for
        their z_{t-1} parts and one batched product for their output layers: the same arithmetic as running
        them separately, in far fewer small products. The prior's half is stored for :meth:`prior_step`."""
        _, w_z, w_out, b_out = self.joint
        hidden = self.srnn.config.hidden
        h = clipped_leaky_relu(self.joint_steps[t] + z_prev @ w_z)  # (B, 4 hidden)
        out = torch.baddbmm(b_out, h.view(-1, 4, hidden).transpose(0, 1), w_out)  # (4, B, z)
        mu_p, lv_p, dmu_q, lv_q = out.unbind(0)
        self._prior[t] = (z_prev, (mu_p, lv_p))
        return dmu_q, lv_q

    @functools.cached_property
    def joint(self):
        """The four MLPs as one: the d_t and a_t parts of their first layers for every step (B, T, 4 hidden),
        the z_{t-1} parts (z, 4 hidden), the output layers' weights (4, hidden, z) and biases (4, 1, z)."""
        p, q = self.srnn.prior, self.srnn.posterior
        first_c = torch.cat([p.first_c(self.d), q.first_c(self.a)], dim=-1)
        w_z = torch.cat([p.first_z.weight, q.first_z.weight]).t()
        layers = (p.mean_out, p.logvar_out, q.mean_out, q.logvar_out)
        w_out = torch.stack([layer.weight.t() for layer in layers])
        b_out = torch.stack([layer.bias for layer in layers]).unsqueeze(1)
        return first_c, w_z, w_out, b_out

    @functools.cached_property
    def joint_steps(self):
        """The first layers' d_t and a_t parts, one (B, 4 hidden) tensor per step: unbind, unlike indexing
        in the loop, has a backward that does not fill a (B, T, 4 hidden) tensor per step."""
        return self.joint[0].unbind(1)


class DrawnNormal(dist.Normal):
    """A Normal whose reparameterised draw was made beforehand, from the noise ``Normal.rsample`` would have
    drawn (by :class:`FusedDraws`): ``rsample`` returns it (``draw``); with a sample shape it draws afresh."""

    draw = None

    def rsample(self, sample_shape=torch.Size()):
        if self.draw is not None and not sample_shape:
            return self.draw
        return super().rsample(sample_shape)

    def expand(self, batch_shape, _instance=None):  # a plate expands every site's distribution, if only to itself
        new = super().expand(batch_shape, _instance)
        if torch.Size(batch_shape) == self.batch_shape:
            new.draw = self.draw
        return new


def step_noise(steps: int, size: int, z_dim: int, like: torch.Tensor) -> torch.Tensor:
    """Standard normal noise (steps, size, z_dim) as T draws of ``Normal.rsample`` (size, z_dim) take it from
    the random stream, one per step: the step-by-step guide's noise, value for value."""
    eps = like.new_empty(steps, size, z_dim)
    for t in range(steps):
        eps[t].normal_()
    return eps


class FusedDraws:
    """A guide's draws z_1..z_T and the distributions they were drawn from, all steps at once
    (:func:`pyro_srnn.fused.fused_chain`), each as a per-step view."""

    def __init__(self, paths: Paths, z0: torch.Tensor):
        srnn, (size, steps) = paths.srnn, paths.batch.mask.shape
        first_c, w_z, w_out, b_out = paths.joint
        eps = step_noise(steps, size, srnn.config.z, z0)
        zs, out = fused_chain(first_c.transpose(0, 1), w_z, w_out, b_out, z0, eps, srnn.config.residual,
                              srnn.config.variance_floor)
        mu_p, lv_p, dmu_q, lv_q = out.unbind(1)  # each (T, B, z)
        self.z0, self.z_batch_first = z0, zs.transpose(0, 1)
        self.z = zs.unbind(0)
        self.mu_p, self.sd_p = mu_p.unbind(0), srnn.standard_deviation(lv_p).unbind(0)
        self.mu_q = (mu_p + dmu_q if srnn.config.residual else dmu_q).unbind(0)
        self.sd_q = srnn.standard_deviation(lv_q).unbind(0)

    def follows(self, t: int, z_prev: torch.Tensor) -> bool:
        """Whether z_prev is this chain's z_{t-1} (z_0 at t = 0)."""
        return z_prev is (self.z[t - 1] if t else self.z0)
