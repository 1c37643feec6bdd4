"""Turn sources into the splits of a dataset file: the four benchmarks (two variants), the merged
benchmarks, the music21 Bach chorales and any folder of MIDI files."""
from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import __version__
from .limits import VARIANTS
from .h5 import SPLITS, Split, write_dataset
from .midi import LOWEST_KEY, MAX_FRAMES, N_KEYS, SCORE_PHASE, SRNN_GRID, Grid, MidiError, NoteCounts, beat_grid, \
    frame_grid, notes_to_roll, read_midi_roll, transposition_to_c
from .sources import BENCHMARKS, SourceError, detect_format, find_source, midi_files, open_midi_source, \
    read_mat, read_pickle, read_srnn_npz, sha256_of

NOTTINGHAM_INDEX = "Nottingham_midi_index.tsv"


class Reporter:
    """Receives progress; the command line shows it as a bar. The default shows nothing."""

    def start(self, total: int, what: str):
        pass

    def advance(self, name: str, error: str | None = None):
        pass


@dataclass
class MidiReading:
    """How MIDI files are read into rolls (the options), and what reading them found (the rest)."""

    transpose: int | str = 0  # semitones, or "C" for the estimated key to C major / C minor
    drums: bool = False  # keep the percussion channel
    programs: frozenset | None = None  # General MIDI programs to keep (None: all)
    max_frames: int = MAX_FRAMES
    counts: dict = field(default_factory=lambda: {s: NoteCounts() for s in SPLITS})  # with the files' tempos
    skipped: list = field(default_factory=list)  # [(file, reason)]

    def options(self) -> dict:
        return {"transpose": self.transpose, "drums": self.drums,
                "programs": sorted(self.programs) if self.programs is not None else None}


@dataclass
class Prepared:
    dataset: str
    variant: str
    grid: Grid
    splits: dict
    sources: list = field(default_factory=list)  # [{"name", "sha256"}]
    skipped: list = field(default_factory=list)  # [(file, reason)]
    reading: MidiReading | None = None  # for MIDI sources
    all_test: bool = False  # every piece in the test split, for scoring only

    def write(self, path, command: str, force: bool = False):
        for name in SPLITS:
            if len(self.splits[name]) == 0 and not (self.all_test and name != "test"):
                raise SourceError(f"{self.dataset}: split {name!r} has no usable sequences"
                                  + ("" if self.all_test else "; to score a few pieces, prepare them with "
                                     "--split all-test or use `srnn evaluate RUN --midi`"))
        attrs = {
            "dataset": self.dataset, "variant": self.variant, "frame_unit": self.grid.unit,
            "frame_step": self.grid.step, "frame_phase": self.grid.phase, "frame_name": self.grid.name,
            "frame_rule": self.grid.rule, "lowest_key": LOWEST_KEY, "n_keys": N_KEYS, "sources": self.sources,
            "version": __version__, "command": command,
        }
        if self.reading is not None:
            attrs["midi_options"] = self.reading.options()
            counts = self.reading.counts
            tempos = counts["train"].tempos or [t for s in SPLITS for t in counts[s].tempos]
            if tempos and self.grid.unit == "beat":  # samples are written at the training pieces' median tempo
                attrs["tempo_bpm"] = float(np.median(tempos))
        if self.all_test:
            attrs["splits"] = "all-test"
        write_dataset(path, self.splits, attrs, force=force)


def _limited(seqs, names, first_inputs=None, limit=None):
    if not limit:
        return seqs, names, first_inputs
    return seqs[:limit], names[:limit], None if first_inputs is None else first_inputs[:limit]


