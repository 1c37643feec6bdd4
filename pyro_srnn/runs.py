"""Finding runs and checkpoints on disk."""
from __future__ import annotations

import json
from pathlib import Path

from .errors import SRNNError

RUNS_ROOT = Path("runs")


def latest_run(root=RUNS_ROOT) -> Path:
    """The run directory under ``root`` whose last checkpoint was written most recently."""
    root = Path(root)
    runs = [p.parent for p in root.glob("*/last.pt")] if root.is_dir() else []
    if not runs:
        raise SRNNError(f"no trained run under {root}/; train one with `srnn train` or pass a run directory")
    return max(runs, key=lambda r: (r / "last.pt").stat().st_mtime)


def resolve_checkpoint(target=None, root=RUNS_ROOT) -> Path:
    """A checkpoint file from a run directory (its best.pt, else last.pt), a file, or the latest run."""
    path = latest_run(root) if target is None else Path(target)
    if path.is_dir():
        for name in ("best.pt", "last.pt"):
            if (path / name).is_file():
                return path / name
        raise SRNNError(f"{path}: no best.pt or last.pt in this run directory")
    if not path.is_file():
        raise SRNNError(f"{path}: no such run directory or checkpoint")
    return path


def run_data_path(checkpoint: Path) -> str | None:
    """The data file the run was trained on, from the config.json beside the checkpoint."""
    config = checkpoint.parent / "config.json"
    return json.loads(config.read_text()).get("data") if config.is_file() else None
