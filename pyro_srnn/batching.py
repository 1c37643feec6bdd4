"""From piano rolls to batches: TBPTT streams for training (docs/MODEL.md, R1), length-sorted padded batches
of full sequences for evaluation."""
from __future__ import annotations

import numpy as np
import torch

from .sequence_model import Batch


def make_streams(sequences, n_streams: int) -> np.ndarray:
    """Concatenate the sequences and cut the result into ``n_streams`` contiguous streams of equal length,
    (n_streams, L, keys). The last fewer-than-n_streams frames are dropped."""
    flat = np.concatenate(sequences)
    length = len(flat) // n_streams
    if length == 0:
        raise ValueError(f"{len(flat)} frames cannot fill {n_streams} streams")
    return flat[: length * n_streams].reshape(n_streams, length, flat.shape[1])


def shifted_inputs(x: np.ndarray) -> np.ndarray:
    """u_t = x_{t-1} along axis 1, u_1 = 0."""
    u = np.zeros_like(x)
    u[:, 1:] = x[:, :-1]
    return u


def transpose_keys(rolls: np.ndarray, shifts) -> np.ndarray:
    """Shift each row of (rows, T, keys) by its number of semitones; keys leaving the range are dropped."""
    out = np.zeros_like(rolls)
    keys = rolls.shape[-1]
    for i, s in enumerate(np.broadcast_to(shifts, (len(rolls),))):
        s = int(s)
        if s >= 0:
            out[i, :, s:] = rolls[i, :, : keys - s]
        else:
            out[i, :, : keys + s] = rolls[i, :, -s:]
    return out


def tbptt_chunks(streams: np.ndarray, seq_len: int):
    """Chunks (x, u, mask) of ``seq_len`` steps: chunk i holds steps [i * seq_len, (i + 1) * seq_len) of every
    stream, so in the flat order of the reference npz, chunk i * n_streams + s continues chunk (i - 1) * n_streams + s.
    The last chunk is padded and masked when the stream length is not a multiple of seq_len."""
    u_all = shifted_inputs(streams)
    n_streams, length, keys = streams.shape
    for start in range(0, length, seq_len):
        x = np.zeros((n_streams, seq_len, keys), dtype=np.float32)
        u = np.zeros_like(x)
        mask = np.zeros((n_streams, seq_len), dtype=bool)
        stop = min(start + seq_len, length)
        x[:, : stop - start] = streams[:, start:stop]
        u[:, : stop - start] = u_all[:, start:stop]
        mask[:, : stop - start] = True
        yield x, u, mask


def n_chunks(stream_length: int, seq_len: int) -> int:
    return -(-stream_length // seq_len)


def padded(sequences, keys: int | None = None, first_inputs=None):
    """Full sequences as (x, u, mask) arrays padded to the longest, of ``keys`` keys (the sequences' own
    number when not given). u_1 = 0, or ``first_inputs[i]`` for sequence i (see
    :func:`pyro_srnn.evaluate.first_inputs`)."""
    steps = max(len(s) for s in sequences)
    keys = keys or np.shape(sequences[0])[-1]
    x = np.zeros((len(sequences), steps, keys), dtype=np.float32)
    mask = np.zeros((len(sequences), steps), dtype=bool)
    for i, s in enumerate(sequences):
        x[i, : len(s)] = s
        mask[i, : len(s)] = True
    u = shifted_inputs(x)
    if first_inputs is not None:
        u[:, 0] = np.asarray(first_inputs, dtype=np.float32).reshape(len(sequences), keys)
    return x, u, mask


def length_batches(lengths, max_frames: int):
    """Indices of sequences grouped by similar length, each group's padded size (count x longest) at most
    ``max_frames`` (a longer single sequence forms its own group)."""
    order = np.argsort(lengths, kind="stable")
    groups, current = [], []
    for i in order:
        if current and (len(current) + 1) * lengths[i] > max_frames:
            groups.append(current)
            current = []
        current.append(int(i))
    if current:
        groups.append(current)
    return groups


def sequence_batches(sequences, model, max_frames: int = 32_000, device="cpu", first_inputs=None):
    """Full sequences as (indices, :class:`Batch`) pairs, grouped by :func:`length_batches`, each starting from
    the ``model``'s initial state and u_1 = 0 (or ``first_inputs[i]``): how every full-sequence score walks a split."""
    lengths = np.array([len(s) for s in sequences])
    starts = None if first_inputs is None else np.asarray(first_inputs)
    for group in length_batches(lengths, max_frames):
        x, u, mask = padded([sequences[i] for i in group], first_inputs=None if starts is None else starts[group])
        yield group, to_batch(x, u, mask, model.initial_state(len(group)), device=device)


def to_batch(x, u, mask, state: tuple, device="cpu") -> Batch:
    """numpy arrays and the model's initial ``state`` (a tuple of tensors) to a :class:`Batch` on ``device``."""
    return Batch(torch.as_tensor(x, dtype=torch.float32), torch.as_tensor(u, dtype=torch.float32),
                 torch.as_tensor(mask), tuple(state)).to(device)
