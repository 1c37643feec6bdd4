"""Architecture sweeps: one run directory per configuration of a grid, resumable, shardable across machines,
summarised as a table of validation and test ELBO."""
from __future__ import annotations

import csv
import io
import itertools
import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from data_prep.files import write_text

from .config import SRNNConfig, parse_augment
from .errors import RunBusy, SRNNError
from .runs import RunDir, check_data

# grid keys are the option names of `srnn train`
GRID_KEYS = {"a": int, "d": int, "z": int, "hidden": int, "seq-len": int, "batch-size": int, "lr": float,
             "elbo": str, "augment": str}


def parse_grid(text: str, epochs: int | None = None) -> list:
    """'a=30,300 z=10,100' -> [{'a': 30, 'z': 10}, {'a': 30, 'z': 100}, ...] in a fixed order. A key given
    twice is refused, and every point is checked as `srnn train` checks its options, before any run starts."""
    axes, seen = [], set()
    for part in text.split():
        key, sep, values = part.partition("=")
        if not sep or key not in GRID_KEYS or not values:
            raise SRNNError(f"--grid: cannot read {part!r}; expected KEY=V1,V2 with KEY one of {', '.join(GRID_KEYS)}")
        if key in seen:
            raise SRNNError(f"--grid: {key} is given twice; list all its values once, e.g. {key}=V1,V2")
        seen.add(key)
        try:
            axes.append([(key, GRID_KEYS[key](v)) for v in values.split(",")])
        except ValueError:
            raise SRNNError(f"--grid: {part!r} has a value that is not a {GRID_KEYS[key].__name__}") from None
    if not axes:
        raise SRNNError("--grid is empty")
    points = [dict(combo) for combo in itertools.product(*axes)]
    for point in points:
        point_config(point, epochs)
    return points


def point_config(point: dict, epochs: int | None = None) -> SRNNConfig:
    """The configuration `srnn train` builds for a grid point; invalid values raise one SRNNError naming them."""
    values = {k.replace("-", "_"): v for k, v in point.items() if k != "augment"}
    try:
        if "augment" in point:
            values["augment_transpose"] = parse_augment(point["augment"])
        return SRNNConfig(**values, **({"epochs": epochs} if epochs else {}))
    except SRNNError as exc:
        raise SRNNError(f"--grid point {run_name(point)}: {exc}") from None


def parse_shard(text: str | None) -> tuple:
    if text is None:
        return 0, 1
    i, sep, n = text.partition("/")
    if not sep or not i.isdigit() or not n.isdigit() or not 0 <= int(i) < int(n):
        raise SRNNError(f"--shard {text!r}: expected i/n with 0 <= i < n")
    return int(i), int(n)


def run_name(point: dict) -> str:
    return "-".join(f"{k}{v}" for k, v in point.items())


def train_command(data: str, run_dir: Path, point: dict, epochs: int, extra=()) -> list:
    cmd = [sys.executable, "-m", "cli.main", "train", "--data", data, "--run-dir", str(run_dir), "--epochs",
           str(epochs), "--resume", *extra]
    for key, value in point.items():
        cmd += [f"--{key}", str(value)]
    return cmd


def run_sweep(data: str, grid: str, epochs: int, out_dir, jobs: int = 1, shard=(0, 1), extra=(), on_event=None):
    """Train every configuration of this shard that is not finished yet, ``jobs`` at a time. Each run
    writes its own log; a failed run is reported and the sweep goes on. A run that another process is
    training is reported as busy and left to it, so several sweeps may share one folder (one per core,
    started whenever a core comes free). Returns (point, outcome) pairs."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    points = [p for i, p in enumerate(parse_grid(grid, epochs)) if i % shard[1] == shard[0]]
    notify = on_event or (lambda *args: None)

    def one(point):
        run_dir = out_dir / run_name(point)
        if RunDir(run_dir).is_finished(epochs):
            notify("skipped", point)
            return point, "skipped"
        run_dir.mkdir(parents=True, exist_ok=True)
        with open(run_dir / "train.log", "a") as log:
            code = subprocess.call(train_command(data, run_dir, point, epochs, extra), stdout=log, stderr=log)
        outcome = {0: "finished", RunBusy.EXIT_CODE: "busy"}.get(code, "failed")
        notify(outcome, point)
        return point, outcome

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        return list(pool.map(one, points))


def collect_results(out_dir, data_file: str, epochs: int, device="cpu") -> list:
    """Validation and test ELBO per frame (paper normalisation) of every finished run's best.pt, cached
    in the run's eval.json; sorted best first."""
    from data_prep.h5 import PianoRollFile

    from .evaluate import score_sequences
    from .train import load_checkpoint, model_from_checkpoint

    data = PianoRollFile(data_file)
    rows = []
    for run_dir in sorted(Path(out_dir).iterdir()):
        if not run_dir.is_dir() or not RunDir(run_dir).is_finished(epochs):
            continue
        cache = run_dir / "eval.json"
        if cache.exists():
            rows.append(json.loads(cache.read_text()))
            continue
        ckpt = load_checkpoint(RunDir(run_dir).best)
        check_data(ckpt.get("data_fingerprint"), data, run_dir)
        srnn = model_from_checkpoint(ckpt, device)
        row = {"run": run_dir.name, **{k: ckpt["config"][k] for k in ("a", "d", "z", "hidden", "seq_len", "elbo")}}
        for split in ("valid", "test"):
            scores = score_sequences(srnn, data.split(split).sequences(), device=device)
            row[f"{split}_elbo"] = scores.per_frame()["per_sequence"]
            row[f"{split}_elbo_total_frames"] = scores.per_frame()["total_frames"]
        write_text(cache, json.dumps(row))
        rows.append(row)
    return sorted(rows, key=lambda r: -r["valid_elbo"])


def results_tables(rows: list) -> tuple:
    """The results as (markdown, csv) text."""
    if not rows:
        return "no finished runs\n", ""
    columns = list(rows[0])
    fmt = lambda v: f"{v:.4f}" if isinstance(v, float) else str(v)  # noqa: E731
    md = "| " + " | ".join(columns) + " |\n|" + "---|" * len(columns) + "\n"
    md += "".join("| " + " | ".join(fmt(r[c]) for c in columns) + " |\n" for r in rows)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns)
    writer.writeheader()
    writer.writerows(rows)
    return md, buf.getvalue()
