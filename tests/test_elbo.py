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
    batch = type(b)(b.x.double(), b.u.double(), b.mask, tuple(s.double() for s in b.state))
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


def test_iwae_training_loss_is_the_log_mean_importance_weight_of_each_sequences_particles():
    import math

    from pyro_srnn.evaluate import batch_scores, log_weight, make_elbo

    torch.manual_seed(4)
    srnn = randomised(SRNN(tiny_config()), 4).double()
    b = tiny_batch((8, 3, 6), 4)
    batch = type(b)(b.x.double(), b.u.double(), b.mask, tuple(s.double() for s in b.state))
    k = 5
    elbo = make_elbo(f"iwae:{k}")
    for temperature in (1.0, 0.3):
        pyro.set_rng_seed(11)
        with pyro.validation_enabled(False):
            loss = srnn(batch, elbo, temperature)  # per frame of the three sequences
        # by hand, from the same draws: K copies of each sequence in a row, log w = log p(x, z) - log q(z | x),
        # with the temperature on the z terms
        pyro.set_rng_seed(11)
        copies = batch.repeated(k)
        with torch.no_grad():
            terms = batch_scores(srnn, copies, "trace")
        log_w = (terms.reconstruction - temperature * terms.kl).view(3, k)
        bound = torch.logsumexp(log_w, 1) - math.log(k)
        assert loss.item() == pytest.approx(-bound.sum().item() / float(batch.frames), rel=1e-10)
        if temperature == 1.0:  # at T = 1 these are the evaluation's importance weights
            pyro.set_rng_seed(11)
            with torch.no_grad():
                torch.testing.assert_close(log_weight(srnn, copies).view(3, k), log_w)
        # training reports the particles' mean ELBO, which the bound is above (Jensen)
        mean_elbo = (terms.reconstruction - terms.kl).view(3, k).mean(1)
        torch.testing.assert_close(elbo.last_terms.reconstruction - elbo.last_terms.kl, mean_elbo)
        assert (bound >= (terms.reconstruction - temperature * terms.kl).view(3, k).mean(1)).all()


def test_iwae_training_carries_each_streams_state_from_a_particle_drawn_by_its_weight():
    from pyro_srnn.elbo import StackedIWAE

    elbo = StackedIWAE(3)
    # stream 0: particle 2 holds all the weight; stream 1: particle 0
    elbo.last_log_weights = torch.tensor([[-1e9, -1e9, 0.0], [0.0, -1e9, -1e9]])
    d = torch.arange(6.0).unsqueeze(1)  # row = stream * 3 + particle
    z = -torch.arange(6.0).unsqueeze(1)
    d_next, z_next = elbo.carried((d, z))
    assert d_next.flatten().tolist() == [2.0, 3.0] and z_next.flatten().tolist() == [-2.0, -3.0]
    # equal weights: every particle is drawn, about equally often
    elbo.last_log_weights = torch.zeros(1, 3)
    torch.manual_seed(0)
    picks = torch.tensor([int(elbo.carried((d[:3],))[0]) for _ in range(3000)])
    assert all(abs((picks == p).float().mean().item() - 1 / 3) < 0.04 for p in range(3))


def _per_unit_kl_by_hand(srnn, batch, seed):
    """Each latent unit's analytic KL summed over the unmasked frames, and the frames, from a trace drawn with
    ``seed``: site by site from Pyro's own distributions, no stacking."""
    from torch.distributions import kl_divergence

    from pyro_srnn.evaluate import traces

    pyro.set_rng_seed(seed)
    model_trace, guide_trace = traces(srnn, batch)
    kl_units, frames = 0.0, 0.0
    for name, q in guide_trace.nodes.items():
        if q["type"] != "sample" or q["is_observed"] or not name.startswith("z_"):
            continue
        p = model_trace.nodes[name]
        mask = torch.ones(batch.size) if q["mask"] is None else q["mask"].to(torch.float64)
        kl = kl_divergence(q["fn"].base_dist, p["fn"].base_dist)  # (B, z)
        kl_units = kl_units + (mask.unsqueeze(-1) * kl).sum(0)
        frames = frames + mask.sum()
    return kl_units, frames


def test_free_bits_charge_each_latent_units_kl_only_above_its_threshold():
    from pyro_srnn.evaluate import make_elbo

    torch.manual_seed(5)
    srnn = randomised(SRNN(tiny_config()), 5).double()
    b = tiny_batch((8, 3, 6), 5)  # padded: the threshold counts unmasked frames only
    batch = type(b)(b.x.double(), b.u.double(), b.mask, tuple(s.double() for s in b.state))
    temperature = 0.5
    with torch.no_grad():
        kl_units, frames = _per_unit_kl_by_hand(srnn, batch, 13)
    per_frame = kl_units / frames
    assert float(frames) == float(batch.mask.sum())
    free_bits = float(per_frame.median())  # some units under the threshold and some above
    assert (per_frame < free_bits).any() and (per_frame > free_bits).any()
    losses = {}
    for bits in (0.0, free_bits):
        pyro.set_rng_seed(13)
        with pyro.validation_enabled(False):
            losses[bits] = make_elbo("analytic", bits).differentiable_loss(srnn.model, srnn.guide, batch,
                                                                           temperature)
    # the same draws: the objectives differ by the KL that the threshold adds to the units under it
    extra = temperature * torch.clamp(free_bits * frames - kl_units, min=0).sum()
    assert (losses[free_bits] - losses[0.0]).item() == pytest.approx(extra.item(), rel=1e-10)
    # a unit under its threshold gets no gradient from its KL: with every unit under a high threshold, the
    # prior's variance (which only the KL reads; the posterior mean reads the prior's mean) gets none
    pyro.set_rng_seed(13)
    with pyro.validation_enabled(False):
        loss = make_elbo("analytic", 1e3).differentiable_loss(srnn.model, srnn.guide, batch, temperature)
    prior_variance = [srnn.prior.logvar_out.weight, srnn.prior.logvar_out.bias]
    assert all(torch.count_nonzero(g) == 0 for g in torch.autograd.grad(loss, prior_variance))
    assert all(torch.count_nonzero(g) > 0 for g in torch.autograd.grad(losses[0.0], prior_variance))
    assert loss.item() == pytest.approx((losses[0.0] + temperature * (1e3 * frames * kl_units.numel()
                                                                     - kl_units.sum())).item(), rel=1e-10)


def test_free_bits_need_the_analytic_kl_of_a_latent_layer():
    from pyro_srnn.config import SRNNConfig
    from pyro_srnn.errors import SRNNError
    from pyro_srnn.evaluate import make_elbo

    for options in ({"elbo": "trace"}, {"elbo": "iwae:4"}, {"elbo": "analytic", "z": 0}):
        with pytest.raises(SRNNError, match="free_bits"):
            SRNNConfig(free_bits=0.01, **options)
    with pytest.raises(SRNNError, match="free_bits must be"):
        SRNNConfig(free_bits=-1.0, elbo="analytic")
    assert SRNNConfig(free_bits=0.01, elbo="analytic").free_bits == 0.01
    with pytest.raises(ValueError, match="analytic"):
        make_elbo("trace", 0.01)
