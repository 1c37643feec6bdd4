"""Pyro's Trace_ELBO and TraceMeanField_ELBO with the z_t terms of all steps summed as one stacked tensor, and
TraceGraph_ELBO as a loss tensor.

Pyro scores a chain of T latent sites one site at a time: a log-probability (or KL), a mask, a scale and a
sum per site, in the model's trace and in the guide's, and the backward pass walks all of them again. Here
the same terms, at the same sampled values, are computed on the stacked (T, batch, z) parameters in a few
tensor operations. The estimator is unchanged (a test checks equality with Pyro's own classes for the
same noise); traces that are not a chain of diagonal Normals, or runs with Pyro's validation on, take
Pyro's own per-site code. Other latent sites (the TSBN's binary h_t) get the same terms site by site.

:func:`sequence_terms` is the one place the ELBO's parts are computed: the loss is built from it, training
reads its metrics from it (the ELBO keeps the terms of its last call) and evaluation scores sequences
with it.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import torch
from pyro import poutine
from pyro.distributions import Independent, Normal
from pyro.infer import Trace_ELBO, TraceGraph_ELBO, TraceMeanField_ELBO
from pyro.ops.provenance import detach_provenance
from pyro.distributions.util import scale_and_mask
from pyro.infer.util import is_validation_enabled
from pyro.poutine.util import prune_subsample_sites, site_is_subsample
from torch.distributions import kl_divergence


def _diagonal_normal(fn) -> bool:
    return isinstance(fn, Independent) and isinstance(fn.base_dist, Normal) and fn.reinterpreted_batch_ndims == 1


def _stacked_chain(model_trace, guide_trace):
    """(guide sites, model sites) of the latent variables, in the guide's order, when every latent site of
    both traces is a diagonal Normal over one event dimension with a shared shape, else None."""
    names = [n for n, s in guide_trace.nodes.items() if s["type"] == "sample" and not site_is_subsample(s)]
    model_latent = {n for n, s in model_trace.nodes.items()
                    if s["type"] == "sample" and not s["is_observed"] and not site_is_subsample(s)}
    if model_latent != set(names):
        return None
    if not names:  # no latent layer (the RNN): an empty chain, whose KL is 0
        return [], []
    guide_sites = [guide_trace.nodes[n] for n in names]
    model_sites = [model_trace.nodes[n] for n in names]
    shape = guide_sites[0]["value"].shape
    for site in guide_sites + model_sites:
        if not (_diagonal_normal(site["fn"]) and site["fn"].base_dist.loc.shape == shape
                and site["fn"].base_dist.scale.shape == shape and not torch.is_tensor(site["scale"])
                and (site["mask"] is None or site["mask"].shape == shape[:-1])):
            return None
    return guide_sites, model_sites


def _masked_per_sequence(per_step, sites):
    """(sum_t [mask_tb] per_step_tb..., sum_t scale_t [mask_tb] per_step_tb...) per sequence b (and per any
    trailing dimension of ``per_step``, shaped (T, B, ...)), with each site's own mask and scale, as Pyro's
    scale_and_mask does site by site."""
    trailing = (1,) * (per_step.dim() - 2)
    masks = [s["mask"] for s in sites]
    if any(m is not None for m in masks):
        full = torch.ones(per_step.shape[1], dtype=torch.bool, device=per_step.device)
        stacked = torch.stack([full if m is None else m for m in masks])
        per_step = torch.where(stacked.view(stacked.shape + trailing), per_step, torch.zeros_like(per_step))
    scales = torch.tensor([float(s["scale"]) for s in sites], dtype=per_step.dtype, device=per_step.device)
    return per_step.sum(0), (per_step * scales.view((-1, 1) + trailing)).sum(0)


def _stack_normals(sites):
    return Normal(torch.stack([s["fn"].base_dist.loc for s in sites]),
                  torch.stack([s["fn"].base_dist.scale for s in sites]), validate_args=False)


class SequenceTerms(NamedTuple):
    """The ELBO's parts per sequence of a batch, summed over its (unmasked) frames:
    ELBO = reconstruction - kl, and the annealed training objective is reconstruction - kl_scaled."""

    reconstruction: torch.Tensor  # log p(x | z, u)
    kl: torch.Tensor  # sum_t KL(q(z_t | .) || p(z_t | .)), analytic or sampled
    kl_scaled: torch.Tensor  # the same with each step's scale (the KL temperature)


def sequence_terms(model_trace, guide_trace, kl_form: str = "analytic", chain=None) -> SequenceTerms:
    """The parts of the ELBO per sequence from a guide trace and the model trace replayed on it. ``kl_form``:
    'analytic' (KL of each latent site given the sampled earlier ones, TraceMeanField_ELBO's term) or 'trace'
    (log q - log p at the sampled value, Trace_ELBO's term). Latent sites that form a chain of diagonal
    Normals (:func:`_stacked_chain`, whose result a caller that has it passes as ``chain``), as the SRNN's do,
    are summed as one stacked tensor; any others site by site."""
    chain = chain or _stacked_chain(model_trace, guide_trace)
    reconstruction = 0
    for site in model_trace.nodes.values():
        if site["type"] == "sample" and site["is_observed"]:
            reconstruction = reconstruction + scale_and_mask(_log_prob(site), site["scale"],
                                                             site["mask"])
    if chain is None:
        return _site_by_site(model_trace, guide_trace, kl_form, reconstruction)
    guide_sites, model_sites = chain
    if not guide_sites:
        zero = torch.zeros_like(reconstruction)
        return SequenceTerms(reconstruction, zero, zero)
    q, p = _stack_normals(guide_sites), _stack_normals(model_sites)
    if kl_form == "analytic":
        kl_sum, kl_scaled = _masked_per_sequence(kl_divergence(q, p).sum(-1), guide_sites)  # the guide's mask
    else:
        z = torch.stack([s["value"] for s in guide_sites])
        log_q, log_q_scaled = _masked_per_sequence(q.log_prob(z).sum(-1), guide_sites)
        log_p, log_p_scaled = _masked_per_sequence(p.log_prob(z).sum(-1), model_sites)
        kl_sum, kl_scaled = log_q - log_p, log_q_scaled - log_p_scaled
    return SequenceTerms(reconstruction, kl_sum, kl_scaled)


def free_bits_kl(chain, free_bits: float) -> torch.Tensor:
    """The KL term of the free-bits objective (Kingma et al. 2016, one group per latent unit) for a batch:
    sum_j max(KL_j, free_bits * F), where KL_j is unit j's analytic KL summed over the batch's unmasked frames
    and F their number, each step with its scale (the KL temperature). A unit whose KL is under ``free_bits``
    nats per frame costs the same whatever it encodes, so the optimiser has no reason to close it; 0 is the
    ELBO's term."""
    guide_sites, model_sites = chain
    per_unit = kl_divergence(_stack_normals(guide_sites), _stack_normals(model_sites))  # (T, B, z)
    kl_units = _masked_per_sequence(per_unit, guide_sites)[1].sum(0)
    frames = _masked_per_sequence(torch.ones_like(per_unit[..., 0]), guide_sites)[1].sum()
    return torch.maximum(kl_units, free_bits * frames).sum()


def _log_prob(site) -> torch.Tensor:
    """log p(value) of a site, unscaled and unmasked: the one its trace's ``compute_log_prob`` cached, if run."""
    cached = site.get("unscaled_log_prob")
    return site["fn"].log_prob(site["value"]) if cached is None else cached


def _site_by_site(model_trace, guide_trace, kl_form: str, reconstruction) -> SequenceTerms:
    """:func:`sequence_terms` for latent sites of any distribution, each with its own scale and mask."""
    kl_sum = kl_scaled = torch.zeros_like(reconstruction)
    for name, q in guide_trace.nodes.items():
        if q["type"] != "sample" or site_is_subsample(q):
            continue
        p = model_trace.nodes[name]
        if kl_form == "analytic":
            term = kl_divergence(q["fn"], p["fn"])
        else:
            log_p = _log_prob(p) if p["value"] is q["value"] else p["fn"].log_prob(q["value"])  # replayed: the same
            term = _log_prob(q) - log_p
        term = scale_and_mask(term, 1.0, q["mask"])
        kl_sum = kl_sum + term
        kl_scaled = kl_scaled + q["scale"] * term
    return SequenceTerms(reconstruction, kl_sum, kl_scaled)


class _StackedChain:
    """Mixin over a Pyro ELBO whose loss is built from :func:`sequence_terms` with the KL form ``KL``. The
    terms of the last call are kept in ``last_terms`` (detached; where Pyro's own per-site code ran, its
    terms were computed beside it, for the metrics)."""

    last_terms = None
    particles = 1  # copies of each sequence the loss is computed over (SRNN.forward makes them)
    free_bits = 0.0  # nats per frame per latent unit that the loss does not charge (free_bits_kl; analytic only)

    def carried(self, state):
        """The guide's final state (the SRNN's (d_T, z_T)), as the next chunk of each stream starts from it."""
        return state

    def _get_trace(self, model, guide, args, kwargs):
        if is_validation_enabled():
            return super()._get_trace(model, guide, args, kwargs)
        guide_trace = poutine.trace(guide).get_trace(*args, **kwargs)
        model_trace = poutine.trace(poutine.replay(model, trace=guide_trace)).get_trace(*args, **kwargs)
        return prune_subsample_sites(model_trace), prune_subsample_sites(guide_trace)

    def _differentiable_loss_particle(self, model_trace, guide_trace):
        chain = None if is_validation_enabled() and not self.free_bits else _stacked_chain(model_trace, guide_trace)
        if chain is None and self.free_bits:
            raise ValueError("free bits need latent sites that form a chain of diagonal Normals (the SRNN's z_t)")
        if chain is None:
            terms = sequence_terms(model_trace, guide_trace, self.KL)
            self.last_terms = SequenceTerms(*(t.detach() for t in terms))
            if not is_validation_enabled():  # log-probs were left for here
                model_trace.compute_log_prob()
                guide_trace.compute_score_parts()
            loss, surrogate = super()._differentiable_loss_particle(model_trace, guide_trace)
            # for sites without a reparameterised sample, Pyro's surrogate has the estimator's gradient but
            # not the ELBO's value: carry the gradient, report the value
            return loss, surrogate - surrogate.detach() + loss
        terms = sequence_terms(model_trace, guide_trace, self.KL, chain)
        self.last_terms = SequenceTerms(*(t.detach() for t in terms))  # what training reports: the ELBO's terms
        kl = free_bits_kl(chain, self.free_bits) if self.free_bits else terms.kl_scaled.sum()
        objective = terms.reconstruction.sum() - kl
        return -float(objective.detach()), -objective


class StackedTrace_ELBO(_StackedChain, Trace_ELBO):
    """Trace_ELBO: log p(z_t | .) - log q(z_t | .) at the guide's sampled z_t."""

    KL = "trace"


class StackedTraceMeanField_ELBO(_StackedChain, TraceMeanField_ELBO):
    """TraceMeanField_ELBO: - KL(q(z_t | .) || p(z_t | .)), analytic given the sampled z_{t-1}; with
    ``free_bits`` > 0, the free-bits objective instead (:func:`free_bits_kl`)."""

    KL = "analytic"

    def __init__(self, free_bits: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        self.free_bits = free_bits


class StackedIWAE(_StackedChain, Trace_ELBO):
    """The importance-weighted bound of Burda et al. (2016) as the training objective: per sequence,
    log (1/K) sum_k w_k with log w_k = log p(x, z_k) - log q(z_k | x) at K draws z_k ~ q, and the KL
    temperature on the z terms of each log w_k as on the ELBO's. The K particles are K consecutive copies of
    every sequence in the batch (:meth:`pyro_srnn.model.Batch.repeated`), so one pass draws them all.
    ``last_terms`` are the particles' mean ELBO terms per sequence."""

    KL = "trace"

    def __init__(self, particles: int):
        super().__init__()
        self.particles = particles
        self.last_log_weights = None

    def _differentiable_loss_particle(self, model_trace, guide_trace):
        chain = _stacked_chain(model_trace, guide_trace)
        if chain is None:
            raise ValueError("StackedIWAE needs latent sites that form a chain of diagonal Normals")
        terms = sequence_terms(model_trace, guide_trace, self.KL, chain)
        by_particle = SequenceTerms(*(t.view(-1, self.particles) for t in terms))  # (sequences, K)
        log_w = by_particle.reconstruction - by_particle.kl_scaled  # the temperature scales the z terms
        self.last_log_weights = log_w.detach()
        self.last_terms = SequenceTerms(*(t.detach().mean(1) for t in by_particle))
        bound = (torch.logsumexp(log_w, 1) - math.log(self.particles)).sum()
        return -float(bound.detach()), -bound

    def carried(self, state):
        """Each stream goes on from one of its particles, drawn in proportion to its importance weight (the
        draw from q that importance resampling turns into a draw from the bound's better posterior)."""
        pick = torch.distributions.Categorical(logits=self.last_log_weights).sample()
        rows = torch.arange(len(pick), device=pick.device) * self.particles + pick
        return tuple(s[rows] for s in state)


class StackedTraceGraph_ELBO(TraceGraph_ELBO):
    """Pyro's TraceGraph_ELBO as a loss tensor, for latent sites that form a chain in time (each depends on the
    one before, in model and guide, as the TSBN's h_t): its value is minus the (annealed) ELBO, its gradient
    the estimator's, the score function of each site h_t times its downstream cost minus the site's baseline,
    plus the gradient of the baselines' regression loss.

    Pyro finds each site's downstream cost by tracking provenance through every tensor operation and adds
    the costs site by site, T^2 / 2 additions for T steps (11 s for one paper-size TSBN step). In a chain the
    downstream cost of h_t is every term from step t on: the terms of step s (log p(h_s) + log p(x_s) -
    log q(h_s), with their scales and masks) summed from the last step backwards, one reversed cumulative
    sum. A test checks the gradient against Pyro's own class for the same noise; with Pyro's validation on,
    reparameterised latent sites, or baselines other than a network (``nn_baseline``), Pyro's own code runs. ``last_terms`` as the other
    ELBOs' (the 'trace' form: the value the loss reports)."""

    last_terms = None
    particles = 1

    def differentiable_loss(self, model, guide, *args, **kwargs):
        if is_validation_enabled():
            return self._pyro_loss(model, guide, args, kwargs)
        guide_trace = poutine.trace(guide).get_trace(*args, **kwargs)
        model_trace = poutine.trace(poutine.replay(model, trace=guide_trace)).get_trace(*args, **kwargs)
        model_trace, guide_trace = prune_subsample_sites(model_trace), prune_subsample_sites(guide_trace)
        baselines = [site["infer"].get("baseline", {}) for site in guide_trace.nodes.values()
                     if site["type"] == "sample"]
        reparameterised = any(site["fn"].has_rsample for site in guide_trace.nodes.values() if site["type"] == "sample")
        if reparameterised or any(set(b) - {"nn_baseline", "nn_baseline_input"} for b in baselines):
            return self._pyro_loss(model, guide, args, kwargs)  # traced again: new draws
        model_trace.compute_log_prob()
        guide_trace.compute_log_prob()
        terms = sequence_terms(model_trace, guide_trace, "trace")  # from the log-probabilities just computed
        self.last_terms = SequenceTerms(*(t.detach() for t in terms))
        latent = [name for name, site in guide_trace.nodes.items() if site["type"] == "sample"]
        step_cost = {name: -guide_trace.nodes[name]["log_prob"] for name in latent}  # the terms of each step
        step = None
        for name, site in model_trace.nodes.items():
            if site["type"] != "sample":
                continue
            step = name if name in step_cost else step  # an observed site belongs to the latent site before it
            if step is not None:
                step_cost[step] = step_cost[step] + site["log_prob"]
        costs = torch.stack([step_cost[name] for name in latent])  # (T, sequences)
        downstream = costs.flip(0).cumsum(0).flip(0)  # from step t to the end
        scores = torch.stack([_log_prob(guide_trace.nodes[name]) for name in latent])  # Pyro's score_function
        model_log_prob = model_trace.log_prob_sum()
        elbo = model_log_prob - guide_trace.log_prob_sum()
        signal, baseline_loss = downstream, 0.0
        options = baselines[0] if baselines else {}
        if options and all(b.get("nn_baseline") is options["nn_baseline"] for b in baselines):
            inputs = torch.stack([b["nn_baseline_input"] for b in baselines]).detach()
            baseline = options["nn_baseline"](inputs)  # one pass of the shared network over every step
            signal = downstream - baseline
            baseline_loss = torch.pow(downstream.detach() - baseline, 2.0).sum()
        elif options:
            return self._pyro_loss(model, guide, args, kwargs)
        surrogate = -(model_log_prob + (scores * signal.detach()).sum()) + baseline_loss
        return surrogate - surrogate.detach() - elbo.detach()

    def _pyro_loss(self, model, guide, args, kwargs):
        """Pyro's own TraceGraph_ELBO, provenance and all."""
        loss = 0.0
        for model_trace, guide_trace in self._get_traces(model, guide, args, kwargs):
            elbo, surrogate = self._loss_and_surrogate_loss_particle(model_trace, guide_trace)
            terms = sequence_terms(model_trace, guide_trace, "trace")
            self.last_terms = SequenceTerms(*(detach_provenance(t).detach() for t in terms))
            loss = loss + (surrogate - surrogate.detach() - elbo.detach()) / self.num_particles
        return loss

    def carried(self, state):
        return tuple(detach_provenance(s) for s in state)


PYRO_ELBOS = {"trace": Trace_ELBO, "analytic": TraceMeanField_ELBO}
STACKED_ELBOS = {"trace": StackedTrace_ELBO, "analytic": StackedTraceMeanField_ELBO}
