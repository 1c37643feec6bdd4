"""ELBO and importance-weighted bounds of full sequences, per sequence (docs/MODEL.md section 2, the test metric).

Both come from one pair of Pyro traces: the guide's, and the model's replayed on the guide's z. The
ELBO's KL part is either the analytic KL of each z_t given the sampled z_{t-1} (``analytic``, the paper's
estimator, as TraceMeanField_ELBO) or log q - log p at the sampled z_t (``trace``, as Trace_ELBO); the
sum over sequences of either is exactly minus the loss the matching Pyro ELBO gives for the same noise.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from pyro import poutine
from pyro.poutine.util import site_is_subsample

from .batching import sequence_batches
from .config import FIRST_INPUTS, iwae_particles
from .elbo import STACKED_ELBOS, SequenceTerms, StackedIWAE, StackedTraceGraph_ELBO, sequence_terms
from .errors import SRNNError
from .numerics import denormals_flushed
from .sequence_model import Batch, SequenceModel


@dataclass
class SequenceScores:
    """Per sequence, summed over its frames."""

    elbo: np.ndarray
    reconstruction: np.ndarray
    kl: np.ndarray
    lengths: np.ndarray
    iwae: np.ndarray | None = None
    posterior_mean_variance: np.ndarray | None = None  # per latent dimension, over all frames
    residual_mean_variance: np.ndarray | None = None  # the same for E_q[z_t] - E_p[z_t]

    def active_units(self, threshold: float = 0.01, residual: bool = False) -> int:
        """Latent dimensions whose posterior mean varies over the data: Var_x(E_q[z_t]) > threshold. With
        ``residual``, the part of the posterior mean the prior does not already predict, E_q[z_t] - E_p[z_t]:
        the prior mean moves with d_t, so in the SRNN every unit moves even when q copies p."""
        variance = self.residual_mean_variance if residual else self.posterior_mean_variance
        return int((variance > threshold).sum())

    def per_frame(self, values=None) -> dict:
        """The paper's normalisation (mean over sequences of value / frames, with its standard error)
        and the total-frame normalisation (sum of values / sum of frames). One sequence has no standard
        error: it is None (null in JSON, where NaN is not allowed)."""
        values = self.elbo if values is None else values
        ratios = values / self.lengths
        stderr = float(ratios.std(ddof=1) / math.sqrt(len(ratios))) if len(ratios) > 1 else None
        return {"per_sequence": float(ratios.mean()), "per_sequence_stderr": stderr,
                "total_frames": float(values.sum() / self.lengths.sum())}


def traces(model: SequenceModel, batch: Batch, shared=None):
    """The guide's trace and the model's trace replayed on it. Draws on the same batch may share ``shared``
    (:meth:`SequenceModel.prepare`: the latent-independent computations)."""
    shared = model.prepare(batch) if shared is None else shared
    guide_trace = poutine.trace(model.guide).get_trace(batch, 1.0, shared)
    model_trace = poutine.trace(poutine.replay(model.model, trace=guide_trace)).get_trace(batch, 1.0, shared)
    return model_trace, guide_trace


def batch_scores(model: SequenceModel, batch: Batch, kl_form: str = "analytic", shared=None) -> SequenceTerms:
    """Per sequence of the batch: (reconstruction, KL, ...) for one draw of the latents, as the training loss
    has them."""
    return sequence_terms(*traces(model, batch, shared), kl_form)


def log_weight(model: SequenceModel, batch: Batch, shared=None) -> torch.Tensor:
    """log p(x, z) - log q(z | x) per sequence at one draw of the latents: the IWAE bound's importance weight."""
    terms = batch_scores(model, batch, "trace", shared)
    return terms.reconstruction - terms.kl


def first_inputs(split, kind: str = "zero"):
    """u_1 of each sequence of a data split (:class:`data_prep.h5.Split`): None for "zero" (the model's
    definition, u_1 = 0); x_1 for "x1"; for "previous", the frame before the sequence as the data file
    holds it (the SRNN npz test split keeps each piece's first frame there, out of x, and the reference
    code's test ELBO conditions on it)."""
    if kind == "zero":
        return None
    if kind == "x1":
        return np.stack([s[0] for s in split.sequences()])
    if kind == "previous":
        if split.first_inputs is None:
            raise SRNNError("this split holds no frame before its sequences (only the test split of data "
                            "prepared from the SRNN npz files does; prepare it again with srnn prep --dataset NAME "
                            "--variant srnn --force)")
        return split.first_inputs
    raise ValueError(f"first input must be one of {', '.join(FIRST_INPUTS)}, not {kind!r}")


