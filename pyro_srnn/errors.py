class SRNNError(ValueError):
    """A problem with a run, a checkpoint, an option or training that the user can act on."""


class TrainingDiverged(SRNNError):
    """The loss became NaN or infinite; the run's checkpoints are left as they were."""
