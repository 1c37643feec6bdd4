"""The HDF5 layout: exact round trip, refusal of malformed files, --force semantics, atomic writes."""
import h5py
import numpy as np
import pytest

from data_prep.files import OutputError
from data_prep.h5 import DataFileError, PianoRollFile, Split, write_dataset
from tests.conftest import random_roll

ATTRS = dict(dataset="toy", variant="boulanger", frame_unit="beat", frame_step=0.5, frame_phase=1.5,
             frame_name="eighth", lowest_key=21, n_keys=88, sources=[{"name": "x", "sha256": "0" * 64}],
             version="0.1.0", command="test")


def make_splits(seed=0):
    rng = np.random.default_rng(seed)
    return {s: Split.from_sequences([random_roll(rng, int(n)) for n in rng.integers(5, 50, size=k)],
                                    [f"{s}-{i}" for i in range(k)])
            for s, k in (("train", 5), ("valid", 2), ("test", 3))}


def test_round_trip_is_exact(tmp_path):
    splits = make_splits()
    write_dataset(tmp_path / "d.h5", splits, ATTRS)
    data = PianoRollFile(tmp_path / "d.h5")
    for name, split in splits.items():
        got = data.split(name)
        assert got.names == split.names
        np.testing.assert_array_equal(got.offsets, split.offsets)
        for a, b in zip(got.sequences(), split.sequences()):
            np.testing.assert_array_equal(a, b)
    assert data.attrs["sources"] == ATTRS["sources"] and data.grid.phase == 1.5
    s = data.summary()["train"]
    assert s["frames"] == int(splits["train"].lengths.sum()) and s["max_length"] == splits["train"].lengths.max()


def test_first_inputs_round_trip_and_stay_out_of_the_fingerprint(tmp_path):
    splits = make_splits()
    write_dataset(tmp_path / "plain.h5", splits, ATTRS)
    rng = np.random.default_rng(1)
    test = splits["test"]
    first = random_roll(rng, len(test))
    splits["test"] = Split.from_sequences(test.sequences(), test.names, first)
    write_dataset(tmp_path / "d.h5", splits, ATTRS)
    plain, data = PianoRollFile(tmp_path / "plain.h5"), PianoRollFile(tmp_path / "d.h5")
    np.testing.assert_array_equal(data.split("test").first_inputs, first)
    assert data.split("train").first_inputs is None and plain.split("test").first_inputs is None
    assert data.fingerprint() == plain.fingerprint()
    with h5py.File(tmp_path / "d.h5", "a") as f:
        f["test"]["first_inputs"][0, 0] = 2
    with pytest.raises(DataFileError, match="test/first_inputs holds values other than 0 and 1"):
        PianoRollFile(tmp_path / "d.h5").split("test")
    with pytest.raises(ValueError, match="first_inputs must have shape"):
        Split.from_sequences(test.sequences(), test.names, first[1:])


def test_existing_file_kept_without_force(tmp_path):
    write_dataset(tmp_path / "d.h5", make_splits(0), ATTRS)
    with pytest.raises(OutputError, match="--force"):
        write_dataset(tmp_path / "d.h5", make_splits(1), ATTRS)
    np.testing.assert_array_equal(PianoRollFile(tmp_path / "d.h5").split("test").rolls, make_splits(0)["test"].rolls)
    write_dataset(tmp_path / "d.h5", make_splits(1), ATTRS, force=True)
    np.testing.assert_array_equal(PianoRollFile(tmp_path / "d.h5").split("test").rolls, make_splits(1)["test"].rolls)


def test_failed_write_leaves_no_file(tmp_path):
    splits = make_splits()
    splits["valid"].rolls[0, 0] = 7  # not a piano roll
    with pytest.raises(ValueError):
        write_dataset(tmp_path / "d.h5", splits, ATTRS)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("damage, message", [
    (lambda f: f.attrs.__setitem__("format", "other"), "not a pyro-srnn data file"),
    (lambda f: f.attrs.__delitem__("frame_unit"), "missing root attributes"),
    (lambda f: f["test"].__delitem__("offsets"), "split 'test'"),
    (lambda f: f["valid"]["offsets"].__setitem__(1, 10 ** 6), "valid/offsets"),
    (lambda f: f["train"].__delitem__("names") or f["train"].create_dataset("names", data=np.array([b"a"])),
     "train/names"),
    (lambda f: f["test"].create_dataset("first_inputs", data=np.zeros((2, 88), np.uint8)), "test/first_inputs"),
])
def test_malformed_file_refused(tmp_path, damage, message):
    write_dataset(tmp_path / "d.h5", make_splits(), ATTRS)
    with h5py.File(tmp_path / "d.h5", "a") as f:
        damage(f)
    with pytest.raises(DataFileError, match=message):
        PianoRollFile(tmp_path / "d.h5")


def test_not_hdf5_and_missing(tmp_path):
    (tmp_path / "x.h5").write_text("hello")
    with pytest.raises(DataFileError, match="x.h5: not an HDF5 file"):
        PianoRollFile(tmp_path / "x.h5")
    with pytest.raises(DataFileError, match="no such file"):
        PianoRollFile(tmp_path / "missing.h5")
