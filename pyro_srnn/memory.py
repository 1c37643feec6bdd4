"""What a training run needs in memory, checked before it starts: a typo (--d 16000, --elbo iwae:5000) gets one
line saying how much it would need, instead of an allocation failure after the run directory was made.

The estimate counts the parameters four times (weights, gradients, Adam's two moments) and the activations
one update keeps for its backward pass: every stream, frame and particle of a chunk holds the layers'
outputs of the model's networks (``SequenceModel.activation_floats_per_frame``). It errs on the generous
side; what it cannot know (fragmentation, other processes) is left to the allocation-failure handler (pyro_srnn.errors.allocation_failure).
"""
from __future__ import annotations

import os

import torch

from .config import SRNNConfig
from .errors import SRNNError

BYTES = 4  # float32
WORKER_BYTES = 400 * 2 ** 20  # a sweep worker before its model: Python, torch, Pyro and Optuna loaded


def parameter_count(config: SRNNConfig) -> int:
    from .models import build_model

    with torch.device("meta"):  # shapes only, nothing allocated
        return sum(p.numel() for p in build_model(config).parameters())


def training_bytes(config: SRNNConfig) -> int:
    from .models import model_class

    per_frame = model_class(config).activation_floats_per_frame(config)
    frames = config.batch_size * config.seq_len * max(1, config.iwae_particles)
    return BYTES * (4 * parameter_count(config) + per_frame * frames)


def available_bytes() -> int | None:
    """Memory the kernel could give this process now (MemAvailable), or None where that is not known."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def gib(n: float) -> str:
    return f"{n / 2 ** 30:.1f} GiB"


def check_fits(configs, what: str = "this run", processes: int = 1, device="cpu"):
    """Refuse ``configs`` (trained by ``processes`` processes side by side, each the largest of them) when they
    need more than this machine has available. On a GPU the device's own memory is the allocator's to report."""
    if torch.device(device).type != "cpu":
        return
    available = available_bytes()
    if available is None:
        return
    largest = max(training_bytes(c) for c in configs)
    needed = processes * (largest + (WORKER_BYTES if processes > 1 else 0))
    if needed > available:
        raise SRNNError(f"{what} needs about {gib(needed)} of memory"
                        + (f" ({processes} workers of {gib(largest + WORKER_BYTES)})" if processes > 1 else "")
                        + f", and this machine has {gib(available)} available; ask for less (a smaller model, "
                        "fewer particles or streams" + (", fewer --jobs" if processes > 1 else "") + ")")
