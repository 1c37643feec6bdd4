"""Music you can hear and judge: statistics of rolls against hand counts, samples against data, audio
rendering, and the sampling controls."""
import wave

import numpy as np
import pytest
from click.testing import CliRunner

from cli.main import srnn as srnn_cli
from data_prep.h5 import PianoRollFile
from data_prep.midi import beat_grid, roll_to_midi
from data_prep.stats import compare, note_lengths, roll_statistics


def hand_roll():
    """6 frames: C4 held 3 frames, then E4 struck twice (1 frame each, a gap between), a G4 from frame 1 to 2,
    and two silent frames."""
    roll = np.zeros((6, 88), np.uint8)
    roll[0:3, 60 - 21] = 1
    roll[1:3, 67 - 21] = 1
    roll[3, 64 - 21] = 1
    roll[5, 64 - 21] = 1
    return roll


def test_statistics_of_a_hand_made_roll():
    s = roll_statistics([hand_roll()])
    # keys on per frame: 1, 2, 2, 1, 0, 1
    assert s["notes_per_frame"] == pytest.approx(7 / 6)
    assert s["onsets_per_frame"] == pytest.approx(4 / 6)  # C4, G4, E4, E4
    assert sorted(note_lengths(hand_roll())) == [1, 1, 2, 3]
    assert s["mean_note_length"] == pytest.approx(7 / 4)
    assert s["empty_frame_share"] == pytest.approx(1 / 6)
    assert s["pitch_range"] == 7  # C4..G4
    assert s["scale_consistency"] == 1.0  # C, E, G: all in C major
    np.testing.assert_allclose(s["polyphony_histogram"][:3], [1 / 6, 3 / 6, 2 / 6])
    np.testing.assert_allclose(s["note_length_histogram"][:3], [2 / 4, 1 / 4, 1 / 4])
    assert s["pitch_class_histogram"][[0, 4, 7]] == pytest.approx([1 / 4, 2 / 4, 1 / 4])


def test_the_test_split_against_itself_has_overlap_1_and_ratio_1(bach_file):
    test = PianoRollFile(bach_file).split("test").sequences()
    rows = compare(roll_statistics(test), roll_statistics(test))
    assert all(value == pytest.approx(1.0) for *_, value in rows)
    shifted = [np.roll(r, 1, axis=1) for r in test]  # a semitone up: pitch classes no longer overlap fully
    oa = {name: value for name, _, _, kind, value in compare(roll_statistics(test), roll_statistics(shifted))}
    assert oa["pitch_class_histogram"] < 0.9 and oa["notes_per_frame"] == pytest.approx(1.0)


def test_a_midi_renders_to_a_wav_as_long_as_the_music_plus_its_release(tmp_path):
    from data_prep.audio import RELEASE_SECONDS, SAMPLE_RATE, render_midi, write_wav

    roll = np.zeros((16, 88), np.uint8)
    roll[0:8, 60 - 21] = roll[8:16, 64 - 21] = 1
    roll_to_midi(roll, tmp_path / "x.mid", beat_grid("eighth"), bpm=120)  # 16 eighths at 120 bpm: 4 s + lead
    import mido

    seconds = mido.MidiFile(tmp_path / "x.mid").length
    audio = render_midi(tmp_path / "x.mid")
    assert len(audio) / SAMPLE_RATE == pytest.approx(seconds + RELEASE_SECONDS, abs=0.01)
    assert np.abs(audio).max() == pytest.approx(10 ** (-1 / 20), rel=1e-4)  # normalised to -1 dBFS
    assert np.sqrt((audio[: SAMPLE_RATE] ** 2).mean()) > 0.01  # not near-silent while notes sound
    write_wav(audio, tmp_path / "x.wav")
    with wave.open(str(tmp_path / "x.wav")) as f:
        assert (f.getframerate(), f.getnchannels(), f.getsampwidth()) == (44100, 2, 2)
        assert f.getnframes() == len(audio)
    roll_to_midi(np.zeros((16, 88), np.uint8), tmp_path / "silent.mid", beat_grid("eighth"))
    assert not render_midi(tmp_path / "silent.mid").any()