def prepare_benchmark(name, variant="boulanger", source=None, cache_dir="data", frame=None, transpose=True,
                      limit=None, reporter=None, download=None, max_frames=MAX_FRAMES, rule=None) -> Prepared:
    """One of the four benchmarks, from whichever source :func:`find_source` settles on."""
    bench = BENCHMARKS[name]
    if variant not in VARIANTS:
        raise SourceError(f"unknown variant {variant!r}; choose one of {', '.join(VARIANTS)}")
    path = find_source(bench, variant, source, cache_dir, download)
    fmt = detect_format(path)
    reporter = reporter or Reporter()
    try:
        grid = SRNN_GRID if variant == "srnn" else beat_grid(frame or bench.frame)
    except ValueError as exc:
        raise SourceError(f"--frame: {exc} (a benchmark's frames are beats)") from None
    if rule and rule != grid.rule:
        grid = frame_grid(grid.name, rule)
    reading = None
    if fmt in ("midi-folder", "zip"):
        index = _nottingham_index(path) if name == "nottingham" and variant == "boulanger" else {}
        reading = MidiReading(transpose="C" if transpose and variant == "boulanger" else 0, max_frames=max_frames)
        raw = _convert_midi_collection(path, grid, index or reading.transpose, limit, reporter, reading)
    else:
        if rule:
            raise SourceError(f"{path}: a {fmt} file is a finished piano roll; --frame-rule applies to MIDI sources "
                              "only")
        if variant == "srnn" and fmt != "npz":
            raise SourceError(f"{path}: variant srnn needs the reference npz file or MIDI files, found a {fmt} file")
        if variant == "boulanger" and fmt == "npz":
            raise SourceError(f"{path}: an SRNN npz file holds variant srnn; pass --variant srnn")
        if frame and frame != bench.frame:
            raise SourceError(f"{path}: a {fmt} file is a finished piano roll in {bench.frame} frames; "
                              "--frame applies to MIDI sources only")
        reader = {"pickle": read_pickle, "mat": read_mat, "npz": read_srnn_npz}[fmt]
        raw = {s: _limited(*split, limit=limit) for s, split in reader(path).items()}
    splits = {s: Split.from_sequences(*raw[s]) for s in SPLITS}
    sources = [{"name": path.name, "sha256": sha256_of(path) if path.is_file() else "folder"}]
    return Prepared(name, variant, grid, splits, sources, reading.skipped if reading else [], reading)


def _nottingham_index(path: Path) -> dict:
    """Boulanger's transposition and order for each Nottingham MIDI file, from the index beside the folder."""
    for candidate in (path.parent / NOTTINGHAM_INDEX, path / NOTTINGHAM_INDEX):
        if candidate.is_file():
            with open(candidate, newline="") as f:
                return {row["midi_file"]: (int(row["transpose_semitones"]), int(row["mat_index"]))
                        for row in csv.DictReader(f, delimiter="\t")}
    return {}


def _convert_midi_collection(path, grid, transpose, limit, reporter, reading: MidiReading) -> dict:
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
    return _convert_listing(listing, opener, grid, shift_of, limit, reporter, reading, f"{path}/")


def _convert_listing(listing, opener, grid, shift_of, limit, reporter, reading: MidiReading, prefix="") -> dict:
    """Read every listed MIDI file; a file that fails, whatever the reason, is skipped with it, and the
    others are prepared. ``reading`` gets the note counts per split, the files' tempos and the skipped files."""
    listing = {s: names[:limit] if limit else names for s, names in listing.items()}
    jobs = [(s, n) for s in SPLITS for n in listing[s]]
    reporter.start(len(jobs), "MIDI files")
    out = {s: ([], []) for s in SPLITS}
    for split, name in jobs:
        counts = NoteCounts()
        try:
            roll = read_midi_roll(opener(name), grid, shift_of(name), name=f"{prefix}{name}",
                                  max_frames=reading.max_frames, drums=reading.drums, programs=reading.programs,
                                  counts=counts)
        except Exception as exc:  # one bad file (corrupt, damaged in its zip, out of memory) skips that file
            reason = str(exc) if isinstance(exc, (MidiError, SourceError)) else \
                f"{prefix}{name}: {exc.__class__.__name__}: {exc}"
            reading.skipped.append((name, reason))
            reporter.advance(name, reason)
            counts.tempos.clear()  # a skipped file's tempo is not the data's
            reading.counts[split].add(counts)  # but a file whose notes all fall between frames loses them all
            continue
        reading.counts[split].add(counts)
        out[split][0].append(roll)
        out[split][1].append(str(Path(name).with_suffix("")))
        reporter.advance(name)
    return out


def _index_key(name: str) -> str:
    parts = Path(name).parts
    split_at = max(i for i, p in enumerate(parts) if p in SPLITS)
    return "/".join(parts[split_at:])


