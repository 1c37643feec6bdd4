"""Piano-roll pictures."""
from __future__ import annotations

import numpy as np


def pyplot():
    """matplotlib's pyplot drawing to files only (no screen here)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_text(text) -> str:
    """A string as a picture shows it, the one escaping step of that medium: matplotlib reads text between
    two dollar signs as mathematics (and fails on what is not), so every $ is escaped. Legends are given
    their labels explicitly, so a label that starts with "_" is not dropped."""
    return str(text).replace("$", r"\$")


def draw_roll(ax, roll, title: str):
    """One roll on ``ax``: keys (MIDI numbers) against frames."""
    roll = np.asarray(roll)
    ax.imshow(roll.T, aspect="auto", origin="lower", cmap="Greys", interpolation="nearest",
              extent=(0, len(roll), 20.5, 108.5))
    ax.set_ylabel("MIDI key")
    ax.set_title(plot_text(title), fontsize=9)


def draw_rolls(rolls, path, grid, primed: int = 0, titles=None):
    """Keys against time for each roll, one panel each (titled ``titles``, else 'sample i'); the primed opening
    is shaded."""
    plt = pyplot()
    rolls = np.asarray(rolls)
    fig, axes = plt.subplots(len(rolls), 1, figsize=(12, 2.6 * len(rolls)), squeeze=False)
    for i, (ax, roll) in enumerate(zip(axes[:, 0], rolls)):
        draw_roll(ax, roll, titles[i] if titles else f"sample {i + 1}")
        if primed:
            ax.axvspan(0, primed, color="tab:blue", alpha=0.15, label="primer")
            ax.legend(loc="upper right")
    axes[-1, 0].set_xlabel(f"frame ({grid.name})")
    fig.tight_layout()
    from data_prep.files import writing

    try:
        with writing(path):
            fig.savefig(path, format="png", dpi=100)
    finally:
        plt.close(fig)
