import os
from pathlib import Path

import numpy as np
import pytest


@pytest.fixture
def source_dir() -> Path:
    """The real benchmark data; tests that need it skip where it is not supplied."""
    env = os.environ.get("SRNN_SOURCE_DIR")
    if not env or not Path(env).is_dir():
        pytest.skip("needs the real benchmark data: set SRNN_SOURCE_DIR to the shared data folder")
    return Path(env)


def random_roll(rng, frames=40, density=0.06):
    roll = (rng.random((frames, 88)) < density).astype(np.uint8)
    roll[-1, 40] = 1  # end on a sounding frame: trailing silence is not part of a piece
    return roll
