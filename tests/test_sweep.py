"""srnn sweep: a tiny grid, skip-on-rerun, the results table; transposition augmentation."""
import csv
import io

import numpy as np
import pytest
from click.testing import CliRunner

from cli.main import srnn as srnn_cli
from pyro_srnn.batching import transpose_keys
from pyro_srnn.errors import SRNNError
from pyro_srnn.sweep import parse_grid, parse_shard

GRID = "z=2,3 hidden=8 d=6 a=5 seq-len=20 batch-size=4"


def test_grid_and_shard_parsing():
    points = parse_grid("a=30,300 z=10,100 seq-len=50")
    assert points == [{"a": 30, "z": 10, "seq-len": 50}, {"a": 30, "z": 100, "seq-len": 50},
                      {"a": 300, "z": 10, "seq-len": 50}, {"a": 300, "z": 100, "seq-len": 50}]
    assert parse_shard("1/3") == (1, 3)
    for bad in ("q=1", "a=", "a=x"):
        with pytest.raises(SRNNError):
            parse_grid(bad)
    with pytest.raises(SRNNError):
        parse_shard("3/3")


def test_sweep_runs_skips_finished_and_tabulates(bach_file, tmp_path):
    args = ["sweep", "--data", str(bach_file), "--grid", GRID, "--epochs", "1", "--out", str(tmp_path / "s"),
            "--jobs", "2"]
    first = CliRunner().invoke(srnn_cli, args)
    assert first.exit_code == 0, first.output
    assert sum(line.startswith("finished ") for line in first.output.splitlines()) == 2
    rows = list(csv.DictReader(io.StringIO((tmp_path / "s" / "results.csv").read_text())))
    assert sorted(r["z"] for r in rows) == ["2", "3"]
    valid = [float(r["valid_elbo"]) for r in rows]
    assert valid == sorted(valid, reverse=True) and all(v < 0 for v in valid)
    assert all(float(r["test_elbo"]) < 0 for r in rows)
    assert "| run |" in (tmp_path / "s" / "results.md").read_text()
    stamp = (tmp_path / "s" / "z2-hidden8-d6-a5-seq-len20-batch-size4" / "last.pt").stat().st_mtime
    again = CliRunner().invoke(srnn_cli, args)
    assert again.exit_code == 0
    assert sum(line.startswith("skipped ") for line in again.output.splitlines()) == 2
    assert (tmp_path / "s" / "z2-hidden8-d6-a5-seq-len20-batch-size4" / "last.pt").stat().st_mtime == stamp


def test_a_sweep_leaves_a_run_that_another_process_trains_and_reports_it_busy(bach_file, tmp_path):
    import fcntl

    held = tmp_path / "s" / "z2-hidden8-d6-a5-seq-len20-batch-size4"
    held.mkdir(parents=True)
    with open(held / ".lock", "w") as lock:  # as a second sweep's training would hold it
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        result = CliRunner().invoke(srnn_cli, ["sweep", "--data", str(bach_file), "--grid", GRID, "--epochs", "1",
                                               "--out", str(tmp_path / "s")])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert "busy     z=2 hidden=8 d=6 a=5 seq-len=20 batch-size=4" in lines
    assert "finished z=3 hidden=8 d=6 a=5 seq-len=20 batch-size=4" in lines
    rows = list(csv.DictReader(io.StringIO((tmp_path / "s" / "results.csv").read_text())))
    assert [r["z"] for r in rows] == ["3"]
    assert not (held / "last.pt").exists()


def test_transposition_shifts_keys_and_drops_those_leaving_the_range():
    rolls = np.zeros((3, 2, 88), np.uint8)
    rolls[:, 0, [0, 40, 87]] = 1
    out = transpose_keys(rolls, [2, -2, 0])
    assert list(np.nonzero(out[0, 0])[0]) == [2, 42]
    assert list(np.nonzero(out[1, 0])[0]) == [38, 85]
    np.testing.assert_array_equal(out[2], rolls[2])


def test_grid_keys_are_config_fields_passed_as_the_train_options_that_set_them():
    from cli.common import UserError
    from cli.sweep import train_arguments

    point = parse_grid("residual=false filtering=true augment-transpose=3 seq-len=50 lr=0.002")[0]
    assert point == {"residual": False, "filtering": True, "augment-transpose": 3, "seq-len": 50, "lr": 0.002}
    assert train_arguments(point) == ["--no-residual", "--filtering", "--augment", "transpose:3", "--seq-len", "50",
                                      "--lr", "0.002"]
    with pytest.raises(UserError, match="kl-start has no `srnn train` option"):
        train_arguments(parse_grid("kl-start=0.5")[0])
