"""The HDF5 layout of a prepared dataset, its writer and its one reader.

Layout::

    /                  attrs: format, dataset, variant, frame_unit, frame_step, frame_phase,
                              frame_name, lowest_key (21), n_keys (88), sources (JSON list of
                              {"name", "sha256"}), version, command; optional: frame_rule
                              ("sample" when absent), tempo_bpm (median of the MIDI sources),
                              midi_options (JSON: transpose, drums, programs), splits ("all-test")
    /<split>/rolls     (total frames, 88) uint8, chunked, gzip
    /<split>/offsets   (n + 1,) int64; sequence i is rolls[offsets[i]:offsets[i + 1]]
    /<split>/names     (n,) UTF-8 strings
    /<split>/first_inputs  optional (n, 88) uint8: the frame before each sequence where the source holds it
                       (the SRNN npz test arrays' u_1; not part of the fingerprint)

Splits are ``train``, ``valid`` and ``test``.
"""
from __future__ import annotations

import io
import json
import os
from dataclasses import dataclass

import h5py
import numpy as np

from .files import OutputError, check_output, reading, write_bytes
from .midi import LOWEST_KEY, N_KEYS, Grid, grid_from_attrs, writable_tempo

FORMAT = "pyro-srnn-pianoroll-1"
SPLITS = ("train", "valid", "test")
REQUIRED_ATTRS = ("format", "dataset", "variant", "frame_unit", "frame_step", "frame_phase", "frame_name",
                  "lowest_key", "n_keys", "sources", "version", "command")


class DataFileError(ValueError):
    """A prepared data file that is missing or does not follow the layout."""


@dataclass
class Split:
    """The sequences of one split: a flat roll and the boundaries between its sequences."""

    rolls: np.ndarray
    offsets: np.ndarray
    names: list
    first_inputs: np.ndarray | None = None  # (n, 88): the frame before each sequence, where the source has it

    @classmethod
    def from_sequences(cls, sequences, names, first_inputs=None) -> "Split":
        if len(sequences) != len(names):
            raise ValueError("one name per sequence")
        if first_inputs is not None and np.shape(first_inputs) != (len(sequences), N_KEYS):
            raise ValueError(f"first_inputs must have shape ({len(sequences)}, {N_KEYS})")
        lengths = [len(s) for s in sequences]
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        rolls = np.concatenate(sequences).astype(np.uint8) if sequences else np.zeros((0, N_KEYS), np.uint8)
        first = None if first_inputs is None else np.asarray(first_inputs, dtype=np.uint8)
        return cls(rolls, offsets, list(names), first)

    def __len__(self):
        return len(self.offsets) - 1

    def __getitem__(self, i) -> np.ndarray:
        return self.rolls[self.offsets[i]:self.offsets[i + 1]]

    def sequences(self):
        return [self[i] for i in range(len(self))]

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)


def write_dataset(path, splits: dict, attrs: dict, force: bool = False):
    """Write ``splits`` ({name: Split}) to ``path`` as one whole file or not at all.

    The file is built in memory and then written through a temporary file and a rename
    (:mod:`data_prep.files`), so a full disk or a read-only folder gives one clear error and leaves an
    existing file as it was (HDF5's own error paths on a failing disk are not safe to rely on). An existing
    file is kept unless ``force``.
    """
    folder = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{path}: cannot create folder {folder} ({exc.strerror})") from None
    check_output(path, force)
    missing = [k for k in REQUIRED_ATTRS if k not in attrs and k != "format"]
    if missing:
        raise ValueError(f"missing attributes: {missing}")
    image = io.BytesIO()
    with h5py.File(image, "w") as f:
        f.attrs["format"] = FORMAT
        for key, value in attrs.items():
            f.attrs[key] = json.dumps(value) if key in ("sources", "midi_options") else value
        for name in SPLITS:
            split = splits[name]
            rolls = np.ascontiguousarray(split.rolls, dtype=np.uint8)
            if rolls.ndim != 2 or rolls.shape[1] != N_KEYS or (rolls > 1).any():
                raise ValueError(f"split {name}: rolls must be 0/1 of shape (frames, {N_KEYS})")
            if split.first_inputs is not None and (np.asarray(split.first_inputs) > 1).any():
                raise ValueError(f"split {name}: first_inputs must be 0/1")
            g = f.create_group(name)
            packed = dict(chunks=(min(len(rolls), 4096), N_KEYS), compression="gzip", compression_opts=4,
                          shuffle=True) if len(rolls) else {}  # an empty split (--split all-test) has no chunks
            g.create_dataset("rolls", data=rolls, **packed)
            g.create_dataset("offsets", data=np.asarray(split.offsets, dtype=np.int64))
            g.create_dataset("names", data=np.array(split.names, dtype=object), dtype=h5py.string_dtype())
            if split.first_inputs is not None:
                g.create_dataset("first_inputs", data=np.ascontiguousarray(split.first_inputs, dtype=np.uint8))
    write_bytes(path, image.getvalue(), force=force)


