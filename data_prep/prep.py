"""Turn sources into the splits of a dataset file: the four benchmarks (two variants), the merged
benchmarks, the music21 Bach chorales and any folder of MIDI files."""
from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import __version__
from .h5 import SPLITS, Split, write_dataset
from .midi import LOWEST_KEY, MAX_FRAMES, N_KEYS, SCORE_PHASE, SRNN_GRID, Grid, MidiError, beat_grid, notes_to_roll, \
    read_midi_roll, transposition_to_c
from .sources import BENCHMARKS, SourceError, detect_format, find_source, open_midi_source, read_mat, \
    read_pickle, read_srnn_npz, sha256_of

VARIANTS = ("boulanger", "srnn")
NOTTINGHAM_INDEX = "Nottingham_midi_index.tsv"


class Reporter:
    """Receives progress; the command line shows it as a bar. The default shows nothing."""

    def start(self, total: int, what: str):
        pass

    def advance(self, name: str, error: str | None = None):
        pass


@dataclass
class Prepared:
    dataset: str
    variant: str
    grid: Grid
    splits: dict
    sources: list = field(default_factory=list)  # [{"name", "sha256"}]
    skipped: list = field(default_factory=list)  # [(file, reason)]

    def write(self, path, command: str, force: bool = False):
        for name in SPLITS:
            if len(self.splits[name]) == 0:
                raise SourceError(f"{self.dataset}: split {name!r} has no usable sequences")
        attrs = {
            "dataset": self.dataset, "variant": self.variant, "frame_unit": self.grid.unit,
            "frame_step": self.grid.step, "frame_phase": self.grid.phase, "frame_name": self.grid.name,
            "lowest_key": LOWEST_KEY, "n_keys": N_KEYS, "sources": self.sources, "version": __version__, "command": command,
        }
        write_dataset(path, self.splits, attrs, force=force)


def output_name(dataset: str, variant: str) -> str:
    return f"{dataset}.h5" if variant == "boulanger" else f"{dataset}-{variant}.h5"


def _limited(seqs, names, limit):
    return (seqs[:limit], names[:limit]) if limit else (seqs, names)


def prepare_benchmark(name, variant="boulanger", source=None, cache_dir="data", frame=None, transpose=True,
                      limit=None, reporter=None, download=None, max_frames=MAX_FRAMES) -> Prepared:
    """One of the four benchmarks, from whichever source :func:`find_source` settles on."""
    bench = BENCHMARKS[name]
    if variant not in VARIANTS:
        raise SourceError(f"unknown variant {variant!r}; choose one of {', '.join(VARIANTS)}")
    path = find_source(bench, variant, source, cache_dir, download)
    fmt = detect_format(path)
    reporter = reporter or Reporter()
    grid = SRNN_GRID if variant == "srnn" else beat_grid(frame or bench.frame)
    skipped = []
    if fmt in ("midi-folder", "zip"):
        index = _nottingham_index(path) if name == "nottingham" and variant == "boulanger" else {}
        raw = _convert_midi_collection(path, grid, index or ("C" if transpose and variant == "boulanger" else 0),
                                       limit, reporter, skipped, max_frames)
    else:
        if variant == "srnn" and fmt != "npz":
            raise SourceError(f"{path}: variant srnn needs the reference npz file or MIDI files, found a {fmt} file")
        if variant == "boulanger" and fmt == "npz":
            raise SourceError(f"{path}: an SRNN npz file holds variant srnn; pass --variant srnn")
        if frame and frame != bench.frame:
            raise SourceError(f"{path}: a {fmt} file is a finished piano roll in {bench.frame} frames; "
                              "--frame applies to MIDI sources only")
        reader = {"pickle": read_pickle, "mat": read_mat, "npz": read_srnn_npz}[fmt]
        raw = {s: _limited(*seqs_names, limit) for s, seqs_names in reader(path).items()}
    splits = {s: Split.from_sequences(*raw[s]) for s in SPLITS}
    sources = [{"name": path.name, "sha256": sha256_of(path) if path.is_file() else "folder"}]
    return Prepared(name, variant, grid, splits, sources, skipped)


