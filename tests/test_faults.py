"""Hostile and careless input, one test per kind: every case ends in a one-line error (or a correct result),
with no traceback, no code run from a file, nothing half-written and existing outputs byte-identical.

The commands run as the real `srnn` entry point in a subprocess: click's CliRunner catches exceptions itself,
so a traceback would never show in its output.
"""
import contextlib
import json
import os
import pickle
import resource
import signal
import subprocess
import sys
import zipfile
from pathlib import Path

import h5py
import mido
import numpy as np
import pytest

from data_prep.h5 import PianoRollFile, Split, write_dataset
from pyro_srnn.train import Trainer
from tests.conftest import random_roll, tiny_config

SRNN = Path(sys.executable).with_name("srnn")


def srnn(*args, cwd=None, full_disk=None):
    """Run the `srnn` command; ``full_disk`` (a FullDisk) makes every file write fail when no tmpfs can be
    mounted."""
    command = [str(SRNN)] if SRNN.exists() else [sys.executable, "-m", "cli.main"]
    preexec = full_disk.preexec if full_disk else None
    return subprocess.run(command + [str(a) for a in args], cwd=cwd, capture_output=True, text=True,
                          preexec_fn=preexec, timeout=300)


def one_line_error(result, *words):
    """The command failed with exactly one error line containing ``words``, and printed no traceback."""
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "Traceback" not in output, output
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, output
    following = result.stderr.split(errors[0], 1)[1].strip()
    assert following == "", f"more after the error line: {following!r}"
    for word in words:
        assert word in errors[0], errors[0]
    return errors[0]


def snapshot(folder: Path) -> dict:
    """Every file under ``folder`` with its bytes (hidden temporaries included)."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


class Marker:
    """A file that malicious input tries to create."""

    def __init__(self, folder):
        self.path = Path(folder) / "pwned"

    def __reduce__(self):
        return (os.system, (f"touch {self.path}",))


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def trained(bach_file, tmp_path_factory):
    """A tiny run trained for one epoch on the Bach file (copied, so tests may swap it)."""
    folder = tmp_path_factory.mktemp("faults")
    data = folder / "bach.h5"
    data.write_bytes(Path(bach_file).read_bytes())
    trainer = Trainer(tiny_config(epochs=1), PianoRollFile(data), folder / "run")
    trainer.start()
    trainer.fit()
    return folder / "run", data


def toy_file(path, unit="beat", step=0.5, counts=(5, 2, 3), seed=0, **attrs):
    rng = np.random.default_rng(seed)
    splits = {s: Split.from_sequences([random_roll(rng, int(n)) for n in rng.integers(30, 60, size=k)],
                                      [f"{s}-{i}" for i in range(k)])
              for s, k in zip(("train", "valid", "test"), counts)}
    values = dict(dataset="toy", variant="midi", frame_unit=unit, frame_step=step, frame_phase=1.5,
                  frame_name="eighth" if unit == "beat" else f"{step}s", lowest_key=21, n_keys=88,
                  sources=[{"name": "x", "sha256": "0" * 64}], version="0", command="test")
    values.update(attrs)
    write_dataset(path, splits, values)
    return path


def _mount(folder: Path, options: str) -> bool:
    if os.geteuid() != 0:
        return False
    return subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)],
                          capture_output=True).returncode == 0


class FullDisk:
    """A folder on a full file system: a filled 64 KiB tmpfs where this process may mount one (root), else a
    plain folder and a file-size limit of 0 bytes on the command (writes fail with EFBIG)."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.mounted = _mount(folder, "size=64k")
        if self.mounted:
            with contextlib.suppress(OSError), open(folder / "filler", "wb") as f:
                while True:
                    f.write(b"\0" * 4096)
                    f.flush()

    def preexec(self):
        if not self.mounted:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))


@pytest.fixture
def full_disk(tmp_path):
    folder = tmp_path / "full"
    folder.mkdir()
    disk = FullDisk(folder)
    yield disk
    if disk.mounted:
        subprocess.run(["umount", str(folder)])


@pytest.fixture
def read_only(tmp_path):
    """A folder holding one existing file, ``old.mid``, that cannot be written to."""
    folder = tmp_path / "ro"
    folder.mkdir()
    mounted = _mount(folder, "size=1m")
    (folder / "old.mid").write_bytes(b"old")
    if mounted:
        subprocess.run(["mount", "-o", "remount,ro", str(folder)], check=True)
    else:
        folder.chmod(0o555)
        if os.access(folder, os.W_OK):
            pytest.skip("cannot make a read-only folder here (root without mount)")
    yield folder
    if mounted:
        subprocess.run(["umount", str(folder)])
    else:
        folder.chmod(0o755)


# ----------------------------------------------------------------------------- 1-3: security


def test_1_a_checkpoint_that_runs_code_is_refused(trained, tmp_path):
    import torch

    run, _ = trained
    marker = Marker(tmp_path)
    evil = tmp_path / "evil.pt"
    torch.save({"format": "pyro-srnn-checkpoint-1", "config": marker}, evil)
    one_line_error(srnn("evaluate", evil), "refused", "system")
    one_line_error(srnn("sample", "-o", tmp_path / "x.mid", "--checkpoint", evil), "refused")
    evil_run = tmp_path / "evil-run"
    evil_run.mkdir()
    (evil_run / "config.json").write_bytes((run / "config.json").read_bytes())
    (evil_run / "last.pt").write_bytes(evil.read_bytes())
    one_line_error(srnn("train", "--run-dir", evil_run, "--resume"), "refused")
    assert not marker.path.exists()
    assert not (tmp_path / "x.mid").exists()


def test_2_a_source_pickle_that_runs_code_is_refused(tmp_path):
    marker = Marker(tmp_path)
    evil = tmp_path / "JSB Chorales.pickle"
    evil.write_bytes(pickle.dumps({"train": [marker], "valid": [], "test": []}, protocol=2))
    line = one_line_error(srnn("prep", "--dataset", "jsb", "--source", evil, "--out", tmp_path / "data"),
                          str(evil), "refused")
    assert "system" in line
    assert not marker.path.exists()
    assert not (tmp_path / "data" / "jsb.h5").exists()


def test_2_the_restricted_unpickler_reads_boulanger_pickles_with_numpy_note_numbers(tmp_path):
    from data_prep.sources import read_pickle

    pieces = {"train": [[[np.int64(60), np.int64(64)], [np.float64(67)]]], "valid": [[[60]]], "test": [[[], [72]]]}
    path = tmp_path / "x.pickle"
    path.write_bytes(pickle.dumps(pieces, protocol=2))
    read = read_pickle(path)
    assert read["train"][0][0].shape == (2, 88)
    assert set(np.nonzero(read["train"][0][0])[1] + 21) == {60, 64, 67}
    assert np.nonzero(read["test"][0][0])[1].tolist() == [72 - 21]


