"""The fused step (pyro_srnn.fused, the shared embedding) computes the step-by-step autograd step's numbers:
its backward pass against numerical differentiation, and whole SVI steps against the step by step code
(``srnn.fused = False``) for every variant of the model and objective."""

import numpy as np
import pyro
import pytest
import torch
from pyro import poutine

from pyro_srnn.batching import padded, to_batch
from pyro_srnn.fused import fused_chain
from pyro_srnn.evaluate import make_elbo
from pyro_srnn.model import SRNN, Paths, clipped_leaky_relu
from pyro_srnn.step import make_optimizer, svi_step
from tests.conftest import random_roll, tiny_config
from tests.test_model import randomised


def step_by_step_chain(first_c, w_z, w_out, b_out, z0, eps, residual, floor):
    """The recurrence of pyro_srnn.fused written with autograd, one step at a time."""
    hidden, z, zs, outs = w_out.shape[1], z0, [], []
    for t in range(len(first_c)):
        h = clipped_leaky_relu(first_c[t] + z @ w_z)
        out = torch.baddbmm(b_out, h.view(-1, 4, hidden).transpose(0, 1), w_out)
        mu_p, _, dmu_q, lv_q = out
        z = (mu_p + dmu_q if residual else dmu_q) + eps[t] * (lv_q.exp() + floor).sqrt()
        zs.append(z)
        outs.append(out)
    return torch.stack(zs), torch.stack(outs)