def prepare_midi_folder(path, name, frame="eighth", transpose=False, limit=None, reporter=None,
                        seed=0, max_frames=MAX_FRAMES, rule="overlap", drums=False, programs=None,
                        all_test=False) -> Prepared:
    """Any MIDI collection: train/ valid/ test/ subfolders when present, else a deterministic 80/10/10
    split by file path (or, with ``all_test``, every file in the test split, for scoring). ``frame`` is a
    beat unit or seconds ('0.3s'); ``rule`` 'overlap' keeps every note, 'sample' is the benchmarks' rule."""
    path = Path(path)
    if not path.is_dir():
        raise SourceError(f"{path}: not a folder")
    try:
        grid = frame_grid(frame, rule)
    except ValueError as exc:
        raise SourceError(f"--frame: {exc}") from None
    reporter = reporter or Reporter()
    reading = MidiReading("C" if transpose else 0, drums, frozenset(programs) if programs is not None else None,
                          max_frames)
    if all_test:
        return read_pieces(path, grid, reading, name, limit, reporter)
    listing, _ = open_midi_source(path)
    if any(listing.values()):
        raw = _convert_midi_collection(path, grid, reading.transpose, limit, reporter, reading)
    else:
        files = midi_files(path)
        if not files:
            raise SourceError(f"{path}: no .mid or .midi files")
        assignment = _split_assignment(len(files), (0.8, 0.1, 0.1), seed)
        listing = {s: [f for f, a in zip(files, assignment) if a == s] for s in SPLITS}
        raw = _convert_listing(listing, lambda rel: path / rel, grid, lambda rel: reading.transpose, limit, reporter,
                               reading, f"{path}/")
    if not any(raw[s][0] for s in SPLITS):
        raise SourceError(f"{path}: {nothing_usable(reading)}")
    splits = {s: Split.from_sequences(*raw[s]) for s in SPLITS}
    return Prepared(name, "midi", grid, splits, [{"name": path.name, "sha256": "folder"}], reading.skipped, reading,
                    all_test)


def read_pieces(path, grid: Grid, reading: MidiReading, name="pieces", limit=None, reporter=None) -> Prepared:
    """One MIDI file, or every MIDI file under a folder, read on ``grid`` as ``reading`` says, all in the test
    split: pieces to score with a trained model."""
    path = Path(path)
    if path.is_file():
        listing, opener, prefix = [path.name], (lambda rel: path), f"{path.parent}/"
    elif path.is_dir():
        listing, opener, prefix = midi_files(path), (lambda rel: path / rel), f"{path}/"
    else:
        raise SourceError(f"{path}: no such MIDI file or folder")
    if not listing:
        raise SourceError(f"{path}: no .mid or .midi files")
    raw = _convert_listing({"train": [], "valid": [], "test": listing}, opener, grid, lambda rel: reading.transpose,
                           limit, reporter or Reporter(), reading, prefix)
    if not raw["test"][0]:
        raise SourceError(f"{path}: {nothing_usable(reading)}")
    splits = {s: Split.from_sequences(*raw[s]) for s in SPLITS}
    return Prepared(name, "midi", grid, splits, [{"name": path.name, "sha256": "folder"}], reading.skipped, reading,
                    all_test=True)


SKIP_KINDS = (("over the limit", "longer than --max-frames {max_frames}"), ("zero length", "with notes of zero length"),
              ("no notes", "without notes in the piano range"), ("not a readable", "unreadable"),
              ("not supported", "of an unsupported kind"), ("tempo of 0", "with a tempo of 0"))


def nothing_usable(reading: MidiReading) -> str:
    """Why no piece of a collection could be prepared, by kind: 'none of the 14 MIDI files could be prepared:
    12 longer than --max-frames 100000, 2 unreadable'."""
    kinds = {}
    for _, reason in reading.skipped:
        kind = next((label for word, label in SKIP_KINDS if word in reason), "failed otherwise")
        kinds[kind] = kinds.get(kind, 0) + 1
    parts = ", ".join(f"{n} {kind.format(max_frames=reading.max_frames)}" for kind, n in kinds.items())
    return f"none of the {len(reading.skipped)} MIDI files could be prepared: {parts}"


def reading_of(attrs: dict) -> MidiReading:
    """How the MIDI behind a prepared file was read (its midi_options), so that new pieces are read alike.
    Files without them: the benchmarks and the Bach chorales were transposed to C, other data was not."""
    options = attrs.get("midi_options") or {}
    transpose = options.get("transpose", "C" if attrs.get("variant") in ("boulanger", "music21") else 0)
    programs = options.get("programs")
    return MidiReading(transpose, bool(options.get("drums", False)),
                       frozenset(programs) if programs is not None else None)


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
