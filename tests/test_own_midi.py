"""A user's own MIDI: the note-preserving frame rule, seconds frames, drums and instruments, note counts, the
median tempo, and scoring pieces with `srnn evaluate --midi`."""
import json

import mido
import numpy as np
import pytest
from click.testing import CliRunner

from cli.main import srnn
from data_prep.h5 import PianoRollFile
from data_prep.midi import NoteCounts, frame_grid, read_midi_notes, read_midi_roll, roll_to_midi
from tests.conftest import random_roll

TPB = 480  # ticks per beat; an eighth-note frame is 240 ticks


def write_midi(path, notes, tempo=None, programs=(), tpb=TPB):
    """notes: (channel, pitch, start tick, end tick); programs: (channel, program) set at tick 0."""
    events = [(0, 0, mido.Message("program_change", channel=c, program=p)) for c, p in programs]
    for channel, pitch, start, end in notes:
        events.append((start, 2, mido.Message("note_on", channel=channel, note=pitch, velocity=80)))
        events.append((end, 1, mido.Message("note_off", channel=channel, note=pitch, velocity=0)))
    track = mido.MidiTrack()
    if tempo:
        track.append(mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(tempo), time=0))
    now = 0
    for tick, _, msg in sorted(events, key=lambda e: (e[0], e[1])):
        track.append(msg.copy(time=tick - now))
        now = tick
    mid = mido.MidiFile(ticks_per_beat=tpb)
    mid.tracks.append(track)
    mid.save(str(path))


# Notes shorter than a frame placed between the sample rule's sampling points (1.5 steps into the frame):
# on the eighth grid those points sit at ticks 360, 600, 840, ...
SHORT = [(0, 60, 380, 560),  # between 360 and 600: the sample rule loses it
         (0, 64, 610, 700),  # between 600 and 840: lost too
         (0, 67, 300, 1300)]  # long: both rules keep it


def test_the_overlap_rule_keeps_every_note_and_the_sample_rule_is_unchanged(tmp_path):
    write_midi(tmp_path / "s.mid", SHORT)
    sample, overlap = frame_grid("eighth", "sample"), frame_grid("eighth", "overlap")
    counts = NoteCounts()
    roll = read_midi_roll(tmp_path / "s.mid", sample, counts=counts)
    assert (counts.notes, counts.kept) == (3, 1)
    # the benchmarks' rule, by hand: frame k holds a note when start <= (k + 1.5) * 240 < end
    expected = np.zeros((4, 88), np.uint8)
    for k in range(4):
        for _, pitch, start, end in SHORT:
            expected[k, pitch - 21] |= start <= (k + 1.5) * 240 < end
    np.testing.assert_array_equal(roll, expected)
    counts = NoteCounts()
    roll = read_midi_roll(tmp_path / "s.mid", overlap, counts=counts)
    assert (counts.notes, counts.kept) == (3, 3)
    # overlap: onset frame, plus later frames covered by at least half: 380-560 -> frame 1 only (covers
    # 80 ticks of frame 2, under half); 610-700 -> frame 2; 300-1300 -> frames 1..4 (frame 5 gets 100 ticks)
    held = {pitch: list(np.nonzero(roll[:, pitch - 21])[0]) for _, pitch, _, _ in SHORT}
    assert held == {60: [1], 64: [2], 67: [1, 2, 3, 4]}


@pytest.mark.parametrize("frame", ["eighth", "16th", "0.3s"])
def test_overlap_grids_write_and_read_back_exactly(tmp_path, frame):
    grid = frame_grid(frame, "overlap")
    roll = random_roll(np.random.default_rng(3), frames=50)
    roll_to_midi(roll, tmp_path / "x.mid", grid)
    np.testing.assert_array_equal(read_midi_roll(tmp_path / "x.mid", grid), roll)


def test_seconds_frames_follow_the_tempo_map(tmp_path):
    # 4 beats at 120 bpm (2 s), then 4 beats at 60 bpm (4 s): one note over all 8 beats lasts 6 s
    mid = mido.MidiFile(ticks_per_beat=TPB)
    track = mido.MidiTrack([mido.MetaMessage("set_tempo", tempo=500_000, time=0),
                            mido.Message("note_on", note=60, velocity=80, time=0),
                            mido.MetaMessage("set_tempo", tempo=1_000_000, time=4 * TPB),
                            mido.Message("note_off", note=60, velocity=0, time=4 * TPB)])
    mid.tracks.append(track)
    mid.save(str(tmp_path / "t.mid"))
    for rule in ("sample", "overlap"):
        roll = read_midi_roll(tmp_path / "t.mid", frame_grid("0.3s", rule))
        assert len(roll) == 20 and roll[:, 60 - 21].all()  # 6 s / 0.3 s


def table_row(output, first):
    """The cells of the first table row of ``output`` whose first cell is ``first``."""
    for line in output.splitlines():
        cells = [c.strip() for c in line.split("│")[1:-1]]
        if cells and cells[0] == first:
            return cells
    raise AssertionError(f"no row {first!r} in:\n{output}")


def _folder(root, files):
    for split in ("train", "valid", "test"):
        (root / split).mkdir(parents=True)
        for i, (notes, kwargs) in enumerate(files):
            write_midi(root / split / f"{i}.mid", notes, **kwargs)
    return root