def _nottingham_index(path: Path) -> dict:
    """Boulanger's transposition and order for each Nottingham MIDI file, from the index beside the folder."""
    for candidate in (path.parent / NOTTINGHAM_INDEX, path / NOTTINGHAM_INDEX):
        if candidate.is_file():
            with open(candidate, newline="") as f:
                return {row["midi_file"]: (int(row["transpose_semitones"]), int(row["mat_index"]))
                        for row in csv.DictReader(f, delimiter="\t")}
    return {}


def _convert_midi_collection(path, grid, transpose, limit, reporter, skipped, max_frames=MAX_FRAMES) -> dict:
    """Convert a folder/zip with train/ valid/ test/; ``transpose`` is a shift, 'C', or an index
    {relative name: (shift, order)}, which also orders each split as the canonical data."""
    listing, opener = open_midi_source(Path(path))
    if not any(listing.values()):
        raise SourceError(f"{path}: no MIDI files in train/ valid/ test/ subfolders")
    if isinstance(transpose, dict):
        index = transpose
        listing = {s: sorted(names, key=lambda n: (index.get(_index_key(n), (0, 10 ** 9))[1], n))
                   for s, names in listing.items()}
        shift_of = lambda name: index.get(_index_key(name), ("C", 0))[0]  # noqa: E731
    else:
        shift_of = lambda name: transpose  # noqa: E731
    return _convert_listing(listing, opener, grid, shift_of, limit, reporter, skipped, f"{path}/", max_frames)


def _convert_listing(listing, opener, grid, shift_of, limit, reporter, skipped, prefix="",
                     max_frames=MAX_FRAMES) -> dict:
    """Read every listed MIDI file; a file that fails, whatever the reason, is skipped with it, and the
    others are prepared."""
    listing = {s: names[:limit] if limit else names for s, names in listing.items()}
    jobs = [(s, n) for s in SPLITS for n in listing[s]]
    reporter.start(len(jobs), "MIDI files")
    out = {s: ([], []) for s in SPLITS}
    for split, name in jobs:
        try:
            roll = read_midi_roll(opener(name), grid, shift_of(name), name=f"{prefix}{name}", max_frames=max_frames)
        except Exception as exc:  # one bad file (corrupt, damaged in its zip, out of memory) skips that file
            reason = str(exc) if isinstance(exc, (MidiError, SourceError)) else \
                f"{prefix}{name}: {exc.__class__.__name__}: {exc}"
            skipped.append((name, reason))
            reporter.advance(name, reason)
            continue
        out[split][0].append(roll)
        out[split][1].append(str(Path(name).with_suffix("")))
        reporter.advance(name)
    return out


def _index_key(name: str) -> str:
    parts = Path(name).parts
    split_at = max(i for i, p in enumerate(parts) if p in SPLITS)
    return "/".join(parts[split_at:])


def prepare_midi_folder(path, name, frame="eighth", transpose=False, limit=None, reporter=None,
                        seed=0, max_frames=MAX_FRAMES) -> Prepared:
    """Any MIDI collection: train/ valid/ test/ subfolders when present, else a deterministic 80/10/10
    split by file path."""
    path = Path(path)
    if not path.is_dir():
        raise SourceError(f"{path}: not a folder")
    grid = beat_grid(frame)
    reporter = reporter or Reporter()
    skipped = []
    shift = "C" if transpose else 0
    listing, _ = open_midi_source(path)
    if any(listing.values()):
        raw = _convert_midi_collection(path, grid, shift, limit, reporter, skipped, max_frames)
    else:
        files = sorted(str(p.relative_to(path)) for p in path.rglob("*")
                       if p.is_file() and p.suffix.lower() in (".mid", ".midi"))
        if not files:
            raise SourceError(f"{path}: no .mid or .midi files")
        assignment = _split_assignment(len(files), (0.8, 0.1, 0.1), seed)
        listing = {s: [f for f, a in zip(files, assignment) if a == s] for s in SPLITS}
        raw = _convert_listing(listing, lambda rel: path / rel, grid, lambda rel: shift, limit, reporter,
                               skipped, f"{path}/", max_frames)
    if not any(raw[s][0] for s in SPLITS):
        raise SourceError(f"{path}: none of the {len(skipped)} MIDI files could be read")
    splits = {s: Split.from_sequences(*raw[s]) for s in SPLITS}
    return Prepared(name, "midi", grid, splits, [{"name": path.name, "sha256": "folder"}], skipped)


