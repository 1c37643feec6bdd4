"""Checkpoints: written whole or not at all, read without running code, checked before use.

A checkpoint holds only tensors, numbers, strings, lists and dicts (the run's record, the model and optimiser
states, the epoch and step, the random states), and is read with ``weights_only=True``.
"""
from __future__ import annotations

import io
import re
from pathlib import Path

import torch

from data_prep.files import OutputError, reading, write_bytes

from .config import SRNNConfig
from .errors import SRNNError
from .models import build_model
from .sequence_model import SequenceModel

CHECKPOINT_FORMAT = "pyro-srnn-checkpoint-1"


def atomic_save(obj, path: Path):
    """The whole checkpoint or nothing: serialised in memory, then written by rename (a full disk keeps the
    previous checkpoint)."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    try:
        write_bytes(path, buffer.getvalue(), update=True)
    except OutputError as exc:
        raise SRNNError(f"{exc}; the previous checkpoint is kept") from None


def load_checkpoint(path) -> dict:
    """A checkpoint read with ``weights_only=True``: a pickle that asks for any other object (code) is refused
    before anything runs. Its configuration, frame grid and tensors are checked against each other here, so
    every command that reads it gets one line naming the file and the field, not a traceback."""
    path = Path(path)
    if not path.is_file():
        raise SRNNError(f"{path}: no such checkpoint")
    try:
        ckpt = torch.load(reading(path), map_location="cpu", weights_only=True)
    except Exception as exc:
        code = re.search(r"GLOBAL (\S+)", str(exc))
        if code:
            raise SRNNError(f"{path}: refused: loading it would call {code.group(1)} (a checkpoint holds only "
                            "tensors, numbers and strings)") from None
        raise SRNNError(f"{path}: unreadable checkpoint ({exc.__class__.__name__})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise SRNNError(f"{path}: not a pyro-srnn checkpoint")
    problem = checkpoint_problem(ckpt)
    if problem:
        raise SRNNError(f"{path}: damaged checkpoint: {problem}")
    return ckpt


def checkpoint_problem(ckpt: dict) -> str | None:
    """What is wrong with a checkpoint's content (None: nothing): its configuration, grid, tempo and every
    tensor's shape against a model of that configuration built on the meta device."""
    from data_prep.midi import grid_from_attrs, writable_tempo

    for key, kind in (("config", dict), ("model", dict), ("grid", dict)):
        if not isinstance(ckpt.get(key), kind):
            return f"its {key} is {'missing' if key not in ckpt else 'not a mapping'}"
    try:
        config = SRNNConfig.from_dict(ckpt["config"])
    except SRNNError as exc:
        return f"config: {exc}"
    try:
        grid_from_attrs(**ckpt["grid"])
    except (TypeError, ValueError) as exc:
        return f"grid: {exc}"
    tempo = ckpt.get("tempo_bpm")
    if tempo is not None and not writable_tempo(tempo):
        return f"tempo_bpm is {tempo!r}, not a tempo a MIDI file can state"
    with torch.device("meta"):  # the shapes the configuration asks for, without allocating them
        expected = {k: v.shape for k, v in build_model(config).state_dict().items()}
    tensors = ckpt["model"]
    if set(tensors) != set(expected):
        missing, extra = sorted(set(expected) - set(tensors)), sorted(set(tensors) - set(expected))
        return "model: " + "; ".join(part for part in (f"lacks {', '.join(missing[:3])}" if missing else "",
                                                        f"has unknown {', '.join(extra[:3])}" if extra else "") if part)
    for key, shape in expected.items():
        value = tensors[key]
        if not isinstance(value, torch.Tensor) or value.shape != shape:
            found = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
            return f"model: {key} is {found}, the configuration needs {tuple(shape)}"
    return None


def model_from_checkpoint(ckpt: dict, device="cpu") -> SequenceModel:
    """The model of a checkpoint that :func:`load_checkpoint` read (and checked); checkpoints written before
    the TSBN existed record no model, and are SRNNs."""
    model = build_model(SRNNConfig.from_dict(ckpt["config"]))
    model.load_state_dict(ckpt["model"])
    return model.to(device)
