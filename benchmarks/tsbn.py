"""The TSBN's training step: its gradient's variance, and its cost.

    .venv/bin/python -m benchmarks.tsbn variance RUN_DIR [DRAWS]
        The variance of the score-function gradient under three estimators on one training batch of a trained
        TSBN run: Trace_ELBO (every h_t's learning signal the whole chunk's ELBO, no baseline), TraceGraph_ELBO
        without a baseline (each h_t's signal only the costs from step t on) and TraceGraph_ELBO with the run's
        NVIL baseline network. Per estimator and parameter block: the total variance over DRAWS (100) draws,
        the squared norm of the mean, and the variance relative to Trace_ELBO's.
    .venv/bin/python -m benchmarks.tsbn step [J]
        Seconds of one training step (J = 100 hidden units, 16 x 100 frames), medians of 3 interleaved: the
        stacked TraceGraph loss (pyro_srnn.elbo.StackedTraceGraph_ELBO) against Pyro's own TraceGraph_ELBO."""
import statistics
import sys
import time

import numpy as np
import pyro
import torch
from rich.console import Console
from rich.table import Table

from benchmarks.sizes import BATCH, KEYS_ON, STEPS
from pyro_srnn.api import load_run
from pyro_srnn.batching import make_streams, shifted_inputs, tbptt_chunks, to_batch
from pyro_srnn.config import SRNNConfig
from pyro_srnn.evaluate import make_elbo
from pyro_srnn.models import build_model
from pyro_srnn.step import make_optimizer, svi_step

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


def variance(run_dir: str, draws: int = 100):
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


def step(hidden: int = 100, repeats: int = 3):
    config = SRNNConfig(model="tsbn", z=hidden)
    torch.manual_seed(0)
    model = build_model(config)
    optimizer = make_optimizer(model, config)
    rng = np.random.default_rng(0)
    x = (rng.random((BATCH, STEPS, config.x_dim)) < KEYS_ON / config.x_dim).astype(np.float32)
    batch = to_batch(x, shifted_inputs(x), np.ones((BATCH, STEPS), bool), model.initial_state(BATCH))
    elbo = make_elbo("tracegraph")

    def stacked():
        svi_step(model, elbo, optimizer, config, batch)

    def pyros():
        with pyro.validation_enabled(True):  # the stacked loss hands over to Pyro's own class
            loss = model(batch, elbo)
        optimizer.zero_grad()
        loss.backward()

    times = {"stacked TraceGraph loss": [], "Pyro's TraceGraph_ELBO": []}
    stacked()  # warm-up
    for _ in range(repeats):
        for name, fn in zip(times, (stacked, pyros)):
            started = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - started)
    table = Table(title=f"one TSBN training step, J = {hidden}, {BATCH} x {STEPS} frames, "
                        f"{torch.get_num_threads()} threads, medians of {repeats}")
    table.add_column("loss")
    table.add_column("seconds", justify="right")
    medians = {name: statistics.median(t) for name, t in times.items()}
    for name, seconds in medians.items():
        table.add_row(name, f"{seconds:.3f}")
    Console().print(table)
    ratio = medians["Pyro's TraceGraph_ELBO"] / medians["stacked TraceGraph loss"]
    Console().print(f"Pyro's / stacked: {ratio:.1f}x")


if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in ("variance", "step"):
        raise SystemExit(__doc__)
    if sys.argv[1] == "variance":
        variance(sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 100)
    else:
        step(int(sys.argv[2]) if len(sys.argv) > 2 else 100)
