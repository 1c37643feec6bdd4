"""Does the reference code's probability clipping move our test ELBO? Its log_bernoulli(x, p, eps=1e-7) clips
each key's probability to [eps, 1 - eps] before the log, so no key costs more than -log(1e-7) = 16.1 nats;
ours scores the exact log-sigmoid. For each run: the test ELBO (paper normalisation, u_1 = 0, one draw of z)
exact (the draw of `srnn evaluate RUN --split test`, seed 0) and clipped on the same draw, and how many
scored keys lie below the floor.

Usage: .venv/bin/python scripts/reference_clip.py RUN_DIR [RUN_DIR ...]   (docs/RESULTS.md section 6)
"""
import sys

import numpy as np
import torch

from pyro_srnn import load_run
from pyro_srnn.batching import sequence_batches
from pyro_srnn.elbo import sequence_terms
from pyro_srnn.evaluate import traces
from pyro_srnn.model import Paths

EPS = 1e-7  # the reference's tolerance_softmax


@torch.no_grad()
def clip_effect(run_dir):
    run = load_run(run_dir)
    srnn = run.model.eval()
    sequences = run.sequences("test")
    lengths = np.array([len(s) for s in sequences])
    exact, clipped, below = np.zeros(len(sequences)), np.zeros(len(sequences)), 0
    torch.manual_seed(0)  # as `srnn evaluate`, so the exact column is its recorded test ELBO
    for group, batch in sequence_batches(sequences, srnn):
        model_trace, guide_trace = traces(srnn, batch, Paths(srnn, batch))
        reconstruction, kl, _ = sequence_terms(model_trace, guide_trace, "analytic")
        logits = model_trace.nodes["x"]["fn"].base_dist.base_dist.logits
        scored = batch.mask.unsqueeze(-1).expand_as(logits)
        exact_keys = -torch.nn.functional.binary_cross_entropy_with_logits(logits, batch.x, reduction="none")
        p = torch.sigmoid(logits).clamp(EPS, 1 - EPS)  # float32, as the reference's Theano graph
        clipped_keys = batch.x * p.log() + (1 - batch.x) * (1 - p).log()
        below += int((exact_keys[scored] < np.log(EPS)).sum())
        exact[group] = (reconstruction - kl).numpy()
        clipped[group] = ((clipped_keys * scored).sum((1, 2)) - kl).numpy()
    return np.mean(exact / lengths), np.mean(clipped / lengths), below, int(lengths.sum()) * logits.shape[-1]


if __name__ == "__main__":
    print("| run | test ELBO, exact | clipped as the reference | keys below log(1e-7) |")
    print("|---|---|---|---|")
    for run_dir in sys.argv[1:]:
        exact, clipped, below, keys = clip_effect(run_dir)
        print(f"| {run_dir} | {exact:.4f} | {clipped:.4f} | {below} of {keys:,} |")
