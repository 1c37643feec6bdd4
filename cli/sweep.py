"""`srnn sweep`: train every configuration of a grid as `srnn train` runs, then tabulate them."""
from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import click

from pyro_srnn.errors import RunBusy

from .common import UserError, console, friendly_errors, out, progress_bar
from .train import train


@click.command()
@click.option("--dataset", default="piano", show_default=True, help="Reads data/<dataset>.h5.")
@click.option("--data", "data_file", type=click.Path(), help="A prepared HDF5 file (overrides --dataset).")
@click.option("--grid", required=True, help='Values per configuration field, with dashes, e.g. "a=30,300 d=30,300 '
              'z=10,100 seq-len=50,100"; any field `srnn train` has an option for.')
@click.option("--epochs", type=click.IntRange(min=1), default=20, show_default=True)
@click.option("--jobs", type=click.IntRange(min=1), default=1, show_default=True, help="Runs in parallel on this machine.")
@click.option("--shard", help="i/n: train only configurations i, i+n, i+2n, ... (one shard per machine).")
@click.option("--out", "out_dir", type=click.Path(), help="Sweep folder (default: sweeps/<dataset>/).")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@friendly_errors
def sweep(dataset, data_file, grid, epochs, jobs, shard, out_dir, device):
    """Train every configuration of a grid (skipping finished ones), then write results.md and results.csv
    with validation and test ELBO per configuration, best first. Sweeps may share a folder: a run that
    another sweep is training is reported busy and left to it."""
    from data_prep.files import staged
    from pyro_srnn.sweep import collect_results, parse_grid, parse_shard, results_tables
    from pyro_srnn.train import resolve_device

    data_file = data_file or os.path.join("data", f"{dataset}.h5")
    if not Path(data_file).exists():
        raise UserError(f"{data_file}: no such data file; prepare it with `srnn prep --dataset {dataset}`")
    out_dir = Path(out_dir or os.path.join("sweeps", Path(data_file).stem))
    points = parse_grid(grid, epochs)
    for point in points[:1]:
        train_arguments(point)  # every key has a `srnn train` option
    part = parse_shard(shard)
    mine = len(points[part[0]::part[1]])
    console.print(f"{len(points)} configurations, {mine} in this shard, {epochs} epochs each, {jobs} at a time, "
                  f"into {out_dir}/")
    with progress_bar("runs") as progress:
        task = progress.add_task("sweep", total=mine)

        def event(kind, point):
            progress.console.print(f"{kind:8s} {' '.join(f'{k}={v}' for k, v in point.items())}")
            progress.advance(task)

        outcomes = run_sweep(data_file, points, epochs, out_dir, jobs, part,
                             extra=("--device", device), on_event=event)
    failed = [p for p, outcome in outcomes if outcome == "failed"]
    rows = collect_results(out_dir, data_file, epochs, resolve_device(device))
    md, csv_text = results_tables(rows)
    with staged([out_dir / "results.md", out_dir / "results.csv"], force=True) as (md_tmp, csv_tmp):
        md_tmp.write_text(md)
        csv_tmp.write_text(csv_text)
    out.print(md)
    out.print(f"wrote {out_dir / 'results.md'} and {out_dir / 'results.csv'} ({len(rows)} finished runs)")
    if failed:
        raise UserError(f"{len(failed)} run(s) failed; see train.log in their run directories under {out_dir}")


def train_arguments(point: dict) -> list:
    """The `srnn train` options that set a grid point's configuration fields."""
    options = {p.name: p for p in train.params}
    arguments = []
    for key, value in point.items():
        param = options.get(key.replace("-", "_"))
        if param is None:
            raise UserError(f"--grid: {key} has no `srnn train` option")
        if param.is_flag:  # --filtering, --residual/--no-residual
            flag = param.opts[0] if value else next(iter(param.secondary_opts), None)
            arguments += [flag] if flag else []
        elif param.name == "augment_transpose":
            arguments += [param.opts[0], f"transpose:{value}"]
        else:
            arguments += [param.opts[0], str(value)]
    return arguments


def run_sweep(data: str, points: list, epochs: int, out_dir, jobs: int = 1, shard=(0, 1), extra=(),
              on_event=None):
    """Train every configuration of this shard that is not finished yet, ``jobs`` at a time, each as its own
    `srnn train` process with its own log; a failed run is reported and the sweep goes on. A run that another
    process is training is reported as busy and left to it, so several sweeps may share one folder (one per
    core, started whenever a core comes free). Returns (point, outcome) pairs."""
    from pyro_srnn.runs import RunDir
    from pyro_srnn.sweep import run_name

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    mine = [p for i, p in enumerate(points) if i % shard[1] == shard[0]]
    notify = on_event or (lambda *args: None)

    def one(point):
        run_dir = out_dir / run_name(point)
        if RunDir(run_dir).is_finished(epochs):
            notify("skipped", point)
            return point, "skipped"
        run_dir.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "-m", "cli.main", "train", "--data", data, "--run-dir", str(run_dir),
                   "--epochs", str(epochs), "--resume", *extra, *train_arguments(point)]
        with open(run_dir / "train.log", "a") as log:
            code = subprocess.call(command, stdout=log, stderr=log)
        outcome = {0: "finished", RunBusy.EXIT_CODE: "busy"}.get(code, "failed")
        notify(outcome, point)
        return point, outcome

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        return list(pool.map(one, mine))
