"""The variance of the TSBN's score-function gradient under three estimators, on one training batch: Trace_ELBO
(every h_t's learning signal is the whole chunk's ELBO, no baseline), TraceGraph_ELBO without a baseline (each
h_t's signal holds only the costs from step t on) and TraceGraph_ELBO with the run's NVIL baseline network.
Usage: .venv/bin/python -m benchmarks.tsbn_variance RUN_DIR [DRAWS]   (a TSBN run; its best.pt and its data)
Prints, per estimator and parameter block, the total variance of the gradient over DRAWS (100) draws, the
squared norm of its mean, and the variance relative to Trace_ELBO's."""
import sys

import pyro
import torch
from rich.console import Console
from rich.table import Table

from pyro_srnn.api import load_run
from pyro_srnn.batching import make_streams, tbptt_chunks, to_batch
from pyro_srnn.evaluate import make_elbo

BLOCKS = ("recognition.state.weight", "recognition.frames.weight", "transition.state.weight")


def gradients(model, elbo, batch, draws: int) -> dict:
    named = dict(model.named_parameters())
    out = {name: [] for name in BLOCKS}
    with pyro.validation_enabled(False):
        for _ in range(draws):
            model.zero_grad()
            (model(batch, elbo)).backward()
            for name in BLOCKS:
                out[name].append(named[name].grad.detach().flatten().clone())
    return {name: torch.stack(g) for name, g in out.items()}


def main(run_dir: str, draws: int = 100):
    torch.manual_seed(0)
    run = load_run(run_dir)
    model, config = run.model.train(), run.config
    if config.model != "tsbn":
        raise SystemExit(f"{run_dir}: a {config.model_name}, not a TSBN")
    streams = make_streams(run.sequences("train"), config.batch_size)
    x, u, mask = next(tbptt_chunks(streams, config.seq_len))
    batch = to_batch(x, u, mask, model.initial_state(len(x)))
    baseline = model.baseline
    rows = []
    for label, kind, with_baseline in (("Trace_ELBO, no baseline", "trace", False),
                                       ("TraceGraph_ELBO, no baseline", "tracegraph", False),
                                       ("TraceGraph_ELBO + NVIL baseline", "tracegraph", True)):
        if with_baseline and baseline is None:
            continue
        model.baseline = baseline if with_baseline else None
        rows.append((label, gradients(model, make_elbo(kind), batch, draws)))
    model.baseline = baseline
    table = Table(title=f"gradient over {draws} draws, one batch of {len(x)} x {x.shape[1]} frames ({run_dir})")
    for column in ("estimator", "block", "total variance", "|mean|^2", "variance / Trace_ELBO's"):
        table.add_column(column, justify="left" if column in ("estimator", "block") else "right")
    reference = {name: float(g.var(0).sum()) for name, g in rows[0][1].items()}
    for label, grads in rows:
        for name, g in grads.items():
            variance = float(g.var(0).sum())
            table.add_row(label, name, f"{variance:.4g}", f"{float(g.mean(0).pow(2).sum()):.4g}",
                          f"{variance / reference[name]:.3g}")
    Console(width=150).print(table)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 100)
