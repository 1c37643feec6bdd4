"""Floating-point settings the models need on CPUs."""
from __future__ import annotations

import contextlib
import ctypes
import functools

import torch


@contextlib.contextmanager
def denormals_flushed():
    """Treat denormal floats as zero while inside, on this thread and on every thread of PyTorch's intra-op
    pool. Over padded steps the GRU state decays towards zero through denormal values, and x86 CPUs multiply
    those 10 to 100 times slower than normal floats: a padded evaluation batch ran its matrix products 12x
    slower. Flushing changes values below 1e-38 only.

    ``torch.set_flush_denormal`` sets the mode of the calling thread alone, and a pool thread keeps the mode it
    was started with: set after the pool's first parallel operation, half of a 2-thread elementwise product
    of denormals still computed them (tests/test_evaluate.py). So the mode is also set inside one OpenMP
    parallel region, once on each of the pool's threads."""
    was_flushing = _flushing()
    supported = _set_on_every_thread(True)  # False where the CPU has no such mode
    try:
        yield
    finally:
        if supported and not was_flushing:
            _set_on_every_thread(False)


def _flushing() -> bool:
    """Whether denormals are flushed now on this thread (PyTorch has no getter): 1e-39 is a denormal float32."""
    return bool((torch.full((1,), 1e-39) * 1.0).item() == 0.0)


def _set_on_every_thread(flush: bool) -> bool:
    supported = torch.set_flush_denormal(flush)
    run_on_pool_threads(lambda: torch.set_flush_denormal(flush))
    return supported


_CALLBACK = ctypes.CFUNCTYPE(None, ctypes.c_void_p)


def run_on_pool_threads(fn) -> bool:
    """Call ``fn()`` once on each thread of the OpenMP pool PyTorch runs its intra-op work on (GOMP_parallel of
    the libgomp, or LLVM's libomp, that this process has loaded); False where there is none to find."""
    library = _openmp_library()
    if library is None or torch.get_num_threads() < 2:
        return False
    callback = _CALLBACK(lambda _: fn())
    library.GOMP_parallel(callback, None, torch.get_num_threads(), 0)  # ctypes releases the GIL meanwhile
    return True


@functools.cache
def _openmp_library():
    """The OpenMP runtime loaded in this process (Linux: from /proc/self/maps), or None."""
    try:
        with open("/proc/self/maps") as maps:
            paths = {line.split()[-1] for line in maps if "libgomp" in line or "libomp" in line}
    except OSError:
        return None
    for path in sorted(paths):
        try:
            library = ctypes.CDLL(path)
            library.GOMP_parallel.argtypes = [_CALLBACK, ctypes.c_void_p, ctypes.c_uint, ctypes.c_uint]
            library.GOMP_parallel.restype = None
            return library
        except (OSError, AttributeError):
            continue
    return None
