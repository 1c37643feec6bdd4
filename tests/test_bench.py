"""The speed work must not change the model: the shipped step and the naive baseline agree."""
import pyro
import pytest
import torch

from benchmarks.naive_srnn import NaiveSRNN
from benchmarks.speed import hand_coded_loss, step_flops, synthetic_batch
from pyro_srnn.config import SRNNConfig
from pyro_srnn.elbo import PYRO_ELBOS
from pyro_srnn.evaluate import make_elbo
from pyro_srnn.model import SRNN
from tests.test_model import randomised, tiny_batch
from tests.conftest import tiny_config


@pytest.mark.parametrize("kind", ["trace", "analytic"])
def test_fast_and_naive_elbo_agree_for_same_parameters_and_noise(kind):
    torch.manual_seed(0)
    srnn = randomised(SRNN(tiny_config())).double()  # float64: the two orders of summation agree to 1e-10
    naive = NaiveSRNN(srnn)
    b = tiny_batch((8, 5, 8))
    batch = type(b)(b.x.double(), b.u.double(), b.mask, tuple(s.double() for s in b.state))
    pyro.set_rng_seed(4)
    with pyro.validation_enabled(False):  # as in training: the stacked z terms
        fast = make_elbo(kind).differentiable_loss(srnn.model, srnn.guide, batch, 0.7)
    pyro.set_rng_seed(4)
    with pyro.validation_enabled(True):  # Pyro's own classes, site by site
        slow = PYRO_ELBOS[kind]().differentiable_loss(naive.model, naive.guide, batch, 0.7)
    assert fast.item() == pytest.approx(slow.item(), rel=1e-10)
    grads = torch.autograd.grad(fast, list(srnn.parameters()))
    slow_grads = torch.autograd.grad(slow, list(srnn.parameters()))
    for g, h in zip(grads, slow_grads):
        torch.testing.assert_close(g, h, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("fused", [True, False])
def test_hand_coded_loss_matches_pyro_analytic_elbo(fused):
    torch.manual_seed(0)
    srnn = randomised(SRNN(tiny_config()))
    batch = tiny_batch((6, 6))
    pyro.set_rng_seed(2)
    pyro_loss = make_elbo("analytic").differentiable_loss(srnn.model, srnn.guide, batch) / batch.frames
    srnn.fused = fused
    pyro.set_rng_seed(2)
    assert hand_coded_loss(srnn, batch).item() == pytest.approx(pyro_loss.item(), rel=1e-5)


def test_flop_count_at_paper_size():
    # about 31 GFLOP for one 16 x 100 paper-size step (34 with the embedding computed twice)
    assert step_flops(SRNNConfig(), 1600) / 1e9 == pytest.approx(31.2, rel=0.02)
    assert synthetic_batch(SRNNConfig(d=4, a=4, z=2, hidden=8)).x.mean() == pytest.approx(4 / 88, rel=0.2)
