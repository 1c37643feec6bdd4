"""Where a model's silent frames come from: the share of silent frames in the test data, the model's own
probability of a silent frame on the test frames (each predicted from the true previous frames; a model with
latents with z drawn from its guide), and the share in its samples (32 x 400 frames at T = 1, as
`srnn evaluate --music`), with the mean length of a run of silent frames in data and samples. A model whose
predicted share is near the data's but whose samples are silent more often drifts when it feeds itself its
own frames; one that predicts too many silences already on the data is miscalibrated.
Usage: .venv/bin/python scripts/silent_frames.py RUN [RUN ...]"""
import sys

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from data_prep.stats import note_lengths, roll_statistics
from pyro_srnn.api import load_run
from pyro_srnn.errors import SRNNError
from pyro_srnn.evaluate import traces


def silent_runs(rolls) -> list:
    """The lengths of the runs of consecutive silent frames in each roll (T, 88): the notes of a one-key roll
    that sounds where the roll is silent."""
    return [n for roll in rolls for n in note_lengths((np.asarray(roll).sum(-1) == 0)[:, None])]


def predicted_silence(run) -> tuple:
    """The data's silent share on the test split and the model's mean P(x_t = 0 | past) over its frames."""
    batch = run.batch("test")
    with torch.no_grad():
        model_trace, _ = traces(run.model, batch)  # z from the guide, as the scores draw it
        emission = model_trace.nodes["x"]["fn"]
        while hasattr(emission, "base_dist"):  # past .mask() and .to_event(): the per-frame distribution
            emission = emission.base_dist
        p_silent = emission.log_prob(torch.zeros_like(batch.x)).exp()[batch.mask]
    silent = (batch.x.sum(-1) == 0)[batch.mask]
    return silent.float().mean().item(), p_silent.mean().item()


def main(paths):
    torch.set_num_threads(1)
    table = Table("run", "data silent", "predicted on data", "samples silent", "mean silent run (data / samples)")
    for path in paths:
        run = load_run(path)
        data_share, predicted = predicted_silence(run)
        samples = list(run.sample(steps=400, n=32, seed=0))
        sample_share = roll_statistics(samples)["empty_frame_share"]  # as `srnn evaluate --music` counts it
        data_runs, sample_runs = silent_runs(run.sequences("test")), silent_runs(samples)
        table.add_row(str(path), f"{data_share:.3f}", f"{predicted:.3f} ({predicted / data_share:.1f}x)",
                      f"{sample_share:.3f} ({sample_share / data_share:.1f}x)",
                      f"{np.mean(data_runs):.1f} / {np.mean(sample_runs) if sample_runs else 0:.1f}")
    Console(width=160).print(table)


if __name__ == "__main__":
    if not sys.argv[1:]:
        sys.exit(__doc__.splitlines()[-1])
    try:
        main(sys.argv[1:])
    except (SRNNError, OSError) as error:  # a run that is not there or not readable: one line, no traceback
        sys.exit(f"error: {error}")
