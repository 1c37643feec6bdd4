"""The stacked ELBOs are Pyro's estimators: the same loss and gradients for the same noise, with padding
masks and KL annealing; other models take Pyro's own code."""
import pyro
import pyro.distributions as dist
import pytest
import torch

from pyro_srnn.elbo import PYRO_ELBOS, STACKED_ELBOS
from pyro_srnn.model import SRNN
from tests.conftest import tiny_config
from tests.test_model import randomised, tiny_batch


def _loss_and_grads(elbo, srnn, batch, temperature):
    pyro.set_rng_seed(7)
    with pyro.validation_enabled(False):
        loss = elbo.differentiable_loss(srnn.model, srnn.guide, batch, temperature)
    return loss, torch.autograd.grad(loss, list(srnn.parameters()))


@pytest.mark.parametrize("kind", ["trace", "analytic"])
def test_stacked_elbo_equals_pyro_elbo(kind):
    torch.manual_seed(0)
    srnn = randomised(SRNN(tiny_config())).double()
    b = tiny_batch((8, 3, 6))  # padded: the masks matter
    batch = type(b)(b.x.double(), b.u.double(), b.mask, b.d0.double(), b.z0.double())
    stacked, stacked_grads = _loss_and_grads(STACKED_ELBOS[kind](), srnn, batch, 0.4)
    reference, grads = _loss_and_grads(PYRO_ELBOS[kind](), srnn, batch, 0.4)
    assert stacked.item() == pytest.approx(reference.item(), rel=1e-12)
    for g, h in zip(stacked_grads, grads):
        torch.testing.assert_close(g, h, rtol=1e-10, atol=1e-12)
    # and the annealing temperature reaches the z terms only
    hotter, _ = _loss_and_grads(STACKED_ELBOS[kind](), srnn, batch, 1.0)
    assert hotter.item() != pytest.approx(stacked.item(), rel=1e-6)


@pytest.mark.parametrize("kind", ["trace", "analytic"])
def test_other_models_take_pyros_per_site_code(kind):
    data = torch.tensor([0.3, 1.2, 2.0])

    def model():
        rate = pyro.sample("rate", dist.Gamma(2.0, 1.0))  # not a Normal chain
        with pyro.plate("data", 3):
            pyro.sample("obs", dist.Exponential(rate), obs=data)

    def guide():
        concentration = pyro.param("c", torch.tensor(3.0), constraint=dist.constraints.positive)
        pyro.sample("rate", dist.Gamma(concentration, 2.0))

    losses = []
    for elbo in (STACKED_ELBOS[kind](), PYRO_ELBOS[kind]()):
        pyro.clear_param_store()
        pyro.set_rng_seed(3)
        with pyro.validation_enabled(False):
            losses.append(elbo.differentiable_loss(model, guide).item())
    assert losses[0] == pytest.approx(losses[1], rel=1e-12)