class PianoRollFile:
    """The one reader of prepared datasets. Opening checks the whole layout; reading is lazy per split."""

    def __init__(self, path):
        self.path = os.fspath(path)
        if not os.path.exists(self.path):
            raise DataFileError(f"{self.path}: no such file")
        if not os.path.isfile(self.path):
            raise DataFileError(f"{self.path}: not a regular file")
        reading(self.path)
        try:
            f = h5py.File(self.path, "r")
        except OSError as exc:
            raise DataFileError(f"{self.path}: not an HDF5 file ({exc})") from None
        try:
            with f:
                self.attrs = self._check(f)
        except DataFileError:
            raise
        except (OSError, KeyError, ValueError, TypeError) as exc:  # damage inside the HDF5 structure
            raise DataFileError(f"{self.path}: damaged data file ({exc.__class__.__name__}: {exc})") from None
        self._cache = {}

    def _check(self, f) -> dict:
        def bad(problem):
            return DataFileError(f"{self.path}: {problem}")

        if f.attrs.get("format") != FORMAT:
            raise bad(f"not a pyro-srnn data file (format attribute {f.attrs.get('format')!r}, expected {FORMAT!r})")
        missing = [k for k in REQUIRED_ATTRS if k not in f.attrs]
        if missing:
            raise bad(f"missing root attributes {missing}")
        attrs = {k: (v.item() if hasattr(v, "item") else v) for k, v in f.attrs.items()}
        attrs = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in attrs.items()}
        try:
            attrs["sources"] = json.loads(attrs["sources"])
        except (TypeError, ValueError):
            raise bad(f"the sources attribute is not JSON ({str(attrs['sources'])[:40]!r})") from None
        if attrs["lowest_key"] != LOWEST_KEY or attrs["n_keys"] != N_KEYS:
            raise bad(f"keys {attrs['lowest_key']}+{attrs['n_keys']}, expected {LOWEST_KEY}+{N_KEYS}")
        try:
            self._grid(attrs)
        except (TypeError, ValueError):
            raise bad(f"invalid frame grid (frame_unit {attrs['frame_unit']!r}, frame_step {attrs['frame_step']!r}, "
                      f"frame_phase {attrs['frame_phase']!r}, frame_rule {attrs.get('frame_rule')!r}); expected unit "
                      "beat or seconds, a positive finite step that MIDI can write, a phase of 0 or more and rule "
                      "sample or overlap") from None
        tempo = attrs.get("tempo_bpm")
        if tempo is not None and not writable_tempo(tempo):
            raise bad(f"the tempo_bpm attribute is {tempo!r}, not a tempo a MIDI file can state (beats per minute)")
        try:
            attrs["midi_options"] = json.loads(attrs.get("midi_options", "{}"))
        except (TypeError, ValueError):
            raise bad("the midi_options attribute is not JSON") from None
        scoring_only = attrs.get("splits") == "all-test"
        for name in SPLITS:
            if name not in f or not all(k in f[name] for k in ("rolls", "offsets", "names")):
                raise bad(f"split {name!r} is missing or lacks rolls/offsets/names")
            rolls, offsets, names = f[name]["rolls"], f[name]["offsets"][()], f[name]["names"]
            if rolls.ndim != 2 or rolls.shape[1] != N_KEYS or rolls.dtype != np.uint8:
                raise bad(f"{name}/rolls has shape {rolls.shape} and dtype {rolls.dtype}, expected (frames, 88) uint8")
            if offsets.ndim != 1 or len(offsets) < 1 or offsets[0] != 0 or offsets[-1] != rolls.shape[0] \
                    or (np.diff(offsets) <= 0).any():
                raise bad(f"{name}/offsets are not increasing boundaries from 0 to {rolls.shape[0]}")
            if len(offsets) < 2 and not (scoring_only and name != "test"):
                raise bad(f"split {name!r} holds no sequences")
            if names.shape != (len(offsets) - 1,):
                raise bad(f"{name}/names has {names.shape[0]} entries for {len(offsets) - 1} sequences")
            first = f[name].get("first_inputs")
            if first is not None and (first.shape != (len(offsets) - 1, N_KEYS) or first.dtype != np.uint8):
                raise bad(f"{name}/first_inputs has shape {first.shape} and dtype {first.dtype}, expected "
                          f"({len(offsets) - 1}, 88) uint8")
        return attrs

    @staticmethod
    def _grid(a) -> Grid:
        return grid_from_attrs(a["frame_unit"], a["frame_step"], a["frame_phase"], a["frame_name"],
                               a.get("frame_rule", "sample"))

    @property
    def grid(self) -> Grid:
        return self._grid(self.attrs)

    @property
    def tempo_bpm(self) -> float | None:
        """The median tempo of the MIDI files the data came from (beat grids), which samples are written at."""
        tempo = self.attrs.get("tempo_bpm")
        return float(tempo) if tempo else None

    @property
    def dataset(self) -> str:
        return self.attrs["dataset"]

    def split(self, name: str) -> Split:
        if name not in SPLITS:
            raise DataFileError(f"{self.path}: no split {name!r} (splits are {', '.join(SPLITS)})")
        if name not in self._cache:
            try:
                with h5py.File(self.path, "r") as f:
                    g = f[name]
                    rolls = g["rolls"][()]
                    names = [n.decode() if isinstance(n, bytes) else str(n) for n in g["names"][()]]
                    offsets = g["offsets"][()]
                    first = g["first_inputs"][()] if "first_inputs" in g else None
            except (OSError, KeyError, ValueError) as exc:  # a corrupt compressed chunk, a truncated file
                raise DataFileError(f"{self.path}: split {name!r} cannot be read "
                                    f"({exc.__class__.__name__}: {exc})") from None
            for what, values in (("rolls", rolls), ("first_inputs", first)):
                if values is not None and (values > 1).any():
                    raise DataFileError(f"{self.path}: {name}/{what} holds values other than 0 and 1")
            self._cache[name] = Split(rolls, offsets, names, first)
        return self._cache[name]

    def fingerprint(self) -> dict:
        """What identifies this data for a run trained on it: the dataset, its variant and frame grid, the
        key range, the sequences per split and a hash of every split's content (rolls and boundaries, so
        the file may be rewritten by another command line and still match)."""
        import hashlib

        a = self.attrs
        digest = hashlib.sha256()
        for name in SPLITS:
            s = self.split(name)
            digest.update(np.ascontiguousarray(s.offsets, dtype=np.int64).tobytes())
            digest.update(np.ascontiguousarray(s.rolls, dtype=np.uint8).tobytes())
        return {"dataset": a["dataset"], "variant": a["variant"], "grid": self.grid.__dict__,
                "lowest_key": a["lowest_key"], "n_keys": a["n_keys"],
                "sequences": {name: len(self.split(name)) for name in SPLITS}, "sha256": digest.hexdigest()}

    def summary(self) -> dict:
        """Per split: sequences, frames, notes per frame, shortest and longest sequence."""
        out = {}
        for name in SPLITS:
            s = self.split(name)
            lengths = s.lengths
            out[name] = {
                "sequences": len(s),
                "frames": int(lengths.sum()),
                "notes_per_frame": float(s.rolls.sum() / max(1, len(s.rolls))),
                "min_length": int(lengths.min()) if len(s) else 0,
                "max_length": int(lengths.max()) if len(s) else 0,
            }
        return out