def test_prep_counts_notes_per_split_exactly_and_stores_the_rule_and_median_tempo(tmp_path):
    folder = _folder(tmp_path / "m", [(SHORT, {"tempo": 90}), (SHORT[:2], {"tempo": 100}), (SHORT, {"tempo": 140})])
    for rule, kept, tempo in (("overlap", 8, 100), ("sample", 2, 115)):  # sample: the 100 bpm file holds no frame
        result = CliRunner().invoke(srnn, ["prep", "--midi", str(folder), "--name", rule, "--frame-rule", rule,
                                           "--out", str(tmp_path / "d")])
        assert result.exit_code == 0, result.output
        assert table_row(result.output, "train")[:4] == ["train", "8", str(kept), f"{100 * (1 - kept / 8):.1f}%"]
        data = PianoRollFile(tmp_path / "d" / f"{rule}.h5")
        assert data.grid.rule == rule and data.tempo_bpm == pytest.approx(tempo, abs=0.01)  # median of train
        info = CliRunner().invoke(srnn, ["info", str(tmp_path / "d" / f"{rule}.h5")])
        assert f"{rule} rule" in info.output


def test_drums_are_skipped_and_counted_kept_on_request_and_programs_filter(tmp_path):
    notes = [(0, 60, 0, 480), (1, 72, 0, 480), (9, 36, 0, 240), (9, 38, 240, 480)]
    folder = _folder(tmp_path / "m", [(notes, {"programs": [(0, 0), (1, 40)]})])  # piano and violin
    counts = NoteCounts()
    notes_read, _ = read_midi_notes(folder / "test" / "0.mid", frame_grid("eighth"), counts=counts)
    assert sorted(p for p, _, _ in notes_read) == [60, 72] and counts.drums == 2
    keep, _ = read_midi_notes(folder / "test" / "0.mid", frame_grid("eighth"), drums=True)
    assert sorted(p for p, _, _ in keep) == [36, 38, 60, 72]
    counts = NoteCounts()
    pianos, _ = read_midi_notes(folder / "test" / "0.mid", frame_grid("eighth"), programs={0, 1, 2}, counts=counts)
    assert [p for p, _, _ in pianos] == [60] and counts.other_programs == 1
    result = CliRunner().invoke(srnn, ["prep", "--midi", str(folder), "--name", "x", "--programs", "0-7",
                                       "--out", str(tmp_path / "d")])
    assert result.exit_code == 0, result.output
    assert table_row(result.output, "test") == ["test", "1", "1", "0.0%", "2", "1"]
    assert json.loads(json.dumps(PianoRollFile(tmp_path / "d" / "x.h5").attrs["midi_options"]))["programs"] == \
        list(range(8))


def test_options_that_do_not_apply_are_refused(tmp_path):
    folder = _folder(tmp_path / "m", [(SHORT, {})])
    for args, words in ((["--midi", str(folder), "--name", "x", "--variant", "srnn"], "--variant"),
                        (["--dataset", "bach", "--drums", "keep"], "--drums"),
                        (["--midi", str(folder), "--name", "x", "--frame", "0.0s"], "0.0s"),
                        (["--midi", str(folder), "--name", "x", "--programs", "0-300"], "--programs")):
        result = CliRunner().invoke(srnn, ["prep", *args, "--out", str(tmp_path / "d")])
        assert result.exit_code != 0 and words in result.output, result.output
        assert result.exception is None or isinstance(result.exception, SystemExit)


def test_evaluate_midi_scores_a_piece_as_preparing_it_would(tmp_path):
    from pyro_srnn.train import Trainer
    from tests.conftest import tiny_config

    rng = np.random.default_rng(5)
    grid = frame_grid("eighth", "overlap")  # what `srnn prep --midi` uses by default
    for split in ("train", "valid", "test"):
        (tmp_path / "m" / split).mkdir(parents=True)
        for i in range(3):
            roll_to_midi(random_roll(rng, 40, 0.05), tmp_path / "m" / split / f"{i}.mid", grid)
    assert CliRunner().invoke(srnn, ["prep", "--midi", str(tmp_path / "m"), "--name", "mine",
                                     "--out", str(tmp_path / "d")]).exit_code == 0
    trainer = Trainer(tiny_config(epochs=1), PianoRollFile(tmp_path / "d" / "mine.h5"), tmp_path / "run")
    trainer.start()
    trainer.fit()
    (tmp_path / "new").mkdir()
    piece = tmp_path / "new" / "piece.mid"
    roll_to_midi(random_roll(rng, 30, 0.05), piece, grid)
    prepared = CliRunner().invoke(srnn, ["prep", "--midi", str(piece.parent), "--name", "one", "--split", "all-test",
                                         "--out", str(tmp_path / "d")])
    assert prepared.exit_code == 0, prepared.output
    direct = CliRunner().invoke(srnn, ["evaluate", str(tmp_path / "run"), "--midi", str(piece), "--json",
                                       "--iwae", "3"])
    assert direct.exit_code == 0, direct.output
    via_file = CliRunner().invoke(srnn, ["evaluate", str(tmp_path / "run"), "--data", str(tmp_path / "d" / "one.h5"),
                                         "--json", "--iwae", "3"])
    assert via_file.exit_code == 0, via_file.output
    a, b = json.loads(direct.stdout), json.loads(via_file.stdout)
    assert a["elbo"] == b["elbo"] and a["iwae"] == b["iwae"]
    assert a["pieces"] == [{"name": "piece", "frames": 30, "elbo_per_frame": pytest.approx(a["elbo"]["per_sequence"]),
                            "iwae_per_frame": pytest.approx(a["iwae"]["per_sequence"])}]
    train = CliRunner().invoke(srnn, ["train", "--data", str(tmp_path / "d" / "one.h5"), "--run-dir",
                                      str(tmp_path / "r")])
    assert train.exit_code == 1 and "no training pieces" in train.output
