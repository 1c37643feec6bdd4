"""MIDI <-> piano roll.

A piano roll is a (frames, 88) uint8 array; column c is MIDI note c + 21 (A0..C8).

Every conversion goes through one list of notes ``(pitch, start, end)`` measured in the unit of a
:class:`Grid`, and one of two frame rules:

- ``sample``: frame k holds a note when ``start <= (k + phase) * step < end``. With ``step`` an eighth note
  and ``phase`` 1.5 this is the rule that reproduces Boulanger-Lewandowski's Nottingham and Piano-midi.de
  rolls exactly; the benchmarks use it. A note shorter than a frame that falls between two sampling points
  is lost.
- ``overlap``: frame k covers ``[(k + phase) * step, (k + phase + 1) * step)``; a note holds its onset frame
  and every later frame its span covers by at least ``OVERLAP_SHARE`` of a frame, so no note is lost. The
  default for a user's own MIDI.

The writer places frame k so that the grid's rule reads it back, which makes write-then-read exact for
every grid and both rules.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from fractions import Fraction

import mido
import numpy as np

from .files import reading, writing
from .limits import MAX_FRAMES, OVERLAP_SHARE, RULES

LOWEST_KEY = 21
N_KEYS = 88
PERCUSSION_CHANNEL = 9  # General MIDI channel 10: its note numbers are drums, not pitches
WRITE_TICKS_PER_BEAT = 480
WRITE_TEMPO = 500_000  # microseconds per beat: 120 bpm, so a tick is 1/960 s and 0.3 s is 288 ticks
MAX_TICKS_PER_BEAT = 0x7FFF  # a MIDI file's division: 15 bits
MAX_TEMPO = 0xFFFFFF  # microseconds per beat: 24 bits
MAX_STEP_SECONDS = 60.0


class MidiError(ValueError):
    """A MIDI file that cannot be read as music."""


@dataclass(frozen=True)
class Grid:
    """Where frames sit in time: ``step`` beats (unit 'beat') or seconds (unit 'seconds') apart, and the
    ``rule`` that puts a note in a frame (see the module's text)."""

    unit: str
    step: float
    phase: float
    name: str
    rule: str = "sample"

    def __post_init__(self):
        if self.unit not in ("beat", "seconds") or not math.isfinite(self.step) or not self.step > 0 \
                or not (math.isfinite(self.phase) and 0 <= self.phase < 1e6) or self.rule not in RULES:
            raise ValueError(f"invalid grid {self}")
        write_timing(self)  # a grid is only as good as the MIDI files it can be written to


def writable_tempo(bpm) -> bool:
    """Whether ``bpm`` is a tempo a MIDI file can state: a number whose beat is 1..2^24 - 1 microseconds
    (about 3.6 to 60 million beats per minute). Data files, checkpoints and the writer all ask this."""
    return (isinstance(bpm, (int, float)) and not isinstance(bpm, bool) and math.isfinite(bpm) and bpm > 0
            and 1 <= round(60e6 / bpm) <= MAX_TEMPO)


def write_timing(grid: Grid, bpm: float = 120.0) -> tuple:
    """(ticks per beat, microseconds per beat, ticks per frame) that place every frame boundary of ``grid`` on
    a whole tick, so that a written roll reads back exactly. A beat grid keeps ``bpm`` and takes a finer
    division where an eighth of 480 ticks is not enough; a seconds grid keeps 120 bpm where 0.3 s (288 ticks)
    and its like fit, and otherwise makes a frame a whole number of beats, or a tick one microsecond.
    Raises ValueError for a grid that no MIDI file can hold exactly."""
    if grid.unit == "beat":
        step = Fraction(grid.step).limit_denominator(MAX_TICKS_PER_BEAT)
        phase = Fraction(math.floor(grid.phase))
        if abs(float(step) - grid.step) > 1e-9 * grid.step:
            raise ValueError(f"a frame of {grid.step} beats is not a whole number of MIDI ticks")
        tpb = math.lcm(WRITE_TICKS_PER_BEAT, step.denominator)
        if tpb > MAX_TICKS_PER_BEAT:
            tpb = step.denominator
        frame_ticks = step * tpb
        if tpb > MAX_TICKS_PER_BEAT or frame_ticks * (1 + phase) > 2 ** 27:
            raise ValueError(f"a frame of {grid.step} beats is not a whole number of MIDI ticks")
        if not writable_tempo(bpm):
            raise ValueError(f"tempo {bpm} bpm cannot be written to MIDI")
        return tpb, int(round(60e6 / bpm)), int(frame_ticks)
    micros = grid.step * 1e6
    if grid.step > MAX_STEP_SECONDS or abs(micros - round(micros)) > 1e-6 * max(1.0, micros):
        raise ValueError(f"a frame of {grid.step} s is not a whole number of microseconds up to "
                         f"{MAX_STEP_SECONDS:g} s, which MIDI cannot place exactly")
    micros = int(round(micros))
    at_120 = Fraction(micros * WRITE_TICKS_PER_BEAT, WRITE_TEMPO)
    if at_120.denominator == 1:
        return WRITE_TICKS_PER_BEAT, WRITE_TEMPO, int(at_120)
    for beats in range(1, 65):  # a frame of whole beats at a tempo near the original's
        if micros % beats == 0 and micros // beats <= MAX_TEMPO:
            return WRITE_TICKS_PER_BEAT, micros // beats, beats * WRITE_TICKS_PER_BEAT
    return WRITE_TICKS_PER_BEAT, WRITE_TICKS_PER_BEAT, micros  # a tick is a microsecond


@dataclass
class NoteCounts:
    """What became of a collection's notes (read from the files, kept in the rolls, skipped), and the tempo
    each file starts at."""

    notes: int = 0  # inside the 88 keys, of the kept channels and programs
    kept: int = 0  # holding at least one frame of the roll
    drums: int = 0  # on the percussion channel, skipped
    other_programs: int = 0  # of instruments outside --programs, skipped
    tempos: list = field(default_factory=list)  # the first tempo of every file read, beats per minute

    def add(self, other: "NoteCounts"):
        for key in ("notes", "kept", "drums", "other_programs"):
            setattr(self, key, getattr(self, key) + getattr(other, key))
        self.tempos.extend(other.tempos)

    @property
    def lost_share(self) -> float:
        return 1 - self.kept / self.notes if self.notes else 0.0


FRAME_BEATS = {"quarter": 1.0, "eighth": 0.5, "16th": 0.25}
# The Boulanger rule samples 1.5 steps after each frame start; scores from music21 have exact
# onsets, so there the frame centre is the natural sampling point.
BOULANGER_PHASE = 1.5
SCORE_PHASE = 0.5
SRNN_GRID = Grid("seconds", 0.3, 0.0, "0.3s")


def beat_grid(frame: str, phase: float = BOULANGER_PHASE) -> Grid:
    if frame not in FRAME_BEATS:
        raise ValueError(f"unknown frame unit {frame!r}; choose one of {', '.join(FRAME_BEATS)}")
    return Grid("beat", FRAME_BEATS[frame], phase, frame)


def frame_grid(frame: str, rule: str = "sample") -> Grid:
    """A grid from a frame name: 'quarter', 'eighth', '16th' (beats, tempo ignored) or seconds such as
    '0.3s' (tempo map applied). The sample rule samples beat grids 1.5 steps in (Boulanger's phase) and
    seconds grids at the frame start, as the SRNN data; the overlap rule's frames start on the grid."""
    if rule not in RULES:
        raise ValueError(f"unknown frame rule {rule!r}; choose one of {', '.join(RULES)}")
    if frame.endswith("s") and frame not in FRAME_BEATS:
        try:
            seconds = float(frame[:-1])
        except ValueError:
            seconds = 0.0
        if not 0 < seconds < 60:
            raise ValueError(f"frame {frame!r}: expected seconds such as 0.3s (more than 0, under 60)")
        return Grid("seconds", seconds, 0.0, f"{seconds:.10g}s", rule)
    if frame not in FRAME_BEATS:
        raise ValueError(f"unknown frame {frame!r}; choose one of {', '.join(FRAME_BEATS)} or seconds such as 0.3s")
    return replace(beat_grid(frame, BOULANGER_PHASE if rule == "sample" else 0.0), rule=rule)


def grid_from_attrs(unit: str, step: float, phase: float, name: str, rule: str = "sample") -> Grid:
    return Grid(str(unit), float(step), float(phase), str(name), str(rule))


# ----------------------------------------------------------------------------- reading


def read_midi_notes(path, grid: Grid, name=None, drums: bool = False, programs=None, counts=None):
    """Notes ``(pitch, start, end)`` of a MIDI file in the grid's unit, and the file's length in that unit.

    ``path`` may be a file object; ``name`` is then what error messages call it.

    Note-on with velocity 0 counts as note-off; repeated note-ons of one pitch are closed first in,
    first out; notes still open at the end of their track end there. The percussion channel is skipped
    unless ``drums``; with ``programs`` (a set of General MIDI programs 0-127) only notes of channels playing
    one of them are kept. ``counts`` (a :class:`NoteCounts`) adds the notes skipped either way, and the
    file's first tempo.
    """
    is_file = hasattr(path, "read")
    path_name = name or (getattr(path, "name", "<MIDI data>") if is_file else str(path))
    mid = open_midi(path, path_name, timed=grid.unit == "seconds")
    tpb = mid.ticks_per_beat
    tick_notes, tempos, program_changes, length = [], [], [], 0
    for track in mid.tracks:
        tick, open_notes = 0, {}
        for msg in track:
            tick += msg.time
            if msg.type == "set_tempo" and msg.tempo > 0:  # open_midi refused tempo 0 where time matters
                tempos.append((tick, msg.tempo))
            elif msg.type == "program_change":
                program_changes.append((tick, msg.channel, msg.program))
            elif msg.type in ("note_on", "note_off"):
                key = (msg.channel, msg.note)
                if msg.type == "note_on" and msg.velocity > 0:
                    open_notes.setdefault(key, []).append(tick)
                elif open_notes.get(key):
                    tick_notes.append((msg.channel, msg.note, open_notes[key].pop(0), tick))
        for (channel, pitch), starts in open_notes.items():
            tick_notes.extend((channel, pitch, s, tick) for s in starts)
        length = max(length, tick)
    counts = counts if counts is not None else NoteCounts()
    kept = []
    program_of = _programs(program_changes)
    for channel, pitch, start, end in tick_notes:
        if channel == PERCUSSION_CHANNEL and not drums:
            counts.drums += 1
        elif programs is not None and channel != PERCUSSION_CHANNEL and program_of(channel, start) not in programs:
            counts.other_programs += 1
        else:
            kept.append((pitch, start, end))
    tick_notes = kept
    if tempos:
        counts.tempos.append(float(mido.tempo2bpm(min(tempos, key=lambda t: t[0])[1])))
    if not tick_notes:
        raise MidiError(f"{path_name}: no notes" + (" (after skipping drums and other programs)"
                                                    if counts.drums or counts.other_programs else ""))
    if all(e <= s for _, s, e in tick_notes):
        raise MidiError(f"{path_name}: every note has zero length (its note-off at its note-on)")
    if grid.unit == "beat":
        to_unit = lambda t: t / tpb  # noqa: E731 - tempo is ignored on a beat grid, as Boulanger did
    else:
        to_unit = _tick_to_seconds(tempos, tpb)
    notes = [(p, to_unit(s), to_unit(e)) for p, s, e in tick_notes if e > s]
    return notes, to_unit(length)


def open_midi(path, name=None, timed: bool = False) -> mido.MidiFile:
    """The one MIDI reader every command goes through (prep, --prime, evaluate --midi, render): a file mido
    can parse, of type 0 or 1, with a division in ticks per beat. ``timed`` (the file is placed in seconds:
    seconds grids, audio) also refuses a tempo of 0, which would put every later event at one instant; on a
    beat grid tempo plays no part and such events are ignored."""
    is_file = hasattr(path, "read")
    name = name or (getattr(path, "name", "<MIDI data>") if is_file else str(path))
    try:
        mid = mido.MidiFile(file=path, clip=True) if is_file else mido.MidiFile(str(reading(path)), clip=True)
    except Exception as exc:  # mido raises many kinds for corrupt files
        raise MidiError(f"{name}: not a readable MIDI file ({exc.__class__.__name__}: {exc})") from None
    if mid.type == 2:
        raise MidiError(f"{name}: MIDI type 2 (independent sequences) is not supported")
    if mid.ticks_per_beat == 0:
        raise MidiError(f"{name}: time division 0 (no ticks per beat): not a valid MIDI file")
    if mid.ticks_per_beat < 0:
        raise MidiError(f"{name}: SMPTE time division is not supported")
    if timed:
        for track in mid.tracks:
            tick = 0
            for msg in track:
                tick += msg.time
                if msg.type == "set_tempo" and msg.tempo <= 0:
                    raise MidiError(f"{name}: a tempo of 0 at tick {tick}: its events cannot be placed in time")
    return mid


def _programs(changes):
    """program_of(channel, tick): the General MIDI program a channel plays at a tick (0, piano, until told)."""
    by_channel = {}
    for tick, channel, program in sorted(changes):
        by_channel.setdefault(channel, ([], []))
        by_channel[channel][0].append(tick)
        by_channel[channel][1].append(program)

    def program_of(channel, tick):
        ticks, programs = by_channel.get(channel, ([], []))
        i = int(np.searchsorted(ticks, tick, side="right")) - 1
        return programs[i] if i >= 0 else 0

    return program_of


def _tick_to_seconds(tempos, tpb):
    tempos = sorted(tempos)
    if not tempos or tempos[0][0] != 0:
        tempos.insert(0, (0, 500_000))
    ticks = np.array([t for t, _ in tempos], dtype=np.float64)
    per_tick = np.array([tempo for _, tempo in tempos], dtype=np.float64) / 1e6 / tpb
    seconds_at = np.concatenate([[0.0], np.cumsum(np.diff(ticks) * per_tick[:-1])])

    def convert(tick):
        i = int(np.searchsorted(ticks, tick, side="right")) - 1
        return float(seconds_at[i] + (tick - ticks[i]) * per_tick[i])

    return convert


def notes_to_roll(notes, grid: Grid, transpose: int = 0, n_frames: int | None = None,
                  max_frames: int = MAX_FRAMES, name="piece", counts: NoteCounts | None = None) -> np.ndarray:
    """Notes on the grid, by the grid's rule. Keys outside 21..108 after transposition are dropped.

    With ``n_frames`` None the roll ends at its last sounding frame (trailing silence dropped). A roll
    longer than ``max_frames`` is refused with a :class:`MidiError`. ``counts`` adds the notes inside the
    keys and those that hold a frame.
    """
    spans, inside = [], 0
    for pitch, start, end in notes:
        key = pitch + transpose - LOWEST_KEY
        if not 0 <= key < N_KEYS:
            continue
        inside += 1
        lo, hi = _frames_of(start, end, grid)
        if hi > lo:
            spans.append((key, lo, hi))
    last = max((hi for _, _, hi in spans), default=0)
    length = last if n_frames is None else n_frames
    if length > max_frames:
        raise MidiError(f"{name}: {length} {grid.name} frames long, over the limit of {max_frames} "
                        "(--max-frames)")
    if counts is not None:
        counts.notes += inside
        counts.kept += len(spans)
    roll = np.zeros((length, N_KEYS), dtype=np.uint8)
    for key, lo, hi in spans:
        roll[lo:hi, key] = 1
    return roll


def _frames_of(start: float, end: float, grid: Grid) -> tuple:
    """The frames [lo, hi) a note holds under the grid's rule."""
    if grid.rule == "sample":
        return max(0, _frame_ceil(start, grid)), _frame_ceil(end, grid)
    first = start / grid.step - grid.phase
    last = end / grid.step - grid.phase
    lo = max(0, math.floor(first + 1e-6))  # the onset frame, always held
    hi = max(lo + 1, math.ceil(last - 1e-6))  # every frame the span reaches ...
    if hi - 1 > lo and last - (hi - 1) < OVERLAP_SHARE - 1e-9:  # ... but a last one it barely enters
        hi -= 1
    return lo, hi


def _frame_ceil(time: float, grid: Grid) -> int:
    """The first frame whose sampling point is at or after ``time``. The tolerance absorbs rounding in
    tick-to-seconds conversion, so a note ending exactly on a sampling point does not reach it."""
    return math.ceil(time / grid.step - grid.phase - 1e-6)


def frames_in(length: float, grid: Grid) -> int:
    """Number of frames whose sampling point lies before ``length``."""
    return max(0, _frame_ceil(length, grid))


def read_midi_roll(path, grid: Grid, transpose: int | str = 0, keep_length: bool = False, name=None,
                   max_frames: int = MAX_FRAMES, drums: bool = False, programs=None,
                   counts: NoteCounts | None = None) -> np.ndarray:
    """A MIDI file as a piano roll. ``transpose='C'`` shifts the estimated key to C major / C minor.

    ``keep_length`` keeps trailing silence up to the end of the file (used to read back our own files).
    ``drums``, ``programs`` and ``counts`` as :func:`read_midi_notes`; ``counts`` also gets the notes kept.
    """
    notes, length = read_midi_notes(path, grid, name, drums, programs, counts)
    shift = transposition_to_c(notes) if transpose == "C" else int(transpose)
    roll = notes_to_roll(notes, grid, shift, frames_in(length, grid) if keep_length else None, max_frames,
                         name or path, counts)
    if not roll.any():
        raise MidiError(f"{name or path}: no notes inside the piano range 21..108")
    return roll


# ----------------------------------------------------------------------------- writing


def roll_to_midi(roll: np.ndarray, path, grid: Grid, bpm: float = 120.0, velocity: int = 80):
    """Write a piano roll as a one-track piano MIDI file that :func:`read_midi_roll` reads back exactly.

    A key held over consecutive frames becomes one note. On a beat grid the file states ``bpm``; on a
    seconds grid the tempo is chosen so that ticks map to seconds exactly (:func:`write_timing`).
    """
    roll = np.asarray(roll)
    if roll.ndim != 2 or roll.shape[1] != N_KEYS:
        raise ValueError(f"piano roll must have shape (frames, {N_KEYS}), got {roll.shape}")
    ticks_per_beat, tempo, frame_ticks = write_timing(grid, bpm)
    # frame k occupies [floor(k + phase), floor(k + phase) + 1) steps, which contains its sampling point
    lead = int(math.floor(grid.phase))
    padded = np.zeros((roll.shape[0] + 2, N_KEYS), dtype=np.int8)
    padded[1:-1] = roll > 0
    change = np.diff(padded, axis=0)  # +1 where a run of a key starts, -1 one frame after it ends
    frame, key = np.nonzero(change)
    events = sorted(
        ((f + lead) * frame_ticks, 0 if change[f, k] < 0 else 1, k + LOWEST_KEY) for f, k in zip(frame, key)
    )  # note-offs sort before note-ons at the same tick, so repeated notes stay separate
    track = mido.MidiTrack()
    track.append(mido.MetaMessage("set_tempo", tempo=tempo, time=0))
    track.append(mido.Message("program_change", program=0, channel=0, time=0))
    now = 0
    for tick, is_on, pitch in events:
        kind = "note_on" if is_on else "note_off"
        track.append(mido.Message(kind, note=int(pitch), velocity=velocity if is_on else 0, time=int(tick - now)))
        now = tick
    end = (roll.shape[0] + lead) * frame_ticks
    track.append(mido.MetaMessage("end_of_track", time=int(max(0, end - now))))
    mid = mido.MidiFile(ticks_per_beat=ticks_per_beat)
    mid.tracks.append(track)
    with writing(path):
        mid.save(str(path))


# ----------------------------------------------------------------------------- key


# Krumhansl-Kessler key profiles, index 0 = tonic
_MAJOR = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
_MINOR = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])


def transposition_to_c(notes) -> int:
    """Semitones (-6..5) that move the estimated key (Krumhansl-Schmuckler) to C major or C minor."""
    histogram = np.zeros(12)
    for pitch, start, end in notes:
        histogram[pitch % 12] += end - start
    if not histogram.any():
        return 0
    best_tonic, best_r = 0, -np.inf
    for tonic in range(12):
        rotated = np.roll(histogram, -tonic)
        for profile in (_MAJOR, _MINOR):
            r = np.corrcoef(rotated, profile)[0, 1]
            if r > best_r:
                best_tonic, best_r = tonic, r
    return (-best_tonic + 6) % 12 - 6