def _split_assignment(n, fractions, seed) -> list:
    """A fixed seeded assignment of n items to train/valid/test with about the given fractions,
    each split getting at least one item when n >= 3."""
    order = np.random.default_rng(seed).permutation(n)
    n_valid = max(1 if n >= 3 else 0, int(round(fractions[1] * n)))
    n_test = max(1 if n >= 3 else 0, int(round(fractions[2] * n)))
    labels = ["train"] * n
    for rank, i in enumerate(order):
        if rank < n_valid:
            labels[i] = "valid"
        elif rank < n_valid + n_test:
            labels[i] = "test"
    return labels


def prepare_bach(limit=None, frame="quarter", transpose=True, reporter=None, seed=0,
                 max_frames=MAX_FRAMES) -> Prepared:
    """The Bach chorales shipped inside music21: a fixed seeded 60/20/20 split by piece. No network."""
    from music21 import corpus

    paths = sorted(corpus.getComposer("bach"), key=str)
    assignment = _split_assignment(len(paths), (0.6, 0.2, 0.2), seed)
    listing = {s: [p for p, a in zip(paths, assignment) if a == s] for s in SPLITS}
    listing = {s: names[:limit] if limit else names for s, names in listing.items()}
    grid = beat_grid(frame, SCORE_PHASE)
    reporter = reporter or Reporter()
    jobs = [(s, p) for s in SPLITS for p in listing[s]]
    reporter.start(len(jobs), "music21 Bach chorales")
    raw = {s: ([], []) for s in SPLITS}
    skipped = []
    for split, p in jobs:
        name = Path(p).stem
        try:
            notes = score_notes(corpus.parse(p))
            if not notes:
                raise MidiError(f"{name}: no notes")
            roll = notes_to_roll(notes, grid, transposition_to_c(notes) if transpose else 0, max_frames=max_frames,
                                 name=name)
        except Exception as exc:  # music21 raises many kinds on odd scores; each file is skipped alone
            skipped.append((name, f"{name}: {exc}"))
            reporter.advance(name, str(exc))
            continue
        raw[split][0].append(roll)
        raw[split][1].append(name)
        reporter.advance(name)
    splits = {s: Split.from_sequences(*raw[s]) for s in SPLITS}
    import music21

    return Prepared("bach", "music21", grid, splits, [{"name": f"music21-{music21.__version__} corpus bach",
                                                        "sha256": "package"}], skipped)


def score_notes(score) -> list:
    """A music21 score as notes ``(pitch, start, end)`` in quarter notes (grace notes have no length)."""
    notes = []
    for n in score.flatten().notes:
        start, length = float(n.offset), float(n.quarterLength)
        if length > 0:
            notes.extend((p.midi, start, start + length) for p in n.pitches)
    return notes


def prepare_merged(cache_dir="data", limit=None, reporter=None, download=None) -> Prepared:
    """The four Boulanger benchmarks together, split by split (the poster's merged-data experiment)."""
    parts = [prepare_benchmark(n, "boulanger", None, cache_dir, limit=limit, reporter=reporter, download=download)
             for n in BENCHMARKS]
    splits = {}
    for s in SPLITS:
        seqs = [seq for p in parts for seq in p.splits[s].sequences()]
        names = [f"{p.dataset}/{n}" for p in parts for n in p.splits[s].names]
        splits[s] = Split.from_sequences(seqs, names)
    # JSB has quarter frames, the others eighths: the merged file records the eighth-note grid of the majority
    return Prepared("merged", "boulanger", parts[-1].grid, splits, [x for p in parts for x in p.sources],
                    [x for p in parts for x in p.skipped])