def chain_inputs(steps=4, size=3, z=2, hidden=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    shapes = [(steps, size, 4 * hidden), (z, 4 * hidden), (4, hidden, z), (4, 1, z), (size, z)]
    inputs = [torch.randn(s, generator=g, dtype=torch.float64).requires_grad_() for s in shapes]
    return inputs, torch.randn(steps, size, z, generator=g, dtype=torch.float64)


@pytest.mark.parametrize("residual", [True, False])
def test_fused_chain_gradient_equals_numerical_differentiation(residual):
    inputs, eps = chain_inputs()
    assert torch.autograd.gradcheck(lambda *a: fused_chain(*a, eps, residual, 1e-6), inputs)


@pytest.mark.parametrize("residual", [True, False])
def test_fused_chain_equals_the_step_by_step_recurrence(residual):
    inputs, eps = chain_inputs(steps=9, size=5, z=4, hidden=6, seed=1)
    g = torch.Generator().manual_seed(2)
    weights = [torch.randn(9, 5, 4, generator=g, dtype=torch.float64),
               torch.randn(9, 4, 5, 4, generator=g, dtype=torch.float64)]
    results = []
    for chain in (step_by_step_chain, fused_chain):
        zs, out = chain(*inputs, eps, residual, 1e-6)
        loss = (zs * weights[0]).sum() + (out * weights[1]).sum() + (zs ** 3).sum()  # z used twice: carried + own
        results.append((zs, out) + torch.autograd.grad(loss, inputs))
    fused, reference = results[1], results[0]
    assert torch.equal(fused[0], reference[0]) and torch.equal(fused[1], reference[1])  # the same arithmetic
    for a, b in zip(fused[2:], reference[2:]):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def mixed_batch(config, seed=0):
    """Rows of different lengths (padding and masks) and a carried, non-zero state."""
    rng = np.random.default_rng(seed)
    x, u, mask = padded([random_roll(rng, n, 0.1) for n in (9, 5, 7, 3)])
    g = torch.Generator().manual_seed(seed)
    state = (torch.randn(len(x), config.d, generator=g), torch.randn(len(x), config.z, generator=g))
    return to_batch(x, u, mask, state)


VARIANTS = {
    "trace": dict(elbo="trace"), "analytic": dict(elbo="analytic"), "iwae": dict(elbo="iwae:3"),
    "filtering": dict(filtering=True), "no-residual": dict(residual=False), "nade": dict(emission="nade"),
    "rnn": dict(z=0), "dropout": dict(dropout=0.3), "annealed": dict(elbo="analytic"),
}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_fused_step_equals_the_step_by_step_step(variant):
    """One SVI step each way from the same parameters and random stream: the same loss (bit for bit: the
    forward arithmetic is the same), terms, carried state and, to rtol 1e-5, every parameter's gradient
    and update."""
    config = tiny_config(**VARIANTS[variant])
    kl_scale = 0.3 if variant == "annealed" else 1.0
    torch.manual_seed(0)
    start = randomised(SRNN(config)).state_dict()
    batch = mixed_batch(config)
    results = []
    for fused in (False, True):
        srnn = SRNN(config)
        srnn.load_state_dict(start)
        srnn.fused = fused
        optimizer = make_optimizer(srnn, config)
        grads = {}
        for name, p in srnn.named_parameters():
            p.register_hook(lambda g, name=name: grads.__setitem__(name, g.clone()))
        pyro.set_rng_seed(5)
        loss, terms, state, grad_norm = svi_step(srnn, make_elbo(config.elbo), optimizer,
                                                 config, batch, kl_scale)
        results.append((loss, terms, state, grads, {n: p.detach().clone() for n, p in srnn.named_parameters()}))
    (loss0, terms0, state0, grads0, params0), (loss1, terms1, state1, grads1, params1) = results
    if variant != "iwae":  # the IWAE step draws the carried particle after the gradients: its loss too
        assert loss1 == loss0
    else:
        assert loss1 == pytest.approx(loss0, rel=1e-6)
    assert terms1 == pytest.approx(terms0, rel=1e-6)
    for a, b in zip(state1, state0):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    assert grads1.keys() == grads0.keys() and len(grads0) == len(list(srnn.parameters()))
    for name in grads0:
        scale = float(grads0[name].abs().max())
        torch.testing.assert_close(grads1[name], grads0[name], rtol=1e-5, atol=1e-5 * scale, msg=name)
        torch.testing.assert_close(params1[name], params0[name], rtol=1e-5, atol=1e-6, msg=name)


def test_pyro_per_site_code_gives_the_fused_guides_numbers():
    """With validation on, Pyro's own Trace_ELBO scores the fused guide's sites: the same loss as the stacked
    ELBO, and as the step-by-step guide under Pyro's code."""
    config = tiny_config()
    srnn = randomised(SRNN(config))
    batch = mixed_batch(config)
    losses = []
    for fused, validation in ((True, False), (True, True), (False, True)):
        srnn.fused = fused
        pyro.set_rng_seed(1)
        with pyro.validation_enabled(validation):
            losses.append(make_elbo("trace").differentiable_loss(srnn.model, srnn.guide, batch).item())
    assert losses[1] == pytest.approx(losses[0], rel=1e-6) and losses[2] == pytest.approx(losses[0], rel=1e-6)


def test_each_guide_run_draws_afresh_from_shared_paths():
    """Evaluation runs the guide several times on one Paths: each run is its own chain, with new noise."""
    srnn = randomised(SRNN(tiny_config()))
    batch = mixed_batch(srnn.config)
    paths = Paths(srnn, batch)
    first, second = (poutine.trace(srnn.guide).get_trace(batch, 1.0, paths) for _ in range(2))
    assert not torch.equal(first.nodes["z_2"]["value"], second.nodes["z_2"]["value"])
    model = poutine.trace(poutine.replay(srnn.model, trace=second)).get_trace(batch, 1.0, paths)
    srnn.fused = False
    step_by_step = poutine.trace(poutine.replay(srnn.model, trace=second)).get_trace(batch, 1.0, Paths(srnn, batch))
    for t in (1, 2, 5):  # the model replayed on the second run reads that run's prior, not the first's
        torch.testing.assert_close(model.nodes[f"z_{t}"]["fn"].base_dist.loc,
                                   step_by_step.nodes[f"z_{t}"]["fn"].base_dist.loc)


def test_a_replaced_draw_continues_step_by_step():
    """A handler that puts its own value at one site of the guide: the steps after it follow that value."""
    srnn = randomised(SRNN(tiny_config()))
    batch = mixed_batch(srnn.config)
    own = poutine.trace(srnn.guide).get_trace(batch)
    partial = poutine.trace(srnn.guide).get_trace(batch)
    for name in list(partial.nodes):
        if name != "z_3":
            partial.remove_node(name)
    replayed = poutine.trace(poutine.replay(srnn.guide, trace=partial)).get_trace(batch)
    assert torch.equal(replayed.nodes["z_3"]["value"], partial.nodes["z_3"]["value"])
    srnn.fused = False
    paths = Paths(srnn, batch)
    expected = paths.posterior(3, partial.nodes["z_3"]["value"]).base_dist.loc  # q(z_4 | z_3, a_4)
    torch.testing.assert_close(replayed.nodes["z_4"]["fn"].base_dist.loc, expected)
    assert not torch.equal(replayed.nodes["z_4"]["value"], own.nodes["z_4"]["value"])


def test_embedding_is_shared_only_when_u_is_x_shifted():
    srnn = randomised(SRNN(tiny_config()))
    batch = mixed_batch(srnn.config)
    e_u, e_x = srnn.shared_embeddings(batch.u, batch.x)
    torch.testing.assert_close(e_u, srnn.embed(batch.u))
    torch.testing.assert_close(e_x, srnn.embed(batch.x))
    assert e_u._base is e_x._base  # one embedding of T + 1 frames
    assert srnn.shared_embeddings(batch.u.flip(1), batch.x) is None
    srnn.train()
    assert srnn.shared_embeddings(batch.u, batch.x) is not None  # no dropout: no masks to keep apart
    dropping = SRNN(tiny_config(dropout=0.3)).train()
    assert dropping.shared_embeddings(batch.u, batch.x) is None
    assert dropping.eval().shared_embeddings(batch.u, batch.x) is not None
