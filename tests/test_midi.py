"""MIDI <-> piano roll: the sampling rule, exact round trips, the Boulanger rule on real files."""
import csv

import mido
import numpy as np
import pytest

from data_prep.midi import SRNN_GRID, MidiError, beat_grid, notes_to_roll, read_midi_notes, read_midi_roll, \
    roll_to_midi, transposition_to_c
from tests.conftest import random_roll

GRIDS = [beat_grid("eighth"), beat_grid("quarter", 0.5), beat_grid("16th"), SRNN_GRID]


@pytest.mark.parametrize("grid", GRIDS, ids=lambda g: f"{g.name}-phase{g.phase}")
def test_write_then_read_is_exact(tmp_path, grid):
    roll = random_roll(np.random.default_rng(0), frames=64)
    path = tmp_path / "x.mid"
    roll_to_midi(roll, path, grid)
    np.testing.assert_array_equal(read_midi_roll(path, grid), roll)


def test_trailing_silence_kept_on_request(tmp_path):
    grid = beat_grid("eighth")
    roll = np.zeros((10, 88), np.uint8)
    roll[2:4, 30] = 1
    roll_to_midi(roll, tmp_path / "x.mid", grid)
    assert read_midi_roll(tmp_path / "x.mid", grid).shape == (4, 88)
    np.testing.assert_array_equal(read_midi_roll(tmp_path / "x.mid", grid, keep_length=True), roll)


def test_held_key_is_one_note_and_repeats_are_separate(tmp_path):
    grid = beat_grid("eighth")
    roll = np.zeros((6, 88), np.uint8)
    roll[0:4, 39] = 1  # held four frames: one note
    roll[1, 50] = roll[2, 50] = 0
    roll[0, 50] = roll[3, 50] = 1  # struck twice: two notes
    roll_to_midi(roll, tmp_path / "x.mid", grid)
    notes, _ = read_midi_notes(tmp_path / "x.mid", grid)
    assert sorted((p, round(e - s, 6)) for p, s, e in notes) == [(60, 2.0), (71, 0.5), (71, 0.5)]


def test_sampling_rule_by_hand():
    # an eighth-note grid sampled 1.5 steps in: frame k samples at (k + 1.5) / 2 beats
    grid = beat_grid("eighth")
    notes = [(60, 0.0, 1.0), (64, 1.0, 1.25), (67, 1.25, 2.0)]
    roll = notes_to_roll(notes, grid)
    # sampling points 0.75, 1.25, 1.75 beats
    assert roll.shape == (3, 88)
    assert list(np.nonzero(roll)[1] + 21) == [60, 67, 67]
    assert roll[0, 60 - 21] == 1 and roll[1, 64 - 21] == 0


def test_tempo_map_in_seconds(tmp_path):
    # one beat at 120 bpm (0.5 s) then 60 bpm (1 s per beat): a note on beats 1..2 lasts 0.5..1.5 s
    mid = mido.MidiFile(ticks_per_beat=100)
    track = mido.MidiTrack()
    track += [mido.MetaMessage("set_tempo", tempo=500000, time=0),
              mido.MetaMessage("set_tempo", tempo=1000000, time=100),
              mido.Message("note_on", note=60, velocity=80, time=0),
              mido.Message("note_on", note=60, velocity=0, time=100)]
    mid.tracks.append(track)
    mid.save(tmp_path / "t.mid")
    notes, length = read_midi_notes(tmp_path / "t.mid", SRNN_GRID)
    assert notes == [(60, pytest.approx(0.5), pytest.approx(1.5))]
    roll = notes_to_roll(notes, SRNN_GRID)  # frames at 0, 0.3, ..., 1.2 s: 0.6, 0.9, 1.2 hold the note
    assert list(np.nonzero(roll[:, 60 - 21])[0]) == [2, 3, 4]


def test_percussion_channel_ignored(tmp_path):
    mid = mido.MidiFile()
    track = mido.MidiTrack()
    track += [mido.Message("note_on", channel=9, note=36, velocity=90, time=0),
              mido.Message("note_on", channel=0, note=72, velocity=90, time=0),
              mido.Message("note_off", channel=9, note=36, time=480),
              mido.Message("note_off", channel=0, note=72, time=0)]
    mid.tracks.append(track)
    mid.save(tmp_path / "d.mid")
    notes, _ = read_midi_notes(tmp_path / "d.mid", beat_grid("eighth"))
    assert [p for p, _, _ in notes] == [72]


def test_corrupt_and_empty_files_raise_midi_error(tmp_path):
    (tmp_path / "bad.mid").write_bytes(b"MThd\x00\x00\x00\x06garbage")
    with pytest.raises(MidiError, match="bad.mid"):
        read_midi_roll(tmp_path / "bad.mid", beat_grid("eighth"))
    empty = mido.MidiFile()
    empty.tracks.append(mido.MidiTrack())
    empty.save(tmp_path / "empty.mid")
    with pytest.raises(MidiError, match="empty.mid: no notes"):
        read_midi_roll(tmp_path / "empty.mid", beat_grid("eighth"))


def test_key_estimate_moves_major_and_minor_scales_to_c():
    major = [0, 2, 4, 5, 7, 9, 11, 12]
    minor = [0, 2, 3, 5, 7, 8, 10, 12]
    for tonic in range(55, 67):
        for scale in (major, minor):
            notes = [(tonic + s, i, i + 1.0) for i, s in enumerate(scale)] + [(tonic, 8, 12.0), (tonic + 7, 8, 10.0)]
            shift = transposition_to_c(notes)
            assert -6 <= shift <= 5 and (tonic + shift) % 12 == 0


def test_nottingham_rule_reproduces_mat_for_index_exact_files(source_dir):
    from data_prep.sources import read_mat

    mat = read_mat(source_dir / "boulanger" / "Nottingham.mat")
    grid = beat_grid("eighth")
    with open(source_dir / "boulanger" / "Nottingham_midi_index.tsv", newline="") as f:
        rows = [r for r in csv.DictReader(f, delimiter="\t") if r["exact"] == "True"]
    assert len(rows) == 799
    for r in rows:
        roll = read_midi_roll(source_dir / "boulanger" / "Nottingham" / r["midi_file"], grid,
                              int(r["transpose_semitones"]))
        np.testing.assert_array_equal(roll, mat[r["split"]][0][int(r["mat_index"])], err_msg=r["midi_file"])


def test_piano_midi_samples_marked_exact(source_dir):
    from data_prep.sources import read_mat

    mat = read_mat(source_dir / "boulanger" / "Piano_midi.mat")
    for name, shift, split, i in [("alb_esp5", -3, "valid", 0), ("grieg_waechter", -4, "train", 44),
                                  ("ty_oktober", -2, "train", 84)]:
        roll = read_midi_roll(source_dir / "midi_samples" / "piano-midi.de" / f"{name}.mid", beat_grid("eighth"), shift)
        np.testing.assert_array_equal(roll, mat[split][0][i], err_msg=name)