def test_3_outputs_never_replace_what_is_not_a_regular_file(trained, tmp_path):
    run, _ = trained
    fifo = tmp_path / "node.mid"
    os.mkfifo(fifo)
    folder = tmp_path / "folder.mid"
    folder.mkdir()
    for target in (fifo, folder):
        one_line_error(srnn("sample", "-o", target, "--run", run, "--force"), str(target), "not a regular file")
    one_line_error(srnn("sample", "-o", tmp_path / "ok.mid", "--png", fifo, "--run", run, "--force"),
                   "not a regular file")
    assert fifo.is_fifo() and folder.is_dir() and not (tmp_path / "ok.mid").exists()
    out = tmp_path / "data"
    out.mkdir()
    os.mkfifo(out / "bach.h5")
    one_line_error(srnn("prep", "--dataset", "bach", "--limit", "1", "--out", out, "--force"), "not a regular file")
    assert (out / "bach.h5").is_fifo()


# ----------------------------------------------------------------------------- 4-7: silent wrong results


def test_4_a_run_refuses_data_that_is_not_its_own(trained, tmp_path):
    run, data = trained
    original = data.read_bytes()
    try:
        toy_file(data.with_name("toy.h5"))
        os.replace(data.with_name("toy.h5"), data)  # another dataset under the run's data path
        one_line_error(srnn("train", "--run-dir", run, "--resume"), "not the data")
        one_line_error(srnn("evaluate", run), "not the data")
    finally:
        data.write_bytes(original)
    other = toy_file(tmp_path / "other.h5")  # scoring on other data with the same keys and frame unit is fine
    result = srnn("evaluate", run, "--data", other, "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["data"] == str(other)
    seconds = toy_file(tmp_path / "seconds.h5", unit="seconds", step=0.3)
    one_line_error(srnn("evaluate", run, "--data", seconds), "frame_unit")


def test_5_evaluation_of_one_sequence_writes_strict_json_and_an_empty_split_is_refused(trained, tmp_path):
    run, _ = trained
    single = toy_file(tmp_path / "single.h5", counts=(5, 2, 1))
    result = srnn("evaluate", run, "--data", single, "--json")
    assert result.returncode == 0, result.stderr
    parsed = json.loads(result.stdout, parse_constant=lambda c: pytest.fail(f"non-JSON constant {c}"))
    assert parsed["elbo"]["per_sequence_stderr"] is None and parsed["sequences"] == 1
    empty = toy_file(tmp_path / "empty.h5")
    _zero_sequences(empty, "test")
    one_line_error(srnn("evaluate", run, "--data", empty), str(empty), "no sequences")


@pytest.mark.parametrize("grid, words", [("z=4 z=8", "given twice"), ("z=-1", "z must be 0..16384"),
                                         ("elbo=bogus", "elbo 'bogus' does not train"), ("lr=nan", "lr must be"),
                                         ("augment-transpose=1000", "augment_transpose"),
                                         ("weight-decay=-0.1", "weight_decay must be"),
                                         ("dropout=1", "dropout must be")])
def test_6_a_bad_grid_is_refused_before_any_run_starts(trained, tmp_path, grid, words):
    _, data = trained
    out = tmp_path / "sweep"
    one_line_error(srnn("sweep", "--data", data, "--grid", grid, "--out", out, "--epochs", "1"), words)
    assert not out.exists()


def test_7_an_invalid_frame_grid_is_refused_by_the_reader(tmp_path):
    bad_unit = toy_file(tmp_path / "unit.h5")
    with h5py.File(bad_unit, "a") as f:
        f.attrs["frame_unit"] = "fortnight"
    one_line_error(srnn("info", bad_unit), str(bad_unit), "frame grid")


# ----------------------------------------------------------------------------- 8: full disks, read-only folders


def test_8_a_full_disk_while_preparing_leaves_nothing(full_disk):
    result = srnn("prep", "--dataset", "bach", "--limit", "1", "--out", full_disk.folder, full_disk=full_disk)
    one_line_error(result, "bach.h5", "cannot write")
    assert not [p for p in full_disk.folder.iterdir() if p.name != "filler"]


def test_8_a_full_disk_under_training_keeps_the_run_as_it_was(trained, full_disk):
    _, data = trained
    run = full_disk.folder / "run"
    result = srnn("train", "--data", data, "--d", 6, "--a", 5, "--z", 3, "--hidden", 8, "--epochs", 1,
                  "--seq-len", 20, "--batch-size", 4, "--run-dir", run, full_disk=full_disk)
    one_line_error(result, str(run))
    assert not [p for p in (run.iterdir() if run.exists() else []) if ".tmp-" in p.name]


def test_8_sample_into_a_full_disk_or_read_only_folder_writes_nothing(trained, full_disk, read_only, tmp_path):
    run, _ = trained
    one_line_error(srnn("sample", "-o", full_disk.folder / "x.mid", "--run", run, full_disk=full_disk),
                   "x.mid", "cannot write")
    assert sorted(p.name for p in full_disk.folder.iterdir()) in ([], ["filler"])
    before = snapshot(read_only)
    one_line_error(srnn("sample", "-o", read_only / "old.mid", "--run", run, "--force"), "old.mid")
    # the .mid could be written, the picture cannot: neither is left
    one_line_error(srnn("sample", "-o", tmp_path / "new.mid", "--png", read_only / "x.png", "--run", run))
    assert not (tmp_path / "new.mid").exists() and not list(tmp_path.glob(".new.mid.tmp-*"))
    assert snapshot(read_only) == before
    one_line_error(srnn("prep", "--dataset", "bach", "--limit", "1", "--out", read_only), "bach.h5")
    one_line_error(srnn("train", "--data", trained[1], "--run-dir", read_only / "run", "--epochs", 1),
                   "run")
    assert snapshot(read_only) == before


# ----------------------------------------------------------------------------- 9: pathological MIDI


def _write_midi(path, events, tpb=480):
    mid = mido.MidiFile(ticks_per_beat=tpb)
    track = mido.MidiTrack(events)
    mid.tracks.append(track)
    mid.save(str(path))


def test_9_one_pathological_midi_file_is_skipped_and_the_others_prepared(tmp_path):
    folder = tmp_path / "midi"
    for split in ("train", "valid", "test"):
        (folder / split).mkdir(parents=True)
        _write_midi(folder / split / "good.mid", [mido.Message("note_on", note=60, velocity=80, time=0),
                                                  mido.Message("note_off", note=60, velocity=0, time=960)])
    _write_midi(folder / "train" / "long.mid", [mido.Message("note_on", note=60, velocity=80, time=0),
                                               mido.Message("note_off", note=60, velocity=0, time=0x0FFFFFFF)],
                tpb=1)  # one note 268 million beats long
    assert (folder / "train" / "long.mid").stat().st_size < 64
    result = srnn("prep", "--midi", folder, "--name", "mine", "--out", tmp_path / "data")
    assert result.returncode == 0, result.stderr
    assert "long.mid" in result.stderr and "--max-frames" in result.stderr
    assert PianoRollFile(tmp_path / "data" / "mine.h5").summary()["train"]["sequences"] == 1


# ----------------------------------------------------------------------------- 10: malformed HDF5


def _zero_sequences(path, split="valid"):
    with h5py.File(path, "a") as f:
        del f[split]
        g = f.create_group(split)
        g.create_dataset("rolls", data=np.zeros((0, 88), np.uint8))
        g.create_dataset("offsets", data=np.zeros(1, np.int64))
        g.create_dataset("names", data=np.array([], dtype=object), dtype=h5py.string_dtype())


def _sources_not_json(path):
    with h5py.File(path, "a") as f:
        f.attrs["sources"] = "{not json"


def _negative_frame_step(path):
    with h5py.File(path, "a") as f:
        f.attrs["frame_step"] = -0.5


def _corrupt_chunk(path):
    with h5py.File(path, "r") as f:
        info = f["train"]["rolls"].id.get_chunk_info(0)
    with open(path, "r+b") as f:
        f.seek(info.byte_offset + info.size // 2)
        f.write(b"\xff" * 16)


@pytest.mark.parametrize("damage, words", [(_zero_sequences, "no sequences"), (_sources_not_json, "JSON"),
                                           (_negative_frame_step, "frame grid"), (_corrupt_chunk, "train")])
def test_10_a_malformed_data_file_is_one_line_from_info_train_and_evaluate(trained, tmp_path, damage, words):
    run, _ = trained
    path = toy_file(tmp_path / "bad.h5")
    damage(path)
    one_line_error(srnn("info", path), str(path), words)
    one_line_error(srnn("train", "--data", path, "--run-dir", tmp_path / "run", "--epochs", 1), str(path), words)
    one_line_error(srnn("evaluate", run, "--data", path), str(path), words)
    assert not (tmp_path / "run").exists() or not (tmp_path / "run" / "config.json").exists()


# ----------------------------------------------------------------------------- 11: bad zips and options


def test_11_damaged_zips_are_one_line_or_skip_the_damaged_member(tmp_path):
    fake = tmp_path / "fake.zip"
    fake.write_bytes(b"PK\x03\x04 this is not a zip")
    one_line_error(srnn("prep", "--dataset", "nottingham", "--source", fake, "--out", tmp_path), str(fake), "zip")
    good = tmp_path / "music.zip"
    with zipfile.ZipFile(good, "w", zipfile.ZIP_STORED) as z:
        for split in ("train", "valid", "test"):
            for name in ("a", "b"):
                midi = tmp_path / f"{name}.mid"
                _write_midi(midi, [mido.Message("note_on", note=62, velocity=80, time=0),
                                   mido.Message("note_off", note=62, velocity=0, time=1920)])
                z.write(midi, f"Nottingham/{split}/{name}.mid")
    data = bytearray(good.read_bytes())
    first = data.index(b"MTrk")  # inside the first member's stored bytes: its CRC no longer matches
    data[first + 10] ^= 0xFF
    good.write_bytes(bytes(data))
    result = srnn("prep", "--dataset", "nottingham", "--source", good, "--out", tmp_path / "data")
    assert result.returncode == 0, result.stderr
    assert "damaged" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("options, words", [(["--lr", "nan"], "lr must be"),
                                            (["--augment", "transpose:1000"], "augment_transpose"),
                                            (["--nproc", "3"], "--nproc 3")])
def test_11_bad_training_options_are_refused_before_a_run_directory_is_made(trained, tmp_path, options, words):
    _, data = trained
    run = tmp_path / "run"
    result = srnn("train", "--data", data, "--run-dir", run, "--epochs", 1, *options)
    one_line_error(result, words)
    assert not run.exists()


def test_11_many_samples_are_drawn_in_batches_and_the_picture_is_bounded(trained, tmp_path):
    from pyro_srnn import sample as S
    from pyro_srnn.checkpoint import load_checkpoint, model_from_checkpoint

    run, _ = trained
    srnn_model = model_from_checkpoint(load_checkpoint(run / "best.pt"))
    batches = list(S.sample_batches(srnn_model, 5, 10, seed=3, batch=4))
    assert [len(b) for b in batches] == [4, 4, 2]
    np.testing.assert_array_equal(batches[0], S.sample_rolls(srnn_model, 5, 4, seed=3))  # one stream, seeded once
    result = srnn("sample", "-o", tmp_path / "x.mid", "--n", 20, "--steps", 8, "--png", tmp_path / "x.png",
                  "--run", run)
    assert result.returncode == 0, result.stderr
    assert len(list(tmp_path.glob("x-*.mid"))) == 20
    height = int.from_bytes((tmp_path / "x.png").read_bytes()[20:24], "big")
    assert height == 16 * 260  # 16 panels of 2.6 inches at 100 dpi, not 20
    assert "first 16 of 20" in result.stdout


# ----------------------------------------------------------------------------- 12: temporaries


def test_12_temporaries_of_dead_processes_are_removed_and_failures_leave_none(trained, tmp_path):
    run, _ = trained
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = [tmp_path / f".x.mid.tmp-{dead.pid}", tmp_path / f"x.mid.tmp-{dead.pid}"]
    live = tmp_path / f".x.mid.tmp-{os.getpid()}"  # a process still writing: kept
    for path in stale + [live]:
        path.write_bytes(b"partial")
    result = srnn("sample", "-o", tmp_path / "x.mid", "--run", run)
    assert result.returncode == 0, result.stderr
    assert not any(p.exists() for p in stale) and live.exists()
    run_stale = run / f"last.pt.tmp-{dead.pid}"
    run_stale.write_bytes(b"partial")
    result = srnn("train", "--run-dir", run, "--resume", "--epochs", 1)
    assert result.returncode == 0, result.stderr
    assert not run_stale.exists()


# ----------------------------------------------------------------------------- 13: messages that mislead


def test_13_a_diverged_run_without_checkpoints_says_so(bach_file, tmp_path):
    from pyro_srnn.errors import TrainingDiverged

    trainer = Trainer(tiny_config(epochs=1), PianoRollFile(bach_file), tmp_path / "run")
    trainer.step = lambda batch, temperature: (float("nan"), (0.0, 0.0), (None, None))
    trainer.last_grad_norm = float("nan")
    trainer.start()
    with pytest.raises(TrainingDiverged, match="no checkpoint had been written yet"):
        trainer.fit()


def test_13_resume_names_the_runs_own_dataset_and_needs_only_last_pt(trained, tmp_path):
    run, data = trained
    copy = tmp_path / "run"
    copy.mkdir()
    for name in ("last.pt", "best.pt", "metrics.jsonl"):
        (copy / name).write_bytes((run / name).read_bytes())  # config.json lost
    result = srnn("train", "--run-dir", copy, "--resume")
    assert result.returncode == 0, result.stderr
    assert json.loads((copy / "config.json").read_text())["data"] == str(data)  # recovered from last.pt
    assert [json.loads(line)["epoch"] for line in (copy / "metrics.jsonl").read_text().splitlines()] == [1]
    moved = data.with_name("moved.h5")
    os.replace(data, moved)
    try:
        one_line_error(srnn("train", "--run-dir", copy, "--resume"), "srnn prep --dataset bach")
    finally:
        os.replace(moved, data)


@pytest.mark.parametrize("option, value", [("--temperature", "nan"), ("--z-scale", "inf")])
def test_11_sampling_controls_that_are_not_numbers_are_refused_before_writing(trained, tmp_path, option, value):
    run, _ = trained
    one_line_error(srnn("sample", "-o", tmp_path / "x.mid", "--run", run, option, value), option)
    assert list(tmp_path.iterdir()) == []


# ============================================================================= round two: the newer commands
# One test per item of the second round (sweep, report, render and audio, seconds frames, --music, the API).


def cli(*args, cwd=None):
    """The command line run in this process (about 3 s faster per call than a subprocess, which pays for
    importing torch and Pyro each time), with the guarantees of :func:`srnn`: any exception other than the
    command's own exit fails the test with its traceback, so a case that would print one cannot pass."""
    import subprocess as sp

    from click.testing import CliRunner

    from cli.main import srnn as command

    with contextlib.chdir(cwd) if cwd else contextlib.nullcontext():
        result = CliRunner().invoke(command, [str(a) for a in args], catch_exceptions=True)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return sp.CompletedProcess(args, result.exit_code, result.stdout, result.stderr)


def _tiny_options(run_dir, data, *more):
    return ["train", "--data", data, "--d", 6, "--a", 5, "--z", 3, "--hidden", 8, "--epochs", 1, "--seq-len", 20,
            "--batch-size", 4, "--run-dir", run_dir, *more]


def _no_leftovers(folder: Path):
    """No temporaries or lock files anywhere under ``folder``."""
    left = [p for p in folder.rglob("*") if ".tmp-" in p.name or p.name.endswith(".lock")]
    assert not left, left


@pytest.mark.parametrize("storage", ["sqlite://", "sqlite:///:memory:", "sqlite:///file::memory:?cache=shared"])
def test_r2_1_an_in_memory_study_is_refused_before_anything_is_made(trained, tmp_path, storage):
    _, data = trained
    out = tmp_path / "sweep"
    result = cli("sweep", "--data", data, "--grid", "z=2", "--epochs", 1, "--storage", storage, "--out", out,
                 cwd=tmp_path)
    one_line_error(result, storage, "in-memory")
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == []


def _children(pid: int) -> list:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def _spawned_workers(pid: int) -> list:
    return [c for c in _children(pid) if b"spawn_main" in Path(f"/proc/{c}/cmdline").read_bytes()]


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="needs /proc to find the worker processes")
@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGTERM])
def test_r2_2_a_killed_sweep_leaves_no_live_worker(trained, tmp_path, how):
    import time

    _, data = trained
    command = [str(SRNN) if SRNN.exists() else sys.executable] + ([] if SRNN.exists() else ["-m", "cli.main"])
    sweep = subprocess.Popen(command + ["sweep", "--data", str(data), "--grid", "z=2,3 d=6 a=5 hidden=8 seq-len=20",
                                        "--epochs", "500", "--out", str(tmp_path / "sweep")],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not list((tmp_path / "sweep").glob("*/last.pt")) and time.time() < deadline:
        time.sleep(0.2)  # a worker is training (it has written a checkpoint)
    workers = _spawned_workers(sweep.pid)
    assert workers, "no worker started"
    sweep.send_signal(how)
    _, err = sweep.communicate(timeout=60)
    deadline = time.time() + 10
    while any(map(_alive, workers)) and time.time() < deadline:
        time.sleep(0.1)
    assert not any(map(_alive, workers)), "a worker outlived its sweep"
    if how == signal.SIGTERM:  # as Ctrl-C: one line, exit 130
        assert sweep.returncode == 130 and "interrupted" in err and "Traceback" not in err, err


def _midi_file(path, notes=((60, 0, 480),), tpb=480, tempo=None, midi_type=1):
    events = [] if tempo is None else [mido.MetaMessage("set_tempo", tempo=tempo, time=0)]
    now = 0
    for pitch, start, end in notes:
        events += [mido.Message("note_on", note=pitch, velocity=80, time=start - now),
                   mido.Message("note_off", note=pitch, velocity=0, time=end - start)]
        now = end
    mid = mido.MidiFile(ticks_per_beat=tpb, type=midi_type)
    mid.tracks.append(mido.MidiTrack(events))
    mid.save(str(path))
    return path


def test_r2_3_no_command_replaces_its_own_input(trained, tmp_path):
    run, _ = trained
    midi = _midi_file(tmp_path / "in.mid")
    before = midi.read_bytes()
    one_line_error(cli("render", midi, "-o", midi, "--force"), "in.mid", "input")
    one_line_error(cli("sample", "--run", run, "--prime", midi, "-o", midi, "--force"), "in.mid", "input")
    assert midi.read_bytes() == before
    files = snapshot(run)
    for victim in ("metrics.jsonl", "best.pt", "config.json"):
        one_line_error(cli("report", run, "-o", run / victim, "--force"), victim, "input")
    one_line_error(cli("sample", "--run", run, "-o", tmp_path / "x.mid", "--png", run / "best.pt", "--force"),
                   "best.pt", "input")  # the checkpoint it samples from
    assert snapshot(run) == files
    _no_leftovers(tmp_path)


HOSTILE = "<!--<script>alert(1)</script>&amp;[bold red]$x$_"


def _hostile_run(trained, folder: Path, name: str) -> Path:
    """A copy of the trained run under a hostile name, with hostile strings and NaN in its metrics."""
    run, _ = trained
    copy = folder / name
    copy.mkdir()
    for item in run.iterdir():
        if item.is_file():
            (copy / item.name).write_bytes(item.read_bytes())
    rows = [json.loads(line) for line in (copy / "metrics.jsonl").read_text().splitlines()]
    rows[0].update(note=HOSTILE, grad_norm=float("nan"), seconds=float("inf"))
    (copy / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return copy


def _parsed(page: str):
    """The page as a browser's parser builds it (html5lib implements the HTML standard's tree construction,
    script and comment states included)."""
    html5lib = pytest.importorskip("html5lib")
    return html5lib.parse(page, namespaceHTMLElements=False)


def test_r2_4_hostile_names_and_metrics_keep_every_section_and_only_our_scripts(trained, tmp_path):
    run, _ = trained
    hostile = _hostile_run(trained, tmp_path, "<!--<script>x")
    result = cli("report", hostile, "--no-audio", "-o", tmp_path / "one.html")
    assert result.returncode == 0, result.stderr
    tree = _parsed((tmp_path / "one.html").read_text())
    sections = [h.text for h in tree.iter("h2")]
    assert sections == ["Test evaluation", "Samples beside test pieces", "Sample statistics against the test data",
                        "Training", "Data", "Configuration"]
    scripts = list(tree.iter("script"))
    assert [s.get("type") for s in scripts] == ["application/json"]
    metrics = json.loads(scripts[0].text, parse_constant=lambda c: pytest.fail(f"non-JSON constant {c}"))
    assert metrics[0]["note"] == HOSTILE and metrics[0]["grad_norm"] is None and metrics[0]["seconds"] is None
    assert "".join(tree.find(".//h1").itertext()) == f"SRNN run {hostile}"

    result = cli("report", run, hostile, "-o", tmp_path / "many.html")
    assert result.returncode == 0, result.stderr
    tree = _parsed((tmp_path / "many.html").read_text())
    scripts = list(tree.iter("script"))
    assert len(scripts) == 2 and scripts[0].get("type") == "application/json" and "sortable" in scripts[1].text
    assert set(json.loads(scripts[0].text)) == {str(run), str(hostile)}
    cells = [row.find("td").text for row in tree.iter("tr") if row.find("td") is not None]
    assert cells == [run.name, hostile.name]


def test_r2_4_a_damaged_metrics_line_and_a_target_that_is_no_run_are_refused(trained, tmp_path):
    run, _ = trained
    copy = _hostile_run(trained, tmp_path, "copy")
    lines = (copy / "metrics.jsonl").read_text().splitlines()
    (tmp_path / "empty-folder").mkdir()
    one_line_error(cli("report", run, tmp_path / "empty-folder", "-o", tmp_path / "x.html"), "empty-folder",
                   "not a run")
    (copy / "metrics.jsonl").write_text("\n".join([lines[0], "garbage", *lines[1:]]) + "\n")
    one_line_error(cli("report", copy, "-o", tmp_path / "x.html"), "metrics.jsonl", "line 2")
    (copy / "metrics.jsonl").write_text(lines[0] + "\n" + lines[0][:20])  # a last line cut by a crash: fine
    from pyro_srnn.runs import RunDir

    assert len(RunDir(copy).metrics()) == 1
    assert not (tmp_path / "x.html").exists()


MARKUP_NAMES = ["[bold red]loud", "[link=x]y", ":smile: [b]"]  # a file name holds no "/", a dataset name may


@pytest.mark.parametrize("name", MARKUP_NAMES)
def test_r2_5_names_are_shown_as_they_are(trained, tmp_path, name):
    _, data = trained
    named = tmp_path / f"{name}.h5"
    named.write_bytes(data.read_bytes())
    result = cli("info", named)
    assert result.returncode == 0 and f"{name}.h5" in result.stdout, result.stdout + result.stderr
    folder = tmp_path / "pieces"
    folder.mkdir()
    _midi_file(folder / f"{name}.mid", notes=((60, 0, 480), (64, 480, 960)))
    (folder / f"{name}-bad.mid").write_bytes(b"not midi")
    run = tmp_path / f"run{name}"
    result = cli(*_tiny_options(run, named))
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    assert run.name in result.stderr
    result = cli("evaluate", run, "--midi", folder)
    assert result.returncode == 0, result.stderr
    assert name in result.stdout and f"{name}-bad.mid" in result.stderr
    result = cli("prep", "--midi", folder, "--name", name, "--split", "all-test", "--out", tmp_path / name[:2])
    assert result.returncode == 0 and f"{name}-bad.mid" in result.stderr and f"{name}.h5" in result.stderr, \
        result.stderr


def test_r2_5_dataset_and_frame_names_are_shown_as_they_are(tmp_path):
    data = toy_file(tmp_path / "toy.h5", dataset="[/x]", frame_name="[/frames]")
    result = cli("info", data)
    assert result.returncode == 0 and "[/x]" in result.stdout and "[/frames]" in result.stdout, result.stderr
    result = cli(*_tiny_options(tmp_path / "run", data))
    assert result.returncode == 0 and "[/x]" in result.stderr, result.stderr


def test_r2_5_pictures_show_names_as_they_are():
    from pyro_srnn.plot import draw_roll, plot_text, pyplot

    plt = pyplot()
    fig, ax = plt.subplots()
    draw_roll(ax, np.zeros((4, 88)), r"$\notacommand$ and $x$")
    line, = ax.plot([0, 1])
    ax.legend([line], [plot_text("_hidden $y$")])
    fig.canvas.draw()  # mathtext would fail here on \notacommand
    assert ax.get_title() == r"\$\notacommand\$ and \$x\$"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [r"_hidden \$y\$"]
    plt.close(fig)


@pytest.mark.parametrize("frame", ["0.1234s", "0.3s", "0.05s", "0.999999s", "17.000001s", "59.5s"])
def test_r2_6_seconds_frames_write_exactly(tmp_path, frame):
    from data_prep.midi import frame_grid, read_midi_roll, roll_to_midi

    for rule in ("sample", "overlap"):
        grid = frame_grid(frame, rule)
        roll = random_roll(np.random.default_rng(1), 60, density=0.1)
        roll_to_midi(roll, tmp_path / "x.mid", grid)
        np.testing.assert_array_equal(read_midi_roll(tmp_path / "x.mid", grid, keep_length=True), roll)


def test_r2_6_seconds_frames_sample_and_render_and_unwritable_ones_are_refused(tmp_path):
    data = toy_file(tmp_path / "odd.h5", unit="seconds", step=0.1234, frame_phase=0.0)
    run = tmp_path / "run"
    trainer = Trainer(tiny_config(epochs=1), PianoRollFile(data), run)
    trainer.start()
    trainer.fit()
    result = cli("sample", "--run", run, "-o", tmp_path / "x.mid", "--wav", tmp_path / "x.wav", "--steps", 20)
    assert result.returncode == 0, result.stderr
    from data_prep.midi import read_midi_roll

    assert read_midi_roll(tmp_path / "x.mid", PianoRollFile(data).grid, keep_length=True).shape == (20, 88)
    folder = tmp_path / "midi"
    folder.mkdir()
    _midi_file(folder / "a.mid")
    one_line_error(cli("prep", "--midi", folder, "--name", "x", "--frame", "0.1234567s", "--out", tmp_path / "d"),
                   "0.1234567", "microseconds")
    assert not (tmp_path / "d").exists() or not list((tmp_path / "d").iterdir())


def _patched_division(path, division: bytes):
    data = bytearray(path.read_bytes())
    data[12:14] = division
    path.write_bytes(bytes(data))
    return path


def test_r2_7_every_command_reads_midi_through_one_reader(trained, tmp_path):
    run, _ = trained
    bad = {"type 2": _midi_file(tmp_path / "two.mid", midi_type=2),
           "division 0": _patched_division(_midi_file(tmp_path / "zero.mid"), b"\x00\x00"),
           "SMPTE": _patched_division(_midi_file(tmp_path / "smpte.mid"), b"\xe7\x28")}
    for words, path in bad.items():
        line = one_line_error(cli("render", path, "-o", tmp_path / "x.wav"), path.name)
        assert words.split()[0].lower() in line.lower(), line
        one_line_error(cli("sample", "--run", run, "--prime", path, "-o", tmp_path / "x.mid"), path.name)
    assert not (tmp_path / "x.wav").exists() and not (tmp_path / "x.mid").exists()
    stopped = _midi_file(tmp_path / "tempo0.mid", notes=((60, 0, 480), (62, 480, 960)), tempo=0)
    result = cli("sample", "--run", run, "--prime", stopped, "-o", tmp_path / "primed.mid", "--steps", 4)
    assert result.returncode == 0, result.stderr  # beats: tempo plays no part
    one_line_error(cli("render", stopped, "-o", tmp_path / "x.wav"), "tempo0.mid", "tempo of 0")
    folder = tmp_path / "beats"
    for split in ("train", "valid", "test"):
        (folder / split).mkdir(parents=True)
        _midi_file(folder / split / "t.mid", notes=((60, 0, 480), (62, 480, 960)), tempo=0)
    result = cli("prep", "--midi", folder, "--name", "beats", "--out", tmp_path / "d")
    assert result.returncode == 0, result.stderr
    result = cli("prep", "--midi", folder, "--name", "secs", "--frame", "0.3s", "--out", tmp_path / "d")
    one_line_error(result, "tempo")
    assert "tempo of 0" in result.stderr and "ZeroDivision" not in result.stderr


@pytest.mark.parametrize("options, words", [
    (["--d", 100000], "d must be 1..16384"), (["--elbo", "iwae:100000"], "K <= 10000"),
    (["--seed", -1], "seed must be"), (["--seed", 2 ** 64], "seed must be"),
    (["--batch-size", 60000], "training frames"),
    (["--elbo", "iwae:5000", "--d", 300, "--a", 300, "--hidden", 500, "--seq-len", 100, "--batch-size", 16],
     "of memory")])
def test_r2_8_what_cannot_fit_is_refused_before_the_run_directory(trained, tmp_path, options, words):
    _, data = trained
    run = tmp_path / "run"
    one_line_error(cli(*_tiny_options(run, data), *options), words)
    assert not run.exists()
    result = cli(*_tiny_options(run, data))  # the corrected command is not blocked
    assert result.returncode == 0, result.stderr


def test_r2_8_sampling_and_sweep_values_out_of_range(trained, tmp_path):
    run, data = trained
    for options in (["--z-scale", "1e40"], ["--steps", 200000], ["--burn-in", "1000000000"], ["--seed", -1],
                    ["--temperature", "1e-40"]):
        one_line_error(cli("sample", "--run", run, "-o", tmp_path / "x.mid", *options), options[0])
    one_line_error(cli("sweep", "--data", data, "--grid", "d=6,100000", "--out", tmp_path / "s"), "d must be")
    one_line_error(cli("sweep", "--data", data, "--grid", "elbo=iwae:5000", "--out", tmp_path / "s"), "of memory")
    assert list(tmp_path.iterdir()) == []


def _allocate_a_petabyte(*args, **kwargs):
    import torch

    torch.empty(2 ** 50, dtype=torch.uint8)  # PyTorch's own allocation failure, raised at once


def test_r2_8_an_allocation_failure_is_one_line_and_leaves_no_run(trained, tmp_path, monkeypatch):
    from pyro_srnn import evaluate as E, train as T
    from pyro_srnn.errors import allocation_failure

    assert "37.3 GiB" in allocation_failure(RuntimeError(
        "[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: can't allocate memory: you tried to "
        "allocate 40000000000 bytes. Error code 12 (Cannot allocate memory)"))
    assert allocation_failure(MemoryError()) and allocation_failure(RuntimeError("shape mismatch")) is None
    run, data = trained
    monkeypatch.setattr(T, "svi_step", _allocate_a_petabyte)  # the first update fails, after the run was made
    one_line_error(cli(*_tiny_options(tmp_path / "run", data)), "out of memory", "1048576.0 GiB")
    assert not (tmp_path / "run").exists()
    monkeypatch.setattr(E, "batch_scores", _allocate_a_petabyte)
    one_line_error(cli("evaluate", run), "out of memory")


def _checkpoint_without(key):
    def damage(ckpt):
        del ckpt[key]
    return damage


def _config_not_a_mapping(ckpt):
    ckpt["config"] = [1, 2]


def _tensors_not_fitting(ckpt):
    name = next(iter(ckpt["model"]))
    ckpt["model"][name] = ckpt["model"][name][:1]


@pytest.mark.parametrize("damage, words", [(_checkpoint_without("model"), "model is missing"),
                                           (_checkpoint_without("grid"), "grid is missing"),
                                           (_config_not_a_mapping, "config is not a mapping"),
                                           (_tensors_not_fitting, "the configuration needs")])
def test_r2_9_a_malformed_checkpoint_is_one_line_from_every_command(trained, tmp_path, damage, words):
    import torch

    run, _ = trained
    copy = tmp_path / "run"
    copy.mkdir()
    for item in run.iterdir():
        if item.is_file():
            (copy / item.name).write_bytes(item.read_bytes())
    for name in ("best.pt", "last.pt"):
        ckpt = torch.load(copy / name, weights_only=True)
        damage(ckpt)
        torch.save(ckpt, copy / name)
    before = snapshot(copy)
    one_line_error(cli("evaluate", copy), "best.pt", words)
    one_line_error(cli("sample", "--run", copy, "-o", tmp_path / "x.mid"), "best.pt", words)
    one_line_error(cli("train", "--run-dir", copy, "--resume"), "last.pt", words)
    assert snapshot(copy) == before and not (tmp_path / "x.mid").exists()


def _garbage(path):
    path.write_text("{not json")


@pytest.mark.parametrize("file, edit, words", [
    ("metrics.jsonl", lambda p: p.write_text("[1, 2]\n"), "a JSON object"),
    ("metrics.jsonl", lambda p: p.write_text('{"epoch": 1}\n'), "lacks train_elbo"),
    ("metrics.jsonl", lambda p: p.write_text(p.read_text().replace('"lr": ', '"lr": "x", "o": ')), "lr is 'x'"),
    ("test.json", _garbage, "not a scores file"),
    ("test.json", lambda p: p.write_text('{"elbo": {"per_sequence": "x"}}'), "elbo.per_sequence"),
    ("eval.json", _garbage, "not a scores file")])
def test_r2_9_malformed_run_files_are_one_line_from_report(trained, tmp_path, file, edit, words):
    copy = _hostile_run(trained, tmp_path, "run")
    (copy / "metrics.jsonl").write_text((trained[0] / "metrics.jsonl").read_text())
    edit(copy / file)
    target = [copy] if file != "eval.json" else [copy, trained[0]]
    one_line_error(cli("report", *target, "--no-audio", "-o", tmp_path / "x.html"), file, words)
    assert not (tmp_path / "x.html").exists()


def test_r2_9_a_config_json_with_a_wrong_type_is_one_line(trained, tmp_path):
    copy = _hostile_run(trained, tmp_path, "run")
    record = json.loads((copy / "config.json").read_text())
    record["config"]["d"] = "x"
    (copy / "config.json").write_text(json.dumps(record))
    one_line_error(cli("train", "--run-dir", copy, "--resume"), "d must be an integer")


@pytest.mark.parametrize("attr, value, words", [("frame_step", float("inf"), "frame grid"),
                                                 ("tempo_bpm", -120.0, "tempo_bpm"),
                                                 ("tempo_bpm", float("nan"), "tempo_bpm"),
                                                 ("tempo_bpm", 1.0, "tempo_bpm")])  # no MIDI file can state it
def test_r2_9_an_hdf5_with_impossible_timing_is_refused_on_open(tmp_path, attr, value, words):
    path = toy_file(tmp_path / "bad.h5")
    with h5py.File(path, "a") as f:
        f.attrs[attr] = value
    one_line_error(cli("info", path), str(path), words)


def test_r2_10_long_and_many_samples_are_bounded_and_show_progress(trained, tmp_path, monkeypatch):
    from pyro_srnn import sample as S
    from pyro_srnn.checkpoint import load_checkpoint, model_from_checkpoint

    run, data = trained
    model = model_from_checkpoint(load_checkpoint(run / "best.pt"))
    monkeypatch.setattr(S, "BATCH_FRAMES", 1_000)
    seen = []
    batches = list(S.sample_batches(model, 300, 10, seed=1, controls=S.Controls(burn_in=7), on_frames=seen.append))
    assert [len(b) for b in batches] == [3, 3, 3, 1] and all(b.dtype == np.uint8 for b in batches)
    assert sum(seen) == 10 * (300 + 7)
    one = np.concatenate(batches)
    from data_prep.stats import compare, roll_statistics

    sequences = PianoRollFile(data).split("test").sequences()
    rows = S.sample_statistics(model, sequences, n=10, steps=300, seed=1, controls=S.Controls(burn_in=7))
    expected = compare(roll_statistics(sequences), roll_statistics(list(one)))  # the samples all kept
    assert [r[:4] for r in rows] == [r[:4] for r in expected]
    np.testing.assert_allclose([r[4] for r in rows], [r[4] for r in expected])
    for options in (["--music", "--n", 1000000], ["--music", "--steps", 100000000]):
        one_line_error(cli("evaluate", run, *options), options[1])
    one_line_error(cli("sweep", "--data", data, "--grid", "z=2,3", "--jobs", 8, "--out", tmp_path / "s"),
                   "--jobs 8", "2 trial")
    assert not (tmp_path / "s").exists()


def test_r2_11_a_wav_into_a_read_only_folder_is_one_line(trained, read_only, tmp_path):
    run, _ = trained
    midi = _midi_file(tmp_path / "a.mid")
    before = snapshot(read_only)
    one_line_error(cli("render", midi, "-o", read_only / "a.wav"), "a.wav")
    one_line_error(cli("sample", "--run", run, "-o", tmp_path / "b.mid", "--wav", read_only / "b.wav"), "b.wav")
    assert snapshot(read_only) == before and not (tmp_path / "b.mid").exists()


def test_r2_12_a_full_second_output_is_blamed_on_itself(trained, full_disk, tmp_path):
    run, _ = trained
    (tmp_path / "ok").mkdir()
    for option, name in (("--png", "x.png"), ("--wav", "b.wav")):
        result = srnn("sample", "--run", run, "-o", tmp_path / "ok" / "x.mid", option, full_disk.folder / name,
                      full_disk=full_disk)
        line = one_line_error(result, name)
        assert "x.mid" not in line or full_disk.folder.name in line
    assert list((tmp_path / "ok").iterdir()) == []


def test_r2_12_storages_that_cannot_be_used_leave_nothing_beside_them(trained, full_disk, tmp_path):
    _, data = trained
    plain = tmp_path / "notes.txt"
    plain.write_text("not a database")
    one_line_error(cli("sweep", "--data", data, "--grid", "z=2", "--storage", f"sqlite:///{plain}",
                        "--out", tmp_path / "s1"), "cannot open the study database")
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "full") in (["notes.txt"], ["notes.txt", "s1"])
    _no_leftovers(tmp_path)
    result = srnn("sweep", "--data", data, "--grid", "z=2", "--storage", f"sqlite:///{full_disk.folder}/x.db",
                  "--out", tmp_path / "s2", full_disk=full_disk)
    one_line_error(result, "x.db")
    assert sorted(p.name for p in full_disk.folder.iterdir()) in ([], ["filler"])


def test_r2_12_messages_name_what_they_are_about(trained, tmp_path):
    run, data = trained
    scoring = tmp_path / "scoring.h5"
    folder = tmp_path / "pieces"
    folder.mkdir()
    _midi_file(folder / "a.mid", notes=((60, 0, 480), (64, 480, 960)))
    assert cli("prep", "--midi", folder, "--name", "scoring", "--split", "all-test", "--out", tmp_path).returncode == 0
    one_line_error(cli("evaluate", run, "--data", scoring, "--split", "valid"), str(scoring), "valid split",
                   "no sequences")
    long = tmp_path / "long"
    long.mkdir()
    for i in range(3):
        _midi_file(long / f"l{i}.mid", notes=((60, 0, 480 * 400),))
    one_line_error(cli("prep", "--midi", long, "--name", "l", "--max-frames", 50, "--out", tmp_path / "d"),
                   "3 longer than --max-frames 50")
    zero = tmp_path / "zero"
    zero.mkdir()
    _midi_file(zero / "z.mid", notes=((60, 0, 0),))
    one_line_error(cli("prep", "--midi", zero, "--name", "z", "--out", tmp_path / "d"), "zero length")
    (tmp_path / "page.html").write_text("mine")
    data.rename(data.with_name("away.h5"))  # the report would fail on the missing data if -o came after the work
    try:
        one_line_error(cli("report", run, "-o", tmp_path / "page.html"), "page.html", "--force")
    finally:
        data.with_name("away.h5").rename(data)
    assert (tmp_path / "page.html").read_text() == "mine"


def test_r2_13_a_run_finds_its_data_from_any_folder(trained, tmp_path):
    _, data = trained
    project = tmp_path / "project"
    (project / "data").mkdir(parents=True)
    (project / "data" / "bach.h5").write_bytes(data.read_bytes())
    result = cli(*_tiny_options("runs/r", "data/bach.h5"), cwd=project)
    assert result.returncode == 0, result.stderr
    record = json.loads((project / "runs" / "r" / "config.json").read_text())
    assert record["data"] == str(project / "data" / "bach.h5") and record["data_from_run"] == "../../data/bach.h5"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    result = cli("evaluate", project / "runs" / "r", "--json", cwd=elsewhere)
    assert result.returncode == 0, result.stderr
    moved = tmp_path / "moved"
    project.rename(moved)  # the absolute path is gone; the one relative to the run still holds
    result = cli("train", "--run-dir", moved / "runs" / "r", "--resume", cwd=elsewhere)
    assert result.returncode == 0, result.stderr
    (elsewhere / "data").mkdir()
    toy_file(elsewhere / "data" / "bach.h5")  # another file at the old relative path is not taken for it
    result = cli("evaluate", moved / "runs" / "r", "--json", cwd=elsewhere)
    assert result.returncode == 0 and json.loads(result.stdout)["data"] == str(moved / "data" / "bach.h5")


@pytest.mark.parametrize("options, words", [(["--music", "--iwae", 5], "--iwae"),
                                            (["--music", "--first-input", "x1"], "--first-input"),
                                            (["--music", "--samples", 3], "--samples"),
                                            (["--n", 3], "--n"), (["--temperature", 0.5], "--temperature")])
def test_r2_14_options_that_do_not_apply_are_refused(trained, options, words):
    run, _ = trained
    one_line_error(cli("evaluate", run, *options), words, "not apply")


PWN = "<script>document.documentElement.setAttribute('data-pwned', '1')</script>" \
      "<img src=x onerror=\"document.documentElement.setAttribute('data-pwned', '1')\">"


def _browser():
    import shutil

    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def _dom(browser, page: Path, profile: Path) -> str:
    """The page's document after a real browser loaded it and ran its scripts."""
    result = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                             "--no-first-run", "--disable-background-networking", "--disable-component-update",
                             "--disable-sync", f"--user-data-dir={profile}", "--virtual-time-budget=2000",
                             "--dump-dom", page.resolve().as_uri()], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.mark.skipif(_browser() is None, reason="needs Chromium (.ci/run installs Debian's chromium package)")