def test_sample_writes_a_wav_per_piece_and_render_writes_one(tiny_run, tmp_path):
    result = CliRunner().invoke(srnn_cli, ["sample", "--run", str(tiny_run), "-o", str(tmp_path / "s.mid"), "--n", "2",
                                           "--steps", "8", "--wav", str(tmp_path / "s.wav")])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s-1.mid", "s-1.wav", "s-2.mid", "s-2.wav"]
    again = CliRunner().invoke(srnn_cli, ["render", str(tmp_path / "s-1.mid"), "-o", str(tmp_path / "r.wav")])
    assert again.exit_code == 0, again.output
    assert (tmp_path / "r.wav").read_bytes() == (tmp_path / "s-1.wav").read_bytes()


def test_the_controls_default_to_ancestral_sampling_and_move_the_statistics(tiny_run):
    from pyro_srnn.sample import Controls, sample_rolls
    from pyro_srnn.checkpoint import load_checkpoint, model_from_checkpoint

    import torch

    srnn = model_from_checkpoint(load_checkpoint(tiny_run / "best.pt"))
    plain = sample_rolls(srnn, 40, 16, seed=2, controls=Controls(burn_in=0))
    torch.manual_seed(2)  # the model as defined, by hand: zero state, then x_t fed back as u_{t+1}
    with torch.no_grad():
        u, d, z, frames = torch.zeros(16, 88), torch.zeros(16, srnn.config.d), torch.zeros(16, srnn.config.z), []
        for _ in range(40):
            (d, z), u = srnn.generate(u, (d, z))
            frames.append(u)
    np.testing.assert_array_equal(torch.stack(frames, 1).to(torch.uint8).numpy(), plain)
    cold = sample_rolls(srnn, 40, 16, seed=2, controls=Controls(temperature=0.3, burn_in=0))
    assert cold.mean() < plain.mean()  # a tiny model sounds most keys at p < 1/2: cooling silences them
    burnt = sample_rolls(srnn, 40, 16, seed=2, controls=Controls(burn_in=5))
    assert burnt.shape == plain.shape and not np.array_equal(burnt, plain)
    assert Controls().burn_in == 32  # the default drops the opening burst
    import torch

    u, d, z = torch.zeros(3, 88), torch.randn(3, srnn.config.d), torch.randn(3, srnn.config.z)
    with torch.no_grad():
        (d_next, z_mean), _ = srnn.generate(u, (d, z), z_scale=0.0)
        assert torch.equal(z_mean, srnn.prior.step(d_next, z)[0])  # S = 0: z_t is the prior's mean
        torch.manual_seed(0)
        wide = torch.stack([srnn.generate(u, (d, z), z_scale=3.0)[0][1] for _ in range(400)])
        torch.manual_seed(0)
        plain_z = torch.stack([srnn.generate(u, (d, z))[0][1] for _ in range(400)])
    assert float(wide.std(0).mean()) == pytest.approx(3 * float(plain_z.std(0).mean()), rel=0.15)


def test_evaluate_music_prints_the_table_and_json(tiny_run):
    import json

    result = CliRunner().invoke(srnn_cli, ["evaluate", str(tiny_run), "--music", "--n", "4", "--steps", "20",
                                           "--json"])
    assert result.exit_code == 0, result.output
    stats = {row["statistic"]: row for row in json.loads(result.stdout)["statistics"]}
    assert set(stats) >= {"notes_per_frame", "onsets_per_frame", "pitch_class_histogram", "empty_frame_share"}
    assert 0 <= stats["pitch_class_histogram"]["OA"] <= 1 and stats["notes_per_frame"]["ratio"] > 0
