"""Wall time of one training epoch (no validation), the fused step against the step-by-step one, back to
back from the same initial parameters: ``python -m benchmarks.epoch DATA_FILE [paper|small]``.

``python -m benchmarks.epoch runs DATA_FILE FOLDER EPOCHS [paper|small]`` trains two whole runs instead,
FOLDER/fused and FOLDER/step-by-step, for ``srnn evaluate`` to score and compare (their music included).

Each epoch runs in a fresh run directory under a temporary folder, with the paper's recipe at the given size;
the step-by-step epoch sets ``model.fused = False`` (pyro_srnn.model.SRNN). Prints seconds, frames per second
and the ratio, and each epoch's training ELBO per frame (the same noise: equal up to float rounding)."""
from __future__ import annotations

import dataclasses
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.sizes import SIZES
from data_prep.h5 import PianoRollFile
from pyro_srnn.config import SRNNConfig
from pyro_srnn.numerics import denormals_flushed
from pyro_srnn.train import Trainer


def epoch_seconds(data_file: str, size: str = "paper", fused: bool = True) -> dict:
    config = dataclasses.replace(SRNNConfig(**SIZES[size]), epochs=1, valid_every=1_000)
    with tempfile.TemporaryDirectory() as folder:
        trainer = Trainer(config, PianoRollFile(data_file), Path(folder) / "run")
        trainer.start()
        trainer.model.fused = fused
        with denormals_flushed():
            started = time.perf_counter()
            metrics = trainer.train_epoch()
            seconds = time.perf_counter() - started
        trainer._unlock()
    return {"seconds": seconds, "frames": metrics["frames_per_second"] * metrics["seconds"],
            "elbo": metrics["train_elbo"]}


def two_runs(data_file: str, folder: str, epochs: str, size: str = "paper"):
    """Whole runs of the recipe at the given size, fused and step by step, from the same seed."""
    config = dataclasses.replace(SRNNConfig(**SIZES[size]), epochs=int(epochs))
    for name, fused in (("fused", True), ("step-by-step", False)):
        trainer = Trainer(config, PianoRollFile(data_file), Path(folder) / name)
        trainer.start()
        trainer.model.fused = fused
        with denormals_flushed():
            started = time.perf_counter()
            history = trainer.fit()
        print(f"{name}: {time.perf_counter() - started:.0f} s, best validation ELBO {trainer.best_valid:.4f}, "
              f"last training ELBO {history[-1]['train_elbo']:.4f}")


def main(data_file: str, size: str = "paper"):
    rows = {name: epoch_seconds(data_file, size, fused) for name, fused in (("step by step", False), ("fused", True))}
    for name, r in rows.items():
        print(f"{name:>13}: {r['seconds']:7.1f} s, {r['frames'] / r['seconds']:7.0f} frames/s, training ELBO {r['elbo']:.6f}")
    print(f"fused / step by step: {rows['step by step']['seconds'] / rows['fused']['seconds']:.2f}x faster "
          f"({data_file}, {size} size, one epoch each, back to back)")


if __name__ == "__main__":
    if sys.argv[1] == "runs":
        two_runs(*sys.argv[2:])
    else:
        main(*sys.argv[1:])
