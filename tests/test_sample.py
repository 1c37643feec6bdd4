"""srnn sample: MIDI round trip, reproducibility, emission frequencies, bad input."""
import mido
import numpy as np
import pytest
import torch
from click.testing import CliRunner

from cli.main import srnn as srnn_cli
from data_prep.midi import beat_grid, read_midi_roll, roll_to_midi
from pyro_srnn.model import SRNN
from pyro_srnn.sample import sample_rolls
from tests.conftest import tiny_config


@pytest.fixture(params=["srnn", "tsbn"])
def run_dir(request):
    """Every sampling test runs on both model families."""
    return request.getfixturevalue("tiny_run" if request.param == "srnn" else "tiny_tsbn_run")


def test_sampled_midi_reads_back_exactly(run_dir, tmp_path):
    result = CliRunner().invoke(srnn_cli, ["sample", "-o", str(tmp_path / "x.mid"), "--run", str(run_dir),
                                           "--steps", "60", "--n", "2", "--seed", "4", "--png", str(tmp_path / "x.png")])
    assert result.exit_code == 0, result.output
    from pyro_srnn.checkpoint import load_checkpoint, model_from_checkpoint

    rolls = sample_rolls(model_from_checkpoint(load_checkpoint(run_dir / "best.pt")), 60, 2, seed=4)
    grid = beat_grid("quarter", 0.5)  # the Bach corpus's grid
    for i in (1, 2):
        back = read_midi_roll(tmp_path / f"x-{i}.mid", grid, keep_length=True)
        np.testing.assert_array_equal(back, rolls[i - 1])
    assert (tmp_path / "x.png").read_bytes()[:4] == b"\x89PNG"


def test_empty_roll_is_a_valid_empty_midi_file(tmp_path):
    roll_to_midi(np.zeros((16, 88), np.uint8), tmp_path / "e.mid", beat_grid("eighth"))
    mid = mido.MidiFile(tmp_path / "e.mid")
    assert not [m for m in mid if m.type == "note_on"]
    assert mid.length == pytest.approx((16 + 1) * 0.25)  # 16 eighths after the one-frame lead, at 120 bpm


def test_same_seed_reproduces_and_other_seeds_differ():
    torch.manual_seed(0)
    srnn = SRNN(tiny_config())
    a, b, c = (sample_rolls(srnn, 50, 3, seed=s) for s in (1, 1, 2))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_key_frequencies_match_a_fixed_emission_bias():
    torch.manual_seed(0)
    srnn = SRNN(tiny_config())
    bias = torch.linspace(-4, 2, 88)
    with torch.no_grad():
        srnn.emission.out.weight.zero_()
        srnn.emission.out.bias.copy_(bias)
    rolls = sample_rolls(srnn, 400, 10, seed=0)
    frequency = rolls.reshape(-1, 88).mean(0)
    p = torch.sigmoid(bias).numpy()
    n = 400 * 10
    assert np.all(np.abs(frequency - p) < 5 * np.sqrt(p * (1 - p) / n) + 1e-9)


def test_z_scale_is_refused_for_the_tsbn_and_taken_by_the_srnn(tiny_run, tiny_tsbn_run, tmp_path):
    for run, code in ((tiny_run, 0), (tiny_tsbn_run, 1)):
        result = CliRunner().invoke(srnn_cli, ["sample", "-o", str(tmp_path / f"{code}.mid"), "--run", str(run),
                                               "--steps", "8", "--z-scale", "0.5"])
        assert result.exit_code == code, result.output
    assert "--z-scale does not apply to the TSBN" in result.output and "Traceback" not in result.output


def test_primed_sample_starts_with_the_primer(run_dir, tmp_path):
    grid = beat_grid("quarter", 0.5)
    primer = np.zeros((12, 88), np.uint8)
    primer[np.arange(12), 40 + np.arange(12) % 5] = 1
    roll_to_midi(primer, tmp_path / "p.mid", grid)
    result = CliRunner().invoke(srnn_cli, ["sample", "-o", str(tmp_path / "o.mid"), "--run", str(run_dir),
                                           "--prime", str(tmp_path / "p.mid"), "--steps", "20"])
    assert result.exit_code == 0, result.output
    back = read_midi_roll(tmp_path / "o.mid", grid, keep_length=True)
    assert back.shape == (32, 88)
    np.testing.assert_array_equal(back[:12], primer)


def test_bad_input_gives_one_line_errors(run_dir, tmp_path):
    (tmp_path / "bad.mid").write_bytes(b"not a midi file")
    (tmp_path / "exists.mid").write_bytes(b"keep me")
    cases = [
        (["sample", "-o", str(tmp_path / "o.mid"), "--run", str(tmp_path / "missing")], "no such run directory"),
        (["sample", "-o", str(tmp_path / "o.mid"), "--run", str(run_dir), "--prime", str(tmp_path / "bad.mid")],
         "bad.mid: not a readable MIDI file"),
        (["sample", "-o", str(tmp_path / "no" / "o.mid"), "--run", str(run_dir)], "does not exist"),
        (["sample", "-o", str(tmp_path / "exists.mid"), "--run", str(run_dir)], "--force"),
    ]
    for args, message in cases:
        result = CliRunner().invoke(srnn_cli, args)
        assert result.exit_code == 1, args
        assert message in result.output and "Traceback" not in result.output, result.output
    assert (tmp_path / "exists.mid").read_bytes() == b"keep me"
