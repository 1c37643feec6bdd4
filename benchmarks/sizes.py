"""The two model sizes and the batch every speed figure is measured at (no torch here: the command line's
help reads them)."""

SIZES = {"paper": dict(d=300, a=300, z=100, hidden=500), "small": dict(d=30, a=30, z=10, hidden=500)}
BATCH, STEPS, KEYS_ON = 16, 100, 4  # the paper's 16 streams of 100-step chunks, about 4 keys on per frame


def describe(size: str) -> str:
    """A size as the help and the tables name it: 'd=a=300, z=100, MLPs 500 wide'."""
    c = SIZES[size]
    return f"d=a={c['d']}, z={c['z']}, MLPs {c['hidden']} wide"
