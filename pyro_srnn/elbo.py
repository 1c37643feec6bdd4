"""Pyro's Trace_ELBO and TraceMeanField_ELBO with the z_t terms of all steps summed as one stacked tensor.

Pyro scores a chain of T latent sites one site at a time: a log-probability (or KL), a mask, a scale and a
sum per site, in the model's trace and in the guide's, and the backward pass walks all of them again. Here
the same terms, at the same sampled values, are computed on the stacked (T, batch, z) parameters in a few
tensor operations. The estimator is unchanged (a test checks equality with Pyro's own classes for the
same noise); traces that are not a chain of diagonal Normals, or runs with Pyro's validation on, take
Pyro's own per-site code.
"""
from __future__ import annotations

import torch
from pyro import poutine
from pyro.distributions import Independent, Normal
from pyro.infer import Trace_ELBO, TraceMeanField_ELBO
from pyro.infer.util import is_validation_enabled
from pyro.poutine.util import prune_subsample_sites
from torch.distributions import kl_divergence


def _diagonal_normal(fn) -> bool:
    return isinstance(fn, Independent) and type(fn.base_dist) is Normal and fn.reinterpreted_batch_ndims == 1


def _stacked_chain(model_trace, guide_trace):
    """(guide sites, model sites) of the latent variables, in the guide's order, when every latent site of
    both traces is a diagonal Normal over one event dimension with a shared shape, else None."""
    names = [n for n, s in guide_trace.nodes.items() if s["type"] == "sample"]
    model_latent = {n for n, s in model_trace.nodes.items() if s["type"] == "sample" and not s["is_observed"]}
    if not names or model_latent != set(names):
        return None
    guide_sites = [guide_trace.nodes[n] for n in names]
    model_sites = [model_trace.nodes[n] for n in names]
    shape = guide_sites[0]["value"].shape
    for site in guide_sites + model_sites:
        if not (_diagonal_normal(site["fn"]) and site["fn"].base_dist.loc.shape == shape
                and site["fn"].base_dist.scale.shape == shape and not torch.is_tensor(site["scale"])
                and (site["mask"] is None or site["mask"].shape == shape[:-1])):
            return None
    return guide_sites, model_sites


def _masked_scaled_sum(per_step, sites):
    """sum_t scale_t * sum_b [mask_tb] per_step_tb with each site's own scale and mask, as Pyro's
    scale_and_mask does site by site."""
    masks = [s["mask"] for s in sites]
    if any(m is not None for m in masks):
        full = torch.ones_like(per_step[0], dtype=torch.bool)
        per_step = torch.where(torch.stack([full if m is None else m for m in masks]), per_step,
                               torch.zeros_like(per_step))
    scales = torch.tensor([float(s["scale"]) for s in sites], dtype=per_step.dtype, device=per_step.device)
    return (per_step.sum(-1) * scales).sum()


def _stack_normals(sites):
    return Normal(torch.stack([s["fn"].base_dist.loc for s in sites]),
                  torch.stack([s["fn"].base_dist.scale for s in sites]), validate_args=False)


class _StackedChain:
    """Mixin over a Pyro ELBO: ``_chain_term(q, p, z, guide_sites, model_sites)`` gives the z part of the
    ELBO from the stacked guide and model distributions and the stacked sampled values."""

    def _get_trace(self, model, guide, args, kwargs):
        if is_validation_enabled():
            return super()._get_trace(model, guide, args, kwargs)
        guide_trace = poutine.trace(guide).get_trace(*args, **kwargs)
        model_trace = poutine.trace(poutine.replay(model, trace=guide_trace)).get_trace(*args, **kwargs)
        return prune_subsample_sites(model_trace), prune_subsample_sites(guide_trace)

    def _differentiable_loss_particle(self, model_trace, guide_trace):
        chain = None if is_validation_enabled() else _stacked_chain(model_trace, guide_trace)
        if chain is None:
            if not is_validation_enabled():  # log-probs were left for here
                model_trace.compute_log_prob()
                guide_trace.compute_score_parts()
            return super()._differentiable_loss_particle(model_trace, guide_trace)
        guide_sites, model_sites = chain
        model_trace.compute_log_prob(site_filter=lambda name, site: site["is_observed"])
        elbo = sum(s["log_prob_sum"] for s in model_trace.nodes.values() if s["type"] == "sample" and s["is_observed"])
        q, p = _stack_normals(guide_sites), _stack_normals(model_sites)
        elbo = elbo + self._chain_term(q, p, torch.stack([s["value"] for s in guide_sites]), guide_sites, model_sites)
        return -float(elbo.detach()), -elbo


class StackedTrace_ELBO(_StackedChain, Trace_ELBO):
    """Trace_ELBO: log p(z_t | .) - log q(z_t | .) at the guide's sampled z_t."""

    @staticmethod
    def _chain_term(q, p, z, guide_sites, model_sites):
        return (_masked_scaled_sum(p.log_prob(z).sum(-1), model_sites)
                - _masked_scaled_sum(q.log_prob(z).sum(-1), guide_sites))


class StackedTraceMeanField_ELBO(_StackedChain, TraceMeanField_ELBO):
    """TraceMeanField_ELBO: - KL(q(z_t | .) || p(z_t | .)), analytic given the sampled z_{t-1}."""

    @staticmethod
    def _chain_term(q, p, z, guide_sites, model_sites):
        return -_masked_scaled_sum(kl_divergence(q, p).sum(-1), guide_sites)  # the guide's mask, as Pyro


PYRO_ELBOS = {"trace": Trace_ELBO, "analytic": TraceMeanField_ELBO}
STACKED_ELBOS = {"trace": StackedTrace_ELBO, "analytic": StackedTraceMeanField_ELBO}
