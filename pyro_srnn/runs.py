"""The run directory: the one place that knows its layout.

A run directory holds ``config.json`` (the configuration, the data file's path and fingerprint, the device
and process count), ``metrics.jsonl`` (one line per epoch), ``last.pt`` (after every epoch), ``best.pt``
(best validation ELBO) and ``.lock`` (held while a process trains). Checkpoints carry the same record as
``config.json``, so a run whose ``config.json`` was lost still resumes and evaluates.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from data_prep.files import reading, remove_stale_temporaries, write_text

from .errors import SRNNError

RUNS_ROOT = Path("runs")


def read_record(path) -> dict:
    """A run's record from its own file (a config.json, such as docs/runs/NAME/config.json): the configuration
    and the data a run trained on, to train that configuration again."""
    path = Path(path)
    try:
        record = json.loads(reading(path).read_text())
    except FileNotFoundError:
        raise SRNNError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise SRNNError(f"{path}: not a run record ({exc.__class__.__name__})") from None
    if not isinstance(record, dict) or not isinstance(record.get("config"), dict):
        raise SRNNError(f"{path}: not a run record: it holds no configuration")
    return record


class RunDir:
    CONFIG, METRICS, LAST, BEST, LOCK = "config.json", "metrics.jsonl", "last.pt", "best.pt", ".lock"

    def __init__(self, path):
        self.path = Path(path)
        self.config_path, self.metrics_path = self.path / self.CONFIG, self.path / self.METRICS
        self.last, self.best = self.path / self.LAST, self.path / self.BEST

    def __str__(self):
        return str(self.path)

    def holds_run(self) -> bool:
        return self.last.exists() or self.config_path.exists()

    # -- the record: configuration, data, fingerprint

    def record(self) -> dict | None:
        """``config.json``'s content, or the same record from ``last.pt`` when the file is gone; None for a
        directory that holds no run."""
        if self.config_path.is_file():
            try:
                record = json.loads(reading(self.config_path).read_text())
                if isinstance(record, dict) and isinstance(record.get("config"), dict):
                    return record
            except (OSError, ValueError):
                pass
            if not self.last.is_file():
                raise SRNNError(f"{self.config_path}: not a run record, and no {self.LAST} to recover it from")
        if self.last.is_file():
            from .checkpoint import load_checkpoint

            return record_of_checkpoint(load_checkpoint(self.last))
        return None

    def resume_config(self, overrides: dict):
        """The run's configuration with ``overrides`` (options given again when resuming) applied."""
        from .config import SRNNConfig

        record = self.record()
        if record is None:
            raise SRNNError(f"{self.path}: holds no run to resume")
        return SRNNConfig.from_dict({**record["config"], **overrides})

    def write_record(self, record: dict):
        write_text(self.config_path, json.dumps(record, indent=2), update=True)

    # -- metrics

    def metrics(self) -> list:
        """One dict per recorded epoch. A last line cut short by a crash (no newline after it) is dropped; any
        other line that is not an epoch's record is refused, naming the line and what is wrong with it."""
        if not self.metrics_path.is_file():
            return []
        try:
            text = reading(self.metrics_path).read_text()
        except (OSError, UnicodeDecodeError) as exc:
            raise SRNNError(f"{self.metrics_path}: cannot be read ({exc})") from None
        lines = text.split("\n")
        rows = []
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)  # NaN and Infinity (a diverged epoch) read as floats
            except ValueError:
                if number == len(lines):  # after the last newline: a line the crash cut
                    break
                raise SRNNError(f"{self.metrics_path}: line {number} is not JSON; the lines after it would be "
                                "lost, so nothing is read (repair or remove that line)") from None
            problem = _metrics_problem(row, rows[-1]["epoch"] if rows else 0)
            if problem:
                raise SRNNError(f"{self.metrics_path}: line {number}: {problem}")
            rows.append(row)
        return rows

    def start_metrics(self):
        write_text(self.metrics_path, "", update=True)

    def append_metrics(self, metrics: dict):
        with open(self.metrics_path, "a") as f:
            f.write(json.dumps(metrics) + "\n")

    def truncate_metrics(self, epochs_done: int):
        """Keep the lines of the epochs a resumed checkpoint has done; later ones are trained again."""
        kept = [m for m in self.metrics() if m.get("epoch", 0) <= epochs_done]
        write_text(self.metrics_path, "".join(json.dumps(m) + "\n" for m in kept), update=True)

    def remove_stale_temporaries(self):
        remove_stale_temporaries(self.config_path, self.metrics_path, self.last, self.best)

    # -- checkpoints

    def checkpoint(self) -> Path:
        """best.pt, else last.pt."""
        for path in (self.best, self.last):
            if path.is_file():
                return path
        raise SRNNError(f"{self.path}: no {self.BEST} or {self.LAST} in this run directory")


# What every epoch's line of metrics.jsonl holds (validation epochs add valid_elbo); report plots these.
METRIC_KEYS = ("epoch", "train_elbo", "train_reconstruction", "train_kl", "kl_temperature", "lr", "grad_norm",
               "frames_per_second")


