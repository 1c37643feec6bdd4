"""Ancestral sampling from a trained SRNN: u_1 = 0 (or the primer's last frame), d_t from the GRU, z_t from
the prior given z_{t-1} and d_t, x_t from the Bernoulli emission, u_{t+1} = x_t; and the controls that depart
from it on purpose."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from .batching import padded, to_batch
from .config import SAMPLING_BURN_IN
from .errors import SRNNError
from .model import SRNN
from .numerics import denormals_flushed


@dataclass(frozen=True)
class Controls:
    """Departures from ancestral sampling from the zero state. The defaults are none, except a burn-in
    (see SAMPLING_BURN_IN); Controls(burn_in=0) samples the model exactly as it is defined."""

    temperature: float = 1.0  # the emission's logits are divided by it
    z_scale: float = 1.0  # the prior's standard deviation is multiplied by it
    burn_in: int = SAMPLING_BURN_IN  # frames generated from the zero state and dropped before the piece starts

    def __post_init__(self):
        if not (0 < self.temperature < math.inf and 0 <= self.z_scale < math.inf and self.burn_in >= 0):
            raise SRNNError(f"sampling controls: the temperature must be a positive number, the z scale 0 or more "
                            f"and the burn-in 0 or more frames (got {self.temperature}, {self.z_scale}, "
                            f"{self.burn_in})")


def sample_rolls(srnn: SRNN, steps: int, n: int = 1, prime: np.ndarray | None = None, seed: int = 0,
                 controls: Controls = Controls()) -> np.ndarray:
    """``n`` piano rolls (n, len(prime) + steps, 88) as uint8. With a primer, its frames come first: they are
    run through the model (d from the GRU, z from the guide) and sampling continues from the last state."""
    return np.concatenate(list(sample_batches(srnn, steps, n, prime, seed, controls=controls)))


def sample_statistics(srnn: SRNN, sequences, n: int = 32, steps: int = 400, seed: int = 0,
                      controls: Controls = Controls()) -> list:
    """``n`` samples of ``steps`` frames against ``sequences`` on what a listener hears: the rows of
    :func:`data_prep.stats.compare` (statistic, data, samples, 'ratio' or 'OA', value)."""
    from data_prep.stats import compare, roll_statistics

    samples = sample_rolls(srnn, steps, n, seed=seed, controls=controls)
    return compare(roll_statistics(sequences), roll_statistics(samples))


BATCH = 64  # pieces sampled at once: memory stays bounded however many pieces are asked for


def sample_batches(srnn: SRNN, steps: int, n: int = 1, prime: np.ndarray | None = None, seed: int = 0,
                   batch: int = BATCH, controls: Controls = Controls()):
    """:func:`sample_rolls` in batches of at most ``batch`` pieces, one random stream seeded once."""
    torch.manual_seed(seed)
    for start in range(0, n, batch):
        yield _sample(srnn, steps, min(batch, n - start), prime, controls)


@torch.no_grad()
@denormals_flushed()
def _sample(srnn: SRNN, steps: int, n: int, prime: np.ndarray | None, controls: Controls) -> np.ndarray:
    srnn.eval()
    c = srnn.config
    device = next(srnn.parameters()).device
    d = torch.zeros(n, c.d, device=device)
    z = torch.zeros(n, c.z, device=device)
    u = torch.zeros(n, c.x_dim, device=device)
    frames = []
    if prime is not None and len(prime):
        x, u_prime, mask = padded([prime] * n)
        d, z = srnn.guide(to_batch(x, u_prime, mask, d_dim=c.d, z_dim=c.z, device=device))
        u = torch.as_tensor(x[:, -1], device=device)
        frames.append(torch.as_tensor(x, device=device))
    else:
        for _ in range(controls.burn_in):
            d, z, u = srnn.generate(u, d, z, controls.temperature, controls.z_scale)
    for _ in range(steps):
        d, z, u = srnn.generate(u, d, z, controls.temperature, controls.z_scale)
        frames.append(u.unsqueeze(1))
    return torch.cat(frames, dim=1).to(torch.uint8).cpu().numpy()
