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


@pytest.mark.parametrize("grid, words", [("z=4 z=8", "given twice"), ("z=0", "z must be positive"),
                                         ("elbo=bogus", "elbo must be"), ("lr=nan", "lr must be"),
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
    from pyro_srnn.train import load_checkpoint, model_from_checkpoint

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
    one_line_error(srnn("sample", "-o", tmp_path / "x.mid", "--run", run, option, value), "sampling controls")
    assert list(tmp_path.iterdir()) == []
