"""The Python face: load_run gives the SRNN, its configuration and data, and its model and guide work with
Pyro's own inference tools (docs/USAGE.md, "From Python")."""
import pyro
import pytest
import torch
from pyro.infer import Importance, Predictive

from tests.conftest import tiny_config


@pytest.fixture
def run_path(tiny_run):
    return tiny_run


def test_the_readme_example(run_path):
    import pyro_srnn
    from pyro_srnn import load_run

    run = load_run(run_path)
    assert run.config == tiny_config(epochs=1) and run.checkpoint.name == "best.pt"
    batch = run.batch("test", n=4)
    assert batch.size == 4 and batch.x.shape[-1] == 88
    with torch.no_grad():
        posterior = Predictive(run.model.model, guide=run.model.guide, num_samples=16)(batch)
    assert posterior["z_1"].shape == (16, 4, run.config.z)
    assert not torch.allclose(posterior["z_1"][0], posterior["z_1"][1])  # draws from q, not one value
    scores = run.score("test")
    assert scores.per_frame()["per_sequence"] < 0
    assert run.sample(steps=12, n=2).shape == (2, 12, 88)
    assert pyro_srnn.SRNNConfig is type(run.config)


def test_pyro_importance_weights_are_our_log_weights(run_path):
    from pyro_srnn import load_run
    from pyro_srnn.evaluate import log_weight

    run = load_run(run_path)
    batch = run.batch("valid", n=3)
    with torch.no_grad():
        pyro.set_rng_seed(11)
        importance = Importance(run.model.model, run.model.guide, num_samples=1).run(batch)
        pyro.set_rng_seed(11)
        ours = log_weight(run.model, batch)
    # one draw: Pyro's log weight of the batch is log p(x, z) - log q(z | x) summed over the sequences
    assert float(importance.log_weights[0]) == pytest.approx(float(ours.sum()), rel=1e-5)


def test_load_run_refuses_data_that_is_not_the_runs(run_path, tmp_path):
    from pyro_srnn import load_run
    from pyro_srnn.errors import SRNNError
    from tests.test_faults import toy_file

    seconds = toy_file(tmp_path / "seconds.h5", unit="seconds", step=0.3)
    with pytest.raises(SRNNError, match="frame_unit"):
        load_run(run_path, data=seconds)
