"""What a musician hears in a set of piano rolls, as numbers: polyphony, onsets, note lengths, pitches, pitch
classes, silence and scale consistency; and how two sets compare (ratios of scalars, overlapping areas of
histograms, as in Yang and Lerch's MGEval).

A note is a run of consecutive frames of one key; its onset is the run's first frame. Histograms are
normalised to sum 1; the overlapping area of two is sum_i min(p_i, q_i): 1 for equal shapes, 0 for
disjoint ones.
"""
from __future__ import annotations

import numpy as np

from .midi import LOWEST_KEY, N_KEYS

MAX_POLYPHONY = 16  # the polyphony histogram's last bin holds 16 or more keys at once
MAX_LENGTH = 32  # the note-length histogram's last bin holds notes of 32 frames or more
_MAJOR = np.array([0, 2, 4, 5, 7, 9, 11])
_MINOR = np.array([0, 2, 3, 5, 7, 8, 10])  # natural minor


def onsets(roll: np.ndarray) -> np.ndarray:
    """1 where a key starts sounding: on now and off in the frame before (or the roll's first frame)."""
    roll = np.asarray(roll) > 0
    previous = np.vstack([np.zeros((1, roll.shape[1]), bool), roll[:-1]])
    return roll & ~previous


def note_lengths(roll: np.ndarray) -> np.ndarray:
    """The length in frames of every note (run of one key) of a roll."""
    roll = np.asarray(roll) > 0
    padded = np.vstack([np.zeros((1, roll.shape[1]), np.int8), roll.astype(np.int8),
                        np.zeros((1, roll.shape[1]), np.int8)])
    change = np.diff(padded, axis=0)
    starts, ends = np.nonzero(change.T == 1), np.nonzero(change.T == -1)  # by key, then frame: runs pair up
    return ends[1] - starts[1]


def scale_consistency(pitch_classes: np.ndarray) -> float:
    """The largest share of notes (by onset) inside one of the 24 major and natural minor scales."""
    total = pitch_classes.sum()
    if not total:
        return 0.0
    best = max(pitch_classes[(scale + tonic) % 12].sum() for tonic in range(12) for scale in (_MAJOR, _MINOR))
    return float(best / total)


class Tally:
    """The counts behind :func:`roll_statistics`, added one roll at a time, so that the statistics of any
    number of rolls take the memory of one."""

    def __init__(self):
        self.frames = 0
        self.polyphony = np.zeros(N_KEYS + 1)  # frames by number of keys sounding
        self.notes_per_key = np.zeros(N_KEYS)  # onsets
        self.lengths = np.zeros(MAX_LENGTH)  # notes by length (bin i: i + 1 frames, the last one longer)
        self.length_sum = 0
        self.used = np.zeros(N_KEYS, bool)

    def add(self, roll: np.ndarray) -> "Tally":
        roll = np.asarray(roll) > 0
        self.frames += len(roll)
        self.polyphony += np.bincount(roll.sum(1), minlength=N_KEYS + 1)
        self.notes_per_key += onsets(roll).sum(0)
        lengths = note_lengths(roll)
        self.lengths += np.bincount(np.minimum(np.maximum(lengths - 1, 0), MAX_LENGTH - 1), minlength=MAX_LENGTH)
        self.length_sum += int(lengths.sum())
        self.used |= roll.any(0)
        return self

    def statistics(self) -> dict:
        if not self.frames:
            raise ValueError("no frames to measure")
        sounding = np.arange(N_KEYS + 1)
        polyphony = np.concatenate([self.polyphony[:MAX_POLYPHONY], [self.polyphony[MAX_POLYPHONY:].sum()]])
        pitches = self.notes_per_key
        classes = np.bincount((np.arange(N_KEYS) + LOWEST_KEY) % 12, weights=pitches, minlength=12)
        used = np.nonzero(self.used)[0]
        notes = self.lengths.sum()
        return {
            "notes_per_frame": float(sounding @ self.polyphony / self.frames),
            "onsets_per_frame": float(pitches.sum() / self.frames),
            "mean_note_length": float(self.length_sum / notes) if notes else 0.0,
            "empty_frame_share": float(self.polyphony[0] / self.frames),
            "pitch_range": float(used[-1] - used[0]) if len(used) else 0.0,
            "scale_consistency": scale_consistency(classes),
            "polyphony_histogram": _normalised(polyphony),
            "note_length_histogram": _normalised(self.lengths),
            "pitch_histogram": _normalised(pitches),
            "pitch_class_histogram": _normalised(classes),
        }


def _normalised(counts: np.ndarray) -> np.ndarray:
    return counts / counts.sum() if counts.sum() else counts


def roll_statistics(rolls) -> dict:
    """Statistics of a set of piano rolls (each (frames, 88)), pooled over all their frames and notes."""
    tally = Tally()
    for roll in rolls:
        tally.add(roll)
    return tally.statistics()


def overlapping_area(p: np.ndarray, q: np.ndarray) -> float:
    return float(np.minimum(p, q).sum())


SCALARS = ("notes_per_frame", "onsets_per_frame", "mean_note_length", "empty_frame_share", "pitch_range",
           "scale_consistency")
HISTOGRAMS = ("polyphony_histogram", "note_length_histogram", "pitch_histogram", "pitch_class_histogram")


def compare(data: dict, samples: dict) -> list:
    """One row per statistic: (name, data value, samples value, 'ratio' or 'OA', comparison). For a histogram
    the values are its mean bin (polyphony and length in frames, pitch as MIDI number, pitch class 0-11)."""
    rows = []
    for name in SCALARS:
        a, b = data[name], samples[name]
        rows.append((name, a, b, "ratio", b / a if a else float("nan") if b else 1.0))
    offsets = {"polyphony_histogram": 0, "note_length_histogram": 1, "pitch_histogram": LOWEST_KEY,
               "pitch_class_histogram": 0}
    for name in HISTOGRAMS:
        centre = lambda h: float((np.arange(len(h)) + offsets[name]) @ h)  # noqa: E731
        rows.append((name, centre(data[name]), centre(samples[name]), "OA",
                     overlapping_area(data[name], samples[name])))
    return rows