def test_r2_4_in_a_browser_a_hostile_report_keeps_its_sections_and_runs_only_its_own_script(trained, tmp_path):
    browser = _browser()
    control = tmp_path / "control.html"
    control.write_text(f"<!doctype html><html><body><p>{PWN}</p></body></html>")
    assert 'data-pwned="1"' in _dom(browser, control, tmp_path / "profile")  # this harness sees injected code run
    hostile = _hostile_run(trained, tmp_path, "<!--<script>x")
    rows = [json.loads(line) for line in (hostile / "metrics.jsonl").read_text().splitlines()]
    rows[0]["note"] = PWN + HOSTILE
    (hostile / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    renamed = hostile.rename(tmp_path / (hostile.name + PWN.replace("/", "|")))
    for targets, name, sections in (([renamed], "one.html", 6), ([trained[0], renamed], "many.html", 1)):
        assert cli("report", *targets, "--no-audio", "-o", tmp_path / name).returncode == 0
        dom = _dom(browser, tmp_path / name, tmp_path / "profile")
        assert 'data-pwned="1"' not in dom
        assert dom.count("<h2>") == sections and dom.rstrip().endswith("</html>")
        assert dom.count("<script") == (1 if name == "one.html" else 2)


def test_r2_5_sweep_tables_keep_their_columns_whatever_a_trial_says():
    import re

    from pyro_srnn.sweep import results_tables

    md, csv_text = results_tables([{"trial": 0, "run": "a|b", "state": "failed: x | y\nTraceback"},
                                   {"trial": 1, "run": "c", "state": "complete"}])
    lines = md.strip().splitlines()
    assert len(lines) == 4  # header, rule, two rows: no row was broken in two
    assert {len(re.findall(r"(?<!\\)\|", line)) for line in lines} == {4}  # every row three cells
    assert "a\\|b" in lines[2] and "failed: x \\| y Traceback" in lines[2]
    assert "a|b" in csv_text  # CSV quotes what it must by itself
