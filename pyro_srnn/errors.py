class SRNNError(ValueError):
    """A problem with a run, a checkpoint, an option or training that the user can act on."""


class TrainingDiverged(SRNNError):
    """The loss became NaN or infinite; the run's checkpoints are left as they were."""


class RunBusy(SRNNError):
    """Another process is training in this run directory. `srnn train` exits with EXIT_CODE so that a script
    can tell this apart from a failure and try again later."""

    EXIT_CODE = 75  # EX_TEMPFAIL of sysexits.h: try again later
