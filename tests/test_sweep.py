"""srnn sweep on Optuna: grids and searches, two processes on one study, pruning, resuming a killed trial,
a PostgreSQL study; transposition augmentation."""
import csv
import io
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import optuna
import pytest
from click.testing import CliRunner
from optuna.trial import TrialState

from cli.main import srnn as srnn_cli
from data_prep.h5 import PianoRollFile
from pyro_srnn import sweep as sweeps
from pyro_srnn.batching import transpose_keys
from pyro_srnn.errors import SRNNError
from pyro_srnn.sweep import Sweep, grid_points, open_study, parse_grid, parse_search, run_name, work

ROOT = Path(__file__).resolve().parents[1]
TINY = "hidden=8 d=6 a=5 seq-len=20 batch-size=4"
GRID = f"z=2,3 {TINY}"


def trials_of(out_dir, name=None):
    storage = sweeps.open_storage(f"sqlite:///{Path(out_dir).resolve() / sweeps.STUDY_DB}")
    return optuna.load_study(study_name=name or Path(out_dir).name, storage=storage).get_trials()


def table(out_dir):
    return list(csv.DictReader(io.StringIO((Path(out_dir) / "results.csv").read_text())))


def test_grid_and_search_parsing():
    grid = parse_grid("a=30,300 z=10,100 seq-len=50")
    assert grid == {"a": [30, 300], "z": [10, 100], "seq-len": [50]}
    assert grid_points(grid) == [{"a": 30, "z": 10, "seq-len": 50}, {"a": 30, "z": 100, "seq-len": 50},
                                 {"a": 300, "z": 10, "seq-len": 50}, {"a": 300, "z": 100, "seq-len": 50}]
    assert parse_grid("residual=false filtering=true augment-transpose=3 lr=0.002") == {
        "residual": [False], "filtering": [True], "augment-transpose": [3], "lr": [0.002]}
    space = parse_search("lr=1e-4..3e-3:log z=4..128:int elbo=trace,analytic,iwae:4")
    assert (space["lr"].kind, space["lr"].low, space["lr"].high, space["lr"].log) == ("float", 1e-4, 3e-3, True)
    assert (space["z"].kind, space["z"].low, space["z"].high, space["z"].log) == ("int", 4, 128, False)
    assert space["elbo"].choices == ("trace", "analytic", "iwae:4")
    assert run_name({"elbo": "iwae:4", "z": 8}) == "elboiwae4-z8"  # a folder name without a colon
    for bad in ("q=1", "a=", "a=x"):
        with pytest.raises(SRNNError):
            parse_grid(bad)
    for bad, words in (("lr=3e-3..1e-4", "LOW < HIGH"), ("lr=0..1e-3:log", "LOW > 0"), ("lr=1e-4..1e-3:int", ":int"),
                       ("z=-1..10", "z must be 0..16384"), ("elbo=a..b", "cannot read"), ("z=1..5 z=2..3", "twice"),
                       ("elbo=analytic,iwae:1", "2 <= K"), ("z=4,8:int", "cannot read")):
        with pytest.raises(SRNNError, match=words):
            parse_search(bad)


def test_a_grid_on_optuna_trains_exactly_the_grid_and_a_rerun_trains_nothing(bach_file, tmp_path):
    out = tmp_path / "s"
    args = ["sweep", "--data", str(bach_file), "--grid", GRID, "--epochs", "1", "--out", str(out), "--jobs", "2"]
    first = CliRunner().invoke(srnn_cli, args)
    assert first.exit_code == 0, first.output
    trials = trials_of(out)
    assert sorted(run_name(t.params) for t in trials) == sorted(run_name(p) for p in grid_points(parse_grid(GRID)))
    assert all(t.state == TrialState.COMPLETE for t in trials)
    rows = table(out)
    assert sorted(r["z"] for r in rows) == ["2", "3"] and all(r["state"] == "complete" for r in rows)
    valid = [float(r["valid_elbo"]) for r in rows]
    assert valid == sorted(valid, reverse=True) and all(v < 0 for v in valid)
    assert all(float(r["test_elbo"]) < 0 for r in rows)
    # each trial is an ordinary run directory that srnn evaluate reads
    evaluated = CliRunner().invoke(srnn_cli, ["evaluate", str(out / rows[0]["run"]), "--json"])
    assert evaluated.exit_code == 0, evaluated.output
    stamp = (out / f"z2-{TINY.replace('=', '').replace(' ', '-')}" / "last.pt").stat().st_mtime
    again = CliRunner().invoke(srnn_cli, args)
    assert again.exit_code == 0, again.output
    assert "2 trial(s) already finished" in " ".join(again.output.split())
    assert len(trials_of(out)) == 2
    assert (out / f"z2-{TINY.replace('=', '').replace(' ', '-')}" / "last.pt").stat().st_mtime == stamp
    other = CliRunner().invoke(srnn_cli, [*args[:-4], "--epochs", "2", "--out", str(out)])
    assert other.exit_code == 1 and "made by another sweep (it differs in epochs)" in " ".join(other.output.split())


