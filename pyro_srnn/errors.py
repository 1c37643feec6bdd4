import re


class SRNNError(ValueError):
    """A problem with a run, a checkpoint, an option or training that the user can act on."""


class TrainingDiverged(SRNNError):
    """The loss became NaN or infinite; the run's checkpoints are left as they were."""


class RunBusy(SRNNError):
    """Another process is training in this run directory. `srnn train` exits with EXIT_CODE so that a script
    can tell this apart from a failure and try again later."""

    EXIT_CODE = 75  # EX_TEMPFAIL of sysexits.h: try again later


def allocation_failure(exc: BaseException) -> str | None:
    """The one line for a failed allocation (Python's MemoryError, PyTorch's CPU allocator, CUDA out of
    memory), or None for any other error. Every command and sweep worker reports allocation failures here."""
    text = str(exc)
    if not (isinstance(exc, MemoryError) or "can't allocate memory" in text or "out of memory" in text.lower()
            or type(exc).__name__ == "OutOfMemoryError"):
        return None
    asked = re.search(r"allocate (\d+) bytes", text)
    size = f" ({int(asked.group(1)) / 2 ** 30:.1f} GiB in one piece)" if asked else ""
    where = "the GPU" if "cuda" in text.lower() else "this machine"
    return (f"out of memory: the request needs more than {where} has{size}; ask for less (a smaller model, "
            "fewer particles, streams, pieces or frames)")
