"""Ancestral sampling from a trained sequence model, one :meth:`SequenceModel.generate` step per frame: u_1 = 0
(or the primer's last frame), the model's state from its initial one (for the SRNN d_t from the GRU, z_t from
the prior given z_{t-1} and d_t), x_t from the emission, u_{t+1} = x_t; and the controls that depart from it
on purpose."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .batching import padded, to_batch
from .config import MAX_MUSIC_PIECES, MAX_SAMPLE_FRAMES, SAMPLING_BURN_IN, SAMPLING_LIMITS
from .errors import SRNNError
from .sequence_model import SequenceModel
from .numerics import denormals_flushed


@dataclass(frozen=True)
class Controls:
    """Departures from ancestral sampling from the zero state. The defaults are none, except a burn-in
    (see SAMPLING_BURN_IN); Controls(burn_in=0) samples the model exactly as it is defined."""

    temperature: float = 1.0  # the emission's logits are divided by it
    z_scale: float = 1.0  # the prior's standard deviation is multiplied by it
    burn_in: int = SAMPLING_BURN_IN  # frames generated from the zero state and dropped before the piece starts

    def __post_init__(self):
        problems = [f"--{key.replace('_', '-')} {getattr(self, key)} is not in {low:g}..{high:g}"
                    for key, (low, high) in SAMPLING_LIMITS.items() if not low <= getattr(self, key) <= high]
        if not float(self.burn_in).is_integer():
            problems.append(f"--burn-in {self.burn_in} is not a whole number of frames")
        if problems:
            raise SRNNError("sampling controls: " + "; ".join(problems))


def check_controls(model: SequenceModel, controls: Controls):
    """A control the model has no part for (the TSBN's --z-scale: it has no Gaussian prior) is refused."""
    unused = [key for key in SAMPLING_LIMITS if key not in model.sampling_controls
              and getattr(controls, key) != getattr(Controls(), key)]
    if unused:
        takes = ", ".join("--" + key.replace("_", "-") for key in model.sampling_controls)
        raise SRNNError(f"--{unused[0].replace('_', '-')} does not apply to the {model.config.model_name} (it takes "
                        f"{takes})")


def check_steps(steps: int):
    """A sampled piece is at most MAX_SAMPLE_FRAMES frames, as long as the longest piece the reader takes."""
    if not 1 <= steps <= MAX_SAMPLE_FRAMES:
        raise SRNNError(f"steps must be 1..{MAX_SAMPLE_FRAMES} frames, not {steps}")


def sample_rolls(model: SequenceModel, steps: int, n: int = 1, prime: np.ndarray | None = None, seed: int = 0,
                 controls: Controls = Controls()) -> np.ndarray:
    """``n`` piano rolls (n, len(prime) + steps, 88) as uint8. With a primer, its frames come first: they are
    run through the model's guide (for the SRNN d from the GRU, z from the guide) and sampling continues from
    the state it ends in."""
    return np.concatenate(list(sample_batches(model, steps, n, prime, seed, controls=controls)))


def sample_statistics(model: SequenceModel, sequences, n: int = 32, steps: int = 400, seed: int = 0,
                      controls: Controls = Controls(), on_frames=None) -> list:
    """``n`` samples of ``steps`` frames against ``sequences`` on what a listener hears: the rows of
    :func:`data_prep.stats.compare` (statistic, data, samples, 'ratio' or 'OA', value). The samples are
    tallied batch by batch and not kept, so memory does not grow with ``n``."""
    from data_prep.stats import Tally, compare, roll_statistics

    if not 1 <= n <= MAX_MUSIC_PIECES:
        raise SRNNError(f"--music takes 1..{MAX_MUSIC_PIECES} pieces, not {n}")
    tally = Tally()
    for rolls in sample_batches(model, steps, n, seed=seed, controls=controls, on_frames=on_frames):
        for roll in rolls:
            tally.add(roll)
    return compare(roll_statistics(sequences), tally.statistics())


FLUSH_STEPS = 100
BATCH = 64  # pieces sampled at once ...
BATCH_FRAMES = 64 * 4_000  # ... and frames held at once (fewer pieces at a time when they are long)


def sample_batches(model: SequenceModel, steps: int, n: int = 1, prime: np.ndarray | None = None, seed: int = 0,
                   batch: int = BATCH, controls: Controls = Controls(), on_frames=None):
    """:func:`sample_rolls` in batches of at most ``batch`` pieces and BATCH_FRAMES frames, one random
    stream seeded once, so memory stays bounded however many and however long the pieces. ``on_frames(k)``
    is told of every k frames generated, summed over the pieces of a batch (burn-in included), for a
    progress bar."""
    check_steps(steps)
    check_controls(model, controls)
    torch.manual_seed(seed)
    batch = max(1, min(batch, BATCH_FRAMES // (steps + (len(prime) if prime is not None else 0))))
    for start in range(0, n, batch):
        yield _sample(model, steps, min(batch, n - start), prime, controls, on_frames)


@torch.no_grad()
@denormals_flushed()
def _sample(model: SequenceModel, steps: int, n: int, prime: np.ndarray | None, controls: Controls,
            on_frames=None) -> np.ndarray:
    model.eval()
    c = model.config
    device = next(model.parameters()).device
    state = model.initial_state(n, device)
    u = torch.zeros(n, c.x_dim, device=device)
    primed = 0 if prime is None else len(prime)
    rolls = np.zeros((n, primed + steps, c.x_dim), np.uint8)  # a byte per key, not a float
    report = (lambda k: on_frames(k * n)) if on_frames else (lambda k: None)
    if primed:
        x, u_prime, mask = padded([prime] * n)
        state = model.guide(to_batch(x, u_prime, mask, state, device=device))
        u = torch.as_tensor(x[:, -1], device=device)
        rolls[:, :primed] = x
    else:
        for i in range(controls.burn_in):
            state, u = model.generate(u, state, controls.temperature, controls.z_scale)
            if i % FLUSH_STEPS == FLUSH_STEPS - 1 or i == controls.burn_in - 1:
                report(i % FLUSH_STEPS + 1)
    pending = []  # frames on the device, copied out every FLUSH_STEPS steps (no host sync per step)
    for t in range(steps):
        state, u = model.generate(u, state, controls.temperature, controls.z_scale)
        pending.append(u.to(torch.uint8))
        if len(pending) == FLUSH_STEPS or t == steps - 1:
            if not all(torch.isfinite(s).all() for s in state):
                raise SRNNError("sampling produced non-finite latent states; use a smaller --z-scale")
            rolls[:, primed + t + 1 - len(pending):primed + t + 1] = torch.stack(pending, 1).cpu().numpy()
            report(len(pending))
            pending = []
    return rolls