def _metrics_problem(row, previous_epoch: int) -> str | None:
    if not isinstance(row, dict):
        return f"expected an epoch's record (a JSON object), found {type(row).__name__}"
    missing = [k for k in METRIC_KEYS if k not in row]
    if missing:
        return f"lacks {', '.join(missing)}"
    for key in METRIC_KEYS + (("valid_elbo",) if "valid_elbo" in row else ()):
        value = row[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return f"{key} is {value!r}, not a number"
    if not (isinstance(row["epoch"], int) and row["epoch"] > previous_epoch):
        return f"epoch {row['epoch']!r} does not follow epoch {previous_epoch}"
    return None


def score_field(scores: dict, key: str):
    """The value at a dotted path of a scores file ("elbo.per_sequence"), or None where it is missing."""
    for part in key.split("."):
        scores = scores.get(part) if isinstance(scores, dict) else None
    return scores


def read_scores(path, keys, optional=()) -> dict:
    """A scores file a run directory holds (test.json of srnn evaluate, eval.json of a sweep trial): a JSON
    object whose ``keys`` (paths such as "elbo.per_sequence") are numbers, as are the ``optional`` ones where
    their first part is present ("iwae.k" when the file has "iwae"); refused with the file and the field
    otherwise."""
    path = Path(path)
    try:
        scores = json.loads(reading(path).read_text())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise SRNNError(f"{path}: not a scores file ({exc.__class__.__name__})") from None
    present = [k for k in optional if isinstance(scores, dict) and k.split(".")[0] in scores]
    for key in (*keys, *present):
        value = score_field(scores, key)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise SRNNError(f"{path}: field {key} is {value!r}, not a number")
    return scores


def data_location(record: dict, run_path) -> str | None:
    """The data file a run record names, found from any folder: its absolute path, else the path relative to
    the run directory, else (records from before both were stored) the recorded path from the current folder.
    None when none of them is a file."""
    recorded = record.get("data")
    candidates = [recorded] if recorded and os.path.isabs(recorded) else []
    if record.get("data_from_run"):
        candidates.append(os.path.normpath(os.path.join(run_path, record["data_from_run"])))
    if recorded and not os.path.isabs(recorded):
        candidates.append(recorded)
    return next((c for c in candidates if isinstance(c, str) and os.path.isfile(c)), None)


def data_record(data_path, run_path) -> dict:
    """How a run records its data: absolute, and relative to the run directory (a moved project still finds it)."""
    return {"data": os.path.abspath(data_path),
            "data_from_run": os.path.relpath(os.path.abspath(data_path), os.path.abspath(run_path))}


def record_of_checkpoint(ckpt: dict) -> dict:
    """The run record a checkpoint carries (the fields of config.json)."""
    return {"config": ckpt["config"], "data": ckpt.get("data"), "data_from_run": ckpt.get("data_from_run"),
            "data_fingerprint": ckpt.get("data_fingerprint"),
            "dataset": ckpt.get("dataset"), "grid": ckpt.get("grid"), "tempo_bpm": ckpt.get("tempo_bpm")}


def latest_run(root=RUNS_ROOT) -> Path:
    """The run directory under ``root`` whose last checkpoint was written most recently."""
    root = Path(root)
    runs = [p.parent for p in root.glob(f"*/{RunDir.LAST}")] if root.is_dir() else []
    if not runs:
        raise SRNNError(f"no trained run under {root}/; train one with `srnn train` or pass a run directory")
    return max(runs, key=lambda r: (r / RunDir.LAST).stat().st_mtime)


def resolve_checkpoint(target=None, root=RUNS_ROOT) -> Path:
    """A checkpoint file from a run directory (its best.pt, else last.pt), a file, or the latest run."""
    path = latest_run(root) if target is None else Path(target)
    if path.is_dir():
        return RunDir(path).checkpoint()
    if not path.is_file():
        raise SRNNError(f"{path}: no such run directory or checkpoint")
    return path


def check_data(fingerprint: dict | None, data, where, same_data: bool = True):
    """Refuse ``data`` (a PianoRollFile) that is not what the run recorded in ``fingerprint``. With
    ``same_data`` the data must be the very data trained on; otherwise (scoring a model on other data) only
    the key range and the frame grid must agree. Runs from before fingerprints were recorded pass."""
    if not fingerprint:
        return
    current = data.fingerprint()
    current["frame_unit"] = current["grid"]["unit"]
    grid = {"rule": "sample", **(fingerprint.get("grid") or {})}  # runs from before frame rules: the sample rule
    fingerprint = {**fingerprint, "grid": grid, "frame_unit": grid.get("unit")}
    keys = ("lowest_key", "n_keys", "frame_unit")
    if same_data:
        keys += ("dataset", "variant", "grid", "sequences", "sha256")
    differs = [k for k in keys if current.get(k) != fingerprint.get(k)]
    if differs:
        what = "; ".join(f"{k} {fingerprint.get(k)} in the run, {current.get(k)} in the file" for k in differs
                         if k != "sha256") or "same dataset and sizes, but other content (sha256)"
        raise SRNNError(f"{data.path}: not the data {where} was trained on ({what})")
