"""The package's face for Python users: a trained run as objects, ready for Pyro's own tools.

    from pyro_srnn import load_run
    run = load_run("runs/bach-demo")
    batch = run.batch("test", n=4)
    Predictive(run.model.model, guide=run.model.guide, num_samples=16)(batch)
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from data_prep.h5 import PianoRollFile

from .batching import padded, to_batch
from .config import SRNNConfig
from .evaluate import SequenceScores, score_sequences
from .sequence_model import Batch, SequenceModel
from .runs import RunDir, check_data, data_location, record_of_checkpoint, resolve_checkpoint
from .sample import sample_rolls
from .checkpoint import load_checkpoint, model_from_checkpoint
from .train import resolve_device


@dataclass
class Run:
    """A trained sequence model with its configuration, the data it was trained on and where it came from."""

    model: SequenceModel
    config: SRNNConfig
    data: PianoRollFile | None
    checkpoint: Path
    record: dict

    def sequences(self, split: str = "test") -> list:
        return self._data().split(split).sequences()

    def batch(self, split: str = "test", n: int | None = None) -> Batch:
        """The first ``n`` (all) full sequences of a split as one padded, masked batch, on the model's device:
        the argument ``model.model`` and ``model.guide`` take."""
        x, u, mask = padded(self.sequences(split)[:n])
        return to_batch(x, u, mask, self.model.initial_state(len(x)), device=self._device)

    @property
    def srnn(self) -> SequenceModel:
        """The model, by its name before the package held other models than the SRNN."""
        return self.model

    @property
    def _device(self):
        return next(self.model.parameters()).device

    def score(self, split: str = "test", **options) -> SequenceScores:
        """ELBO (and with ``iwae=K`` the IWAE bound) of every sequence of a split, as `srnn evaluate`."""
        return score_sequences(self.model, self.sequences(split), device=self._device, **options)

    def sample(self, steps: int = 200, n: int = 1, prime: np.ndarray | None = None, seed: int = 0) -> np.ndarray:
        """``n`` piano rolls (n, steps, 88) drawn from the model, as `srnn sample`."""
        return sample_rolls(self.model, steps, n, prime, seed)

    def _data(self) -> PianoRollFile:
        if self.data is None:
            raise FileNotFoundError(f"{self.checkpoint}: the data it was trained on is not available; pass data=")
        return self.data


def load_run(path=None, device: str = "cpu", data=None) -> Run:
    """A run directory (its best.pt, else last.pt; the latest run under runs/ when None) or a checkpoint file,
    with the data it was trained on
    (checked against the run's fingerprint) or ``data``, another prepared file with the same keys and frame
    unit. The model is in evaluation mode; checkpoints are read with ``weights_only=True``."""
    checkpoint = resolve_checkpoint(path)
    ckpt = load_checkpoint(checkpoint)
    record = record_of_checkpoint(ckpt)
    if record.get("data") is None and RunDir(checkpoint.parent).config_path.is_file():
        record = RunDir(checkpoint.parent).record()
    model = model_from_checkpoint(ckpt, resolve_device(device)).eval()
    source = data or data_location(record, checkpoint.parent)
    loaded = PianoRollFile(source) if source else None  # --data must exist
    if loaded is not None:
        check_data(record.get("data_fingerprint"), loaded, checkpoint, same_data=data is None)
    return Run(model, model.config, loaded, checkpoint, record)
