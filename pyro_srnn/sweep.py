"""Architecture sweeps: a grid over SRNNConfig's fields, one run directory per configuration, summarised as a
table of validation and test ELBO. Launching the runs is the command line's job (cli/sweep.py)."""
from __future__ import annotations

import csv
import dataclasses
import io
import itertools
import json
from pathlib import Path

from data_prep.files import write_text

from .config import SRNNConfig
from .errors import SRNNError
from .runs import RunDir, check_data


def boolean(text: str) -> bool:
    if text.lower() not in ("true", "false", "1", "0"):
        raise ValueError(text)
    return text.lower() in ("true", "1")


# A grid key is an SRNNConfig field, written with dashes (seq-len); its values are read with its type. The
# piano's 88 keys are fixed, and the sweep's --epochs sets every run's length.
GRID_KEYS = {f.name.replace("_", "-"): {bool: boolean}.get(type(f.default), type(f.default))
             for f in dataclasses.fields(SRNNConfig)
             if type(f.default) in (int, float, str, bool) and f.name not in ("x_dim", "epochs")}


def parse_grid(text: str, epochs: int | None = None) -> list:
    """'a=30,300 z=10,100' -> [{'a': 30, 'z': 10}, {'a': 30, 'z': 100}, ...] in a fixed order. A key given
    twice is refused, and every point is checked as SRNNConfig checks a configuration, before any run starts."""
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
    """The configuration of a grid point; invalid values raise one SRNNError naming the point."""
    values = {k.replace("-", "_"): v for k, v in point.items()}
    try:
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