@torch.no_grad()
@denormals_flushed()
def score_sequences(model: SequenceModel, sequences, kl_form: str = "analytic", samples: int = 1, iwae: int = 0,
                    max_frames: int = 32_000, device="cpu", on_batch=None, first_inputs=None,
                    active_units: bool = False) -> SequenceScores:
    """ELBO (averaged over ``samples`` draws) and, with ``iwae`` = K > 0, the bound
    log (1/K) sum_k p(x, z_k) / q(z_k | x) of every full sequence, starting from the model's initial state
    and u_1 = 0 (or u_1 = ``first_inputs[i]``, see :func:`first_inputs`). With ``active_units``, also the
    variance over all frames of the posterior mean of each latent dimension (and of its difference from the
    prior mean)."""
    if len(sequences) == 0:
        raise SRNNError("no sequences to score")
    if active_units and model.exact:
        raise SRNNError("active units: this model has no latent layer (z = 0)")
    model.eval()
    lengths = np.array([len(s) for s in sequences])
    n = len(sequences)
    elbo, recon, kl_sum = np.zeros(n), np.zeros(n), np.zeros(n)
    bound = np.zeros(n) if iwae else None
    means, residuals = [], []
    for group, batch in sequence_batches(sequences, model, max_frames, device, first_inputs):
        shared = model.prepare(batch)  # no gradients here, so every draw can reuse the GRUs' outputs
        for _ in range(samples):
            r, k, _ = batch_scores(model, batch, kl_form, shared)
            recon[group] += r.cpu().numpy() / samples
            kl_sum[group] += k.cpu().numpy() / samples
        if iwae:
            log_w = torch.stack([log_weight(model, batch, shared) for _ in range(iwae)])
            bound[group] = (torch.logsumexp(log_w, 0) - math.log(iwae)).cpu().numpy()
        if active_units:
            model_trace, guide_trace = traces(model, batch, shared)
            names = latent_sites(guide_trace)  # one per step, in order
            q_mean, p_mean = (torch.stack([tr.nodes[name]["fn"].mean for name in names], 1)
                              [batch.mask].cpu().numpy() for tr in (guide_trace, model_trace))
            means.append(q_mean)
            residuals.append(q_mean - p_mean)
        if on_batch:
            on_batch(int(batch.mask.sum()))
    elbo = recon - kl_sum
    variances = [np.concatenate(v).var(0) for v in (means, residuals)] if active_units else [None, None]
    return SequenceScores(elbo, recon, kl_sum, lengths, bound, *variances)


def latent_sites(trace) -> list:
    """The names of a trace's latent sample sites, in the order they were drawn."""
    return [name for name, site in trace.nodes.items() if site["type"] == "sample" and not site["is_observed"]
            and not site_is_subsample(site)]


def make_elbo(kind: str, free_bits: float = 0.0):
    """'trace': Trace_ELBO (KL by sampling); 'analytic': TraceMeanField_ELBO (analytic KL per step), with
    ``free_bits`` > 0 the free-bits objective; each with the z_t terms summed over the stacked steps where they
    are a chain of Normals (:mod:`pyro_srnn.elbo`). 'iwae:K': the importance-weighted bound with K particles.
    'tracegraph': TraceGraph_ELBO, the score function with downstream costs and the sites' baselines."""
    if free_bits and kind != "analytic":
        raise ValueError(f"free bits threshold the analytic KL: elbo 'analytic', not {kind!r}")
    particles = iwae_particles(kind)
    if particles:
        return StackedIWAE(particles)
    if kind == "analytic":
        return STACKED_ELBOS[kind](free_bits)
    return StackedTraceGraph_ELBO(max_plate_nesting=1) if kind == "tracegraph" else STACKED_ELBOS[kind]()
