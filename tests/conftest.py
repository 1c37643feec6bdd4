import os
from pathlib import Path

import numpy as np
import pytest


def pytest_configure(config):
    # tests chdir into temporary folders, where a relative SRNN_SOURCE_DIR (../shared/data) would name nothing
    if os.environ.get("SRNN_SOURCE_DIR"):
        os.environ["SRNN_SOURCE_DIR"] = str(Path(os.environ["SRNN_SOURCE_DIR"]).resolve())


def mean_draw(self, sample_shape=()):
    """Normal.rsample at the mean, for tests that compare runs which draw their noise differently."""
    import torch

    return self.loc.expand(torch.Size(sample_shape) + self.loc.shape)


def no_noise(steps, size, z_dim, like):
    """pyro_srnn.model.step_noise without noise: the fused chain's draws at their means."""
    return like.new_zeros(steps, size, z_dim)


def draw_means():
    """Every z_t at its distribution's mean, in the fused chain and step by step."""
    import pyro.distributions as dist

    import pyro_srnn.model

    dist.Normal.rsample = mean_draw
    pyro_srnn.model.step_noise = no_noise


@pytest.fixture
def posterior_mean_z(monkeypatch):
    """:func:`draw_means` for one test: its scores and steps become functions of the data alone."""
    import pyro.distributions as dist

    import pyro_srnn.model

    monkeypatch.setattr(dist.Normal, "rsample", mean_draw)
    monkeypatch.setattr(pyro_srnn.model, "step_noise", no_noise)


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


@pytest.fixture(scope="session")
def bach_file(tmp_path_factory) -> Path:
    """A small real dataset that needs no network: six chorales per split from music21's corpus."""
    from data_prep.prep import prepare_bach

    path = tmp_path_factory.mktemp("bach") / "bach.h5"
    prepare_bach(limit=6).write(path, command="tests")
    return path


@pytest.fixture(scope="session")
def tiny_run(bach_file, tmp_path_factory) -> Path:
    """The run directory of a tiny SRNN trained for one epoch on the Bach file."""
    return _trained_run(tiny_config(epochs=1), bach_file, tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="session")
def tiny_tsbn_run(bach_file, tmp_path_factory) -> Path:
    """The run directory of a tiny TSBN trained for one epoch on the Bach file."""
    return _trained_run(tiny_tsbn_config(epochs=1), bach_file, tmp_path_factory.mktemp("tsbn"))


def _trained_run(config, data_file: Path, folder: Path) -> Path:
    from data_prep.h5 import PianoRollFile
    from pyro_srnn.train import Trainer

    trainer = Trainer(config, PianoRollFile(data_file), folder / "run")
    trainer.start()
    trainer.fit()
    return trainer.run.path


def tiny_config(**overrides):
    from pyro_srnn.config import SRNNConfig

    values = dict(d=6, a=5, z=3, hidden=8, seq_len=20, batch_size=4, epochs=3, valid_every=1, seed=0)
    values.update(overrides)
    return SRNNConfig(**values)


def tiny_tsbn_config(**overrides):
    """A tiny TSBN with the training recipe of :func:`tiny_config`."""
    from pyro_srnn.config import SRNNConfig

    values = dict(model="tsbn", z=4, baseline_hidden=6, seq_len=20, batch_size=4, epochs=3, valid_every=1, seed=0)
    values.update(overrides)
    return SRNNConfig(**values)
