"""srnn prep: canonical counts of the benchmarks, the npz rebuild, MIDI folders, Bach offline, downloads."""
import hashlib
import json

import mido
import numpy as np
import pytest
from click.testing import CliRunner

from cli.main import srnn
from data_prep.h5 import PianoRollFile
from data_prep.midi import beat_grid, frame_grid, roll_to_midi
from data_prep.prep import prepare_bach, prepare_benchmark
from data_prep.sources import Download, SourceError, fetch_verified, find_source, BENCHMARKS, read_mat, \
    read_pickle, read_srnn_npz
from tests.conftest import random_roll

CANONICAL = {  # sequences and time steps per split, data/SOURCES.md
    "jsb": ((229, 76, 77), (13807, 4602, 4725)),
    "nottingham": ((694, 173, 170), (176561, 45513, 44463)),
    "muse": ((524, 135, 124), (245202, 82755, 64339)),
    "piano": ((87, 12, 25), (75911, 8540, 19036)),
}


@pytest.mark.parametrize("name", list(CANONICAL))
def test_benchmark_from_mat_has_canonical_counts(source_dir, name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(srnn, ["prep", "--dataset", name, "--out", "d"])
    assert result.exit_code == 0, result.output
    summary = PianoRollFile(tmp_path / "d" / f"{name}.h5").summary()
    seqs, steps = CANONICAL[name]
    assert tuple(summary[s]["sequences"] for s in ("train", "valid", "test")) == seqs
    assert tuple(summary[s]["frames"] for s in ("train", "valid", "test")) == steps


def test_jsb_pickle_equals_mat(source_dir):
    pkl = read_pickle(source_dir / "boulanger" / "jsb-chorales-quarter.pkl")
    mat = read_mat(source_dir / "boulanger" / "JSB_Chorales.mat")
    for split in ("train", "valid", "test"):
        assert len(pkl[split][0]) == len(mat[split][0])
        for a, b in zip(pkl[split][0], mat[split][0]):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("name", list(CANONICAL))
def test_srnn_npz_test_split_cut_to_mask(source_dir, name):
    data = np.load(source_dir / "srnn_npz" / BENCHMARKS[name].srnn_file)
    test = read_srnn_npz(source_dir / "srnn_npz" / BENCHMARKS[name].srnn_file)["test"][0]
    lengths = data["mask_test"].sum(1).astype(int)
    assert [len(t) for t in test] == list(lengths)
    np.testing.assert_array_equal(test[3], data["x_test"][3, :lengths[3]])


@pytest.mark.parametrize("name", list(CANONICAL))
def test_srnn_npz_keeps_the_frame_before_each_test_sequence(source_dir, name):
    path = source_dir / "srnn_npz" / BENCHMARKS[name].srnn_file
    data = np.load(path)
    test = read_srnn_npz(path)["test"]
    np.testing.assert_array_equal(test[2], data["u_test"][:, 0])
    for seq, u in zip(test[0], data["u_test"]):  # u_t = x_{t-1} after it, as the npz has it
        np.testing.assert_array_equal(u[1:len(seq)], seq[:-1])


def fake_srnn_npz(path, rng, first_nan=False):
    """A small file in the SRNN npz layout: 32 train and valid chunks of 10 steps, 3 padded test sequences whose
    u_test is NaN past their ends (as in the reference files)."""
    chunks = {s: (rng.random((32, 10, 88)) < 0.1).astype(np.float32) for s in ("train", "valid")}
    lengths = [7, 4, 9]
    x_test = np.zeros((3, 9, 88), np.float32)
    u_test = np.full((3, 9, 88), np.nan, np.float32)
    mask = np.zeros((3, 9), np.float32)
    for i, n in enumerate(lengths):
        piece = (rng.random((n + 1, 88)) < 0.1).astype(np.float32)
        x_test[i, :n], u_test[i, :n], mask[i, :n] = piece[1:], piece[:-1], 1
    if first_nan:
        u_test[1, 0, 5] = np.nan
    np.savez(path, x_train=chunks["train"], u_train=chunks["train"], x_valid=chunks["valid"],
             u_valid=chunks["valid"], x_test=x_test, u_test=u_test, mask_test=mask)
    return x_test, u_test, lengths


def test_srnn_npz_reader_on_a_small_file(tmp_path):
    x_test, u_test, lengths = fake_srnn_npz(tmp_path / "toy.npz", np.random.default_rng(0))
    out = read_srnn_npz(tmp_path / "toy.npz")
    seqs, names, first = out["test"]
    assert [len(s) for s in seqs] == lengths and names[0] == "test_0000"
    np.testing.assert_array_equal(first, u_test[:, 0])
    assert len(out["train"][0]) == 16 and len(out["train"][0][0]) == 20  # 2 chunks of 10 per stream
    result = CliRunner().invoke(srnn, ["prep", "--dataset", "jsb", "--variant", "srnn", "--source",
                                       str(tmp_path / "toy.npz"), "--out", str(tmp_path / "d")])
    assert result.exit_code == 0, result.output
    data = PianoRollFile(tmp_path / "d" / "jsb-srnn.h5")
    np.testing.assert_array_equal(data.split("test").first_inputs, u_test[:, 0])
    assert data.split("valid").first_inputs is None
    fake_srnn_npz(tmp_path / "bad.npz", np.random.default_rng(0), first_nan=True)
    with pytest.raises(SourceError, match="bad.npz: u_test"):
        read_srnn_npz(tmp_path / "bad.npz")


def test_bach_prepares_offline(tmp_path, monkeypatch):
    monkeypatch.delenv("SRNN_SOURCE_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(srnn, ["prep", "--dataset", "bach", "--limit", "2"])
    assert result.exit_code == 0, result.output
    data = PianoRollFile(tmp_path / "data" / "bach.h5")
    assert data.attrs["frame_name"] == "quarter" and data.grid.phase == 0.5
    for split in ("train", "valid", "test"):
        s = data.split(split)
        assert len(s) == 2
        # four-part chorales: most frames hold three to four notes
        assert 3.0 <= s.rolls.sum() / len(s.rolls) <= 4.5


def test_bach_split_is_fixed_and_disjoint():
    a, b = prepare_bach(limit=3), prepare_bach(limit=3)
    names = {s: a.splits[s].names for s in ("train", "valid", "test")}
    assert names == {s: b.splits[s].names for s in ("train", "valid", "test")}
    assert not set(names["train"]) & set(names["test"])


def _midi_folder(root, rng, counts=(4, 2, 2), with_splits=True, grid=None):
    grid = grid or frame_grid("eighth", "overlap")  # what --midi reads by default
    rolls = {}
    for split, n in zip(("train", "valid", "test"), counts):
        folder = root / split if with_splits else root
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(n):
            roll = random_roll(rng, 30)
            roll_to_midi(roll, folder / f"{split}{i}.mid", grid)
            rolls[f"{split}{i}"] = roll
    return rolls


def test_midi_folder_skips_corrupt_and_empty_files(tmp_path):
    rolls = _midi_folder(tmp_path / "m", np.random.default_rng(0))
    (tmp_path / "m" / "train" / "corrupt.mid").write_bytes(b"MThd\x00\x00\x00\x06\x00\x01\x00")
    empty = mido.MidiFile()
    empty.tracks.append(mido.MidiTrack())
    empty.save(tmp_path / "m" / "test" / "empty.mid")
    result = CliRunner().invoke(srnn, ["prep", "--midi", str(tmp_path / "m"), "--name", "mine",
                                       "--out", str(tmp_path / "d")])
    assert result.exit_code == 0, result.output
    assert "2 file(s) skipped" in result.output and "corrupt.mid" in result.output
    data = PianoRollFile(tmp_path / "d" / "mine.h5")
    train = data.split("train")
    assert len(train) == 4 and len(data.split("test")) == 2
    np.testing.assert_array_equal(train[0], rolls["train0"])


def test_midi_folder_without_subfolders_splits_deterministically(tmp_path):
    _midi_folder(tmp_path / "m", np.random.default_rng(1), counts=(20, 0, 0), with_splits=False)
    for out in ("a", "b"):
        assert CliRunner().invoke(srnn, ["prep", "--midi", str(tmp_path / "m"), "--name", "x",
                                         "--out", str(tmp_path / out)]).exit_code == 0
    a, b = PianoRollFile(tmp_path / "a" / "x.h5"), PianoRollFile(tmp_path / "b" / "x.h5")
    assert [len(a.split(s)) for s in ("train", "valid", "test")] == [16, 2, 2]
    assert a.split("test").names == b.split("test").names


def test_zero_usable_files_is_an_error(tmp_path):
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "a.mid").write_bytes(b"not midi")
    result = CliRunner().invoke(srnn, ["prep", "--midi", str(tmp_path / "m"), "--name", "x",
                                       "--out", str(tmp_path / "d")])
    assert result.exit_code == 1
    assert result.output.strip().splitlines()[-1].startswith("Error:") and "Traceback" not in result.output
    assert not (tmp_path / "d" / "x.h5").exists()


def test_force_semantics(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert CliRunner().invoke(srnn, ["prep", "--dataset", "bach", "--limit", "1"]).exit_code == 0
    before = (tmp_path / "data" / "bach.h5").read_bytes()
    again = CliRunner().invoke(srnn, ["prep", "--dataset", "bach", "--limit", "2"])
    assert again.exit_code == 1 and "--force" in again.output
    assert (tmp_path / "data" / "bach.h5").read_bytes() == before
    forced = CliRunner().invoke(srnn, ["prep", "--dataset", "bach", "--limit", "2", "--force"])
    assert forced.exit_code == 0
    assert len(PianoRollFile(tmp_path / "data" / "bach.h5").split("train")) == 2


def test_info_json(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    CliRunner().invoke(srnn, ["prep", "--dataset", "bach", "--limit", "1"])
    result = CliRunner().invoke(srnn, ["info", "data/bach.h5", "--json"])
    info = json.loads(result.output)
    assert info["splits"]["train"]["sequences"] == 1 and info["attrs"]["dataset"] == "bach"


def test_download_verifies_sha256(tmp_path):
    payload = b"piano rolls"
    good = Download("https://example.invalid/x.mat", hashlib.sha256(payload).hexdigest())
    fetch_verified(good, tmp_path / "x.mat", lambda url, dest: open(dest, "wb").write(payload))
    assert (tmp_path / "x.mat").read_bytes() == payload
    bad = Download("https://example.invalid/y.mat", "0" * 64)
    with pytest.raises(SourceError, match="sha256"):
        fetch_verified(bad, tmp_path / "y.mat", lambda url, dest: open(dest, "wb").write(payload))
    assert not (tmp_path / "y.mat").exists() and not list(tmp_path.glob("y.mat*"))


def test_no_source_says_what_was_tried(tmp_path, monkeypatch):
    monkeypatch.delenv("SRNN_SOURCE_DIR", raising=False)

    def offline(url, dest):
        raise OSError("network unreachable")

    with pytest.raises(SourceError) as err:
        find_source(BENCHMARKS["piano"], "boulanger", None, tmp_path, offline)
    message = str(err.value)
    assert "SRNN_SOURCE_DIR is not set" in message and "network unreachable" in message and "--source" in message


def test_source_found_under_env(source_dir, tmp_path):
    path = find_source(BENCHMARKS["jsb"], "srnn", None, tmp_path)
    assert path.name == "jsb_raw_batchsize16_seqlen100.npz"
    assert prepare_benchmark("jsb", "srnn").sources[0]["sha256"] == BENCHMARKS["jsb"].srnn_download.sha256


def test_merged_is_the_four_benchmarks_split_by_split(source_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(srnn, ["prep", "--dataset", "merged", "--out", "d"])
    assert result.exit_code == 0, result.output
    merged = PianoRollFile(tmp_path / "d" / "merged.h5")
    for i, split in enumerate(("train", "valid", "test")):
        s = merged.split(split)
        assert len(s) == sum(CANONICAL[n][0][i] for n in CANONICAL)
        assert int(s.lengths.sum()) == sum(CANONICAL[n][1][i] for n in CANONICAL)
        assert s.names[0].startswith("jsb/") and s.names[-1].startswith("piano/")


def test_zip_of_midi_files_with_split_folders(tmp_path):
    import zipfile

    rolls = _midi_folder(tmp_path / "m", np.random.default_rng(5), counts=(2, 1, 1), grid=beat_grid("eighth"))
    with zipfile.ZipFile(tmp_path / "Nottingham.zip", "w") as z:
        for path in (tmp_path / "m").rglob("*.mid"):
            z.write(path, f"Nottingham/{path.relative_to(tmp_path / 'm')}")
    prepared = prepare_benchmark("nottingham", source=str(tmp_path / "Nottingham.zip"), transpose=False)
    assert [len(prepared.splits[s]) for s in ("train", "valid", "test")] == [2, 1, 1]
    np.testing.assert_array_equal(prepared.splits["valid"][0], rolls["valid0"])
    assert prepared.splits["train"].names == ["Nottingham/train/train0", "Nottingham/train/train1"]
