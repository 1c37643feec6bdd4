"""Floating-point settings the models need on CPUs."""
from __future__ import annotations

import contextlib

import torch


@contextlib.contextmanager
def denormals_flushed():
    """Treat denormal floats as zero while inside. Over padded steps the GRU state decays towards zero
    through denormal values, and x86 CPUs multiply those 10 to 100 times slower than normal floats: a
    padded evaluation batch ran its matrix products 12x slower. Flushing changes values below 1e-38 only."""
    was_flushing = _flushing()
    supported = torch.set_flush_denormal(True)  # False where the CPU has no such mode
    try:
        yield
    finally:
        if supported and not was_flushing:
            torch.set_flush_denormal(False)


def _flushing() -> bool:
    """Whether denormals are flushed now (PyTorch has no getter): 1e-39 is a denormal float32."""
    return bool((torch.full((1,), 1e-39) * 1.0).item() == 0.0)