def test_two_sweep_processes_share_one_study_and_train_each_point_once(bach_file, tmp_path):
    out = tmp_path / "shared"
    grid = f"z=2,3 lr=0.001,0.002 {TINY}"
    command = [sys.executable, "-m", "cli.main", "sweep", "--data", str(bach_file), "--grid", grid, "--epochs", "1",
               "--out", str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for _ in range(2)]
    outputs = [p.communicate(timeout=600)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    trials = [t for t in trials_of(out) if "duplicate_of" not in t.user_attrs]
    runs = [t.user_attrs["run"] for t in trials]
    assert sorted(runs) == sorted(run_name(p) for p in grid_points(parse_grid(grid)))  # disjoint, and all of it
    assert all(t.state == TrialState.COMPLETE for t in trials)
    for run in runs:  # one epoch each: no point was trained by both
        assert len((out / run / "metrics.jsonl").read_text().splitlines()) == 1


def _search(bach_file, out, prune=True, trials=5, epochs=4):
    return Sweep(data_file=str(bach_file), out_dir=str(out), epochs=epochs, search=f"z=2..3 valid-every=1 {TINY}",
                 trials=trials, prune=prune, threads=1)


def _add_good_trials(study, search: str, n=4):
    """Finished trials that reached validation ELBO -1 at every epoch: far ahead of any tiny model."""
    space = parse_search(search)
    for i in range(n):
        params = {k: (d.choices[0] if d.kind == "choice" else int(d.low)) for k, d in space.items()}
        distributions = {k: (optuna.distributions.CategoricalDistribution(d.choices) if d.kind == "choice"
                             else optuna.distributions.IntDistribution(int(d.low), int(d.high)))
                         for k, d in space.items()}
        study.add_trial(optuna.trial.create_trial(state=TrialState.COMPLETE, value=-1.0, params=params,
                                                  distributions=distributions, user_attrs={"run": f"good{i}"},
                                                  intermediate_values={e: -1.0 for e in range(1, 11)}))


@pytest.mark.parametrize("prune", [True, False])
def test_a_trial_far_behind_is_pruned_and_marked_so(bach_file, tmp_path, prune):
    spec = _search(bach_file, tmp_path / "search", prune, epochs=10)
    study = open_study(spec, PianoRollFile(bach_file).fingerprint())
    _add_good_trials(study, spec.search)
    work(spec)
    trial = trials_of(spec.out_dir, "search")[-1]
    epochs = len((Path(spec.out_dir) / trial.user_attrs["run"] / "metrics.jsonl").read_text().splitlines())
    if prune:  # stopped at the first epoch the pruner may judge: the KL warm-up (4 of 10 epochs) is left alone
        assert trial.state == TrialState.PRUNED and epochs == 4 and trial.user_attrs["epochs"] == 4
        rows = sweeps.study_rows(optuna.load_study(study_name="search", storage=spec.storage_url), spec.out_dir)
        assert [r["state"] for r in rows if r["run"] == trial.user_attrs["run"]] == ["pruned"]
    else:
        assert trial.state == TrialState.COMPLETE and epochs == 10


def test_a_killed_workers_trial_is_retried_from_its_last_checkpoint(bach_file, tmp_path, monkeypatch):
    from pyro_srnn.train import Hooks, Trainer

    monkeypatch.setattr(sweeps, "GRACE_SECONDS", 2)
    monkeypatch.setattr(sweeps, "HEARTBEAT_SECONDS", 1)
    monkeypatch.setattr(sweeps, "POLL_SECONDS", 1)
    spec = Sweep(data_file=str(bach_file), out_dir=str(tmp_path / "s"), epochs=3, grid=GRID, prune=False, threads=1)
    data = PianoRollFile(bach_file)
    study = open_study(spec, data.fingerprint())
    # a worker that took the first point, trained one epoch of three, and died
    trial = study.ask()
    point = spec.suggest(trial)
    trial.set_user_attr("run", run_name(point))
    study._storage.record_heartbeat(trial._trial_id)

    class Killed(Exception):
        pass

    def die(metrics):
        raise Killed

    dying = Trainer(sweeps.point_config(point, 3), data, Path(spec.out_dir) / run_name(point), hooks=Hooks(epoch_end=die))
    dying.start()
    with pytest.raises(Killed):
        dying.fit()
    first_epoch = (Path(spec.out_dir) / run_name(point) / "metrics.jsonl").read_text().splitlines()
    assert len(first_epoch) == 1

    work(spec)
    trials = trials_of(spec.out_dir)
    assert trials[0].state == TrialState.FAIL  # failed by its heartbeat, then retried
    retry = [t for t in trials if t.user_attrs.get("run") == run_name(point) and t.number > 0]
    assert [t.state for t in retry] == [TrialState.COMPLETE]
    metrics = (Path(spec.out_dir) / run_name(point) / "metrics.jsonl").read_text().splitlines()
    assert len(metrics) == 3 and metrics[0] == first_epoch[0]  # resumed after epoch 1, not started again
    rows = sweeps.study_rows(optuna.load_study(study_name="s", storage=spec.storage_url), spec.out_dir)
    assert sorted((r["run"], r["state"]) for r in rows) == sorted((run_name(p), "complete")
                                                                  for p in grid_points(parse_grid(GRID)))


def _postgres_tools():
    found = {tool: shutil.which(tool) for tool in ("initdb", "pg_ctl")}
    if not all(found.values()):
        return None
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return None
    return found


@pytest.mark.skipif(_postgres_tools() is None, reason="PostgreSQL's initdb/pg_ctl (Debian: apt-get install "
                    "postgresql) or its driver (pip install 'pyro-srnn[postgres]') is not installed")
def test_a_study_in_a_postgresql_server(bach_file, tmp_path):
    import tempfile

    tools = _postgres_tools()
    # a short path of its own: the server's socket lives there, and pytest's folders are closed to other users
    holder = tempfile.TemporaryDirectory(prefix="srnn-pg-")
    home = Path(holder.name)
    run_as = []
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        shutil.chown(home, "nobody")
        os.chmod(home, 0o755)
        run_as = ["runuser", "-u", "nobody", "--"]
    subprocess.run([*run_as, tools["initdb"], "-D", str(home / "data"), "-U", "srnn", "--auth=trust"], check=True,
                   capture_output=True)
    subprocess.run([*run_as, tools["pg_ctl"], "-D", str(home / "data"), "-l", str(home / "log"), "-w", "start", "-o",
                    f"-k {home} -c listen_addresses=''"], check=True, capture_output=True)
    try:
        url = f"postgresql://srnn@/postgres?host={home}"
        args = ["sweep", "--data", str(bach_file), "--grid", GRID, "--epochs", "1", "--out", str(tmp_path / "runs"),
                "--storage", url, "--study", "tiny"]
        result = CliRunner().invoke(srnn_cli, args)
        assert result.exit_code == 0, result.output
        assert not (tmp_path / "runs" / sweeps.STUDY_DB).exists()
        trials = optuna.load_study(study_name="tiny", storage=url).get_trials()
        assert sorted(t.user_attrs["run"] for t in trials) == sorted(run_name(p) for p in grid_points(parse_grid(GRID)))
        assert all(t.state == TrialState.COMPLETE for t in trials)
        assert "2 trial(s) already finished" in " ".join(CliRunner().invoke(srnn_cli, args).output.split())
    finally:
        subprocess.run([*run_as, tools["pg_ctl"], "-D", str(home / "data"), "-m", "immediate", "stop"],
                       capture_output=True)
        holder.cleanup()


def test_an_unreachable_storage_is_one_line(bach_file, tmp_path):
    result = CliRunner().invoke(srnn_cli, ["sweep", "--data", str(bach_file), "--grid", GRID, "--out", str(tmp_path),
                                           "--storage", "sqlite:////nonexistent/folder/x.db"])
    assert result.exit_code == 1 and "cannot open the study database" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_transposition_shifts_keys_and_drops_those_leaving_the_range():
    rolls = np.zeros((3, 2, 88), np.uint8)
    rolls[:, 0, [0, 40, 87]] = 1
    out = transpose_keys(rolls, [2, -2, 0])
    assert list(np.nonzero(out[0, 0])[0]) == [2, 42]
    assert list(np.nonzero(out[1, 0])[0]) == [38, 85]
    np.testing.assert_array_equal(out[2], rolls[2])
