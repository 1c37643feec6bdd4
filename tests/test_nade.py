"""The NADE emission and the RNN (z = 0): the distributions' mathematics, and the RNN's exact likelihood."""
import itertools
import math

import numpy as np
import pyro
import pytest
import torch
import torch.nn.functional as F
from scipy import stats

from pyro_srnn.config import SRNNConfig
from pyro_srnn.elbo import StackedTrace_ELBO
from pyro_srnn.evaluate import score_sequences
from pyro_srnn.model import NADE, SRNN, clipped_leaky_relu
from pyro_srnn.sequence_model import Batch

K, H = 10, 4


def _nade(seed=0, batch=(), zero_w=False):
    g = torch.Generator().manual_seed(seed)
    b = torch.randn(*batch, K, generator=g, dtype=torch.float64)
    c = torch.randn(*batch, H, generator=g, dtype=torch.float64)
    W = torch.zeros(H, K, dtype=torch.float64) if zero_w else torch.randn(H, K, generator=g, dtype=torch.float64)
    V = torch.randn(K, H, generator=g, dtype=torch.float64)
    return NADE(b, c, W, V)


def _all_states(k=K):
    return torch.tensor(list(itertools.product([0.0, 1.0], repeat=k)), dtype=torch.float64)


def _by_hand(nade, x):
    """log p(x) one key at a time, straight from the definition."""
    total = 0.0
    for k in range(K):
        h = torch.sigmoid(nade.c + nade.W[:, :k] @ x[:k])
        p = torch.sigmoid(nade.b[k] + nade.V[k] @ h)
        total += math.log(p if x[k] else 1 - p)
    return total


def test_the_nade_sums_to_one_over_all_states_and_each_is_the_product_of_its_conditionals():
    nade = _nade()
    states = _all_states()
    log_p = nade.log_prob(states)
    assert torch.logsumexp(log_p, 0).exp().item() == pytest.approx(1.0, abs=1e-12)
    for i in np.random.default_rng(0).choice(len(states), 40, replace=False):
        assert log_p[i].item() == pytest.approx(_by_hand(nade, states[i]), abs=1e-10)


def test_the_nade_gives_the_same_logits_where_it_cannot_count_sounding_keys(monkeypatch):
    nade = _nade(batch=(2,))
    x = _all_states()[[5, 1000, 1023, 0, 77, 512]].reshape(3, 2, K)  # broadcast over a leading dimension
    counted = nade.logits(x)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_current_stream_capturing", lambda: True)  # as in a CUDA graph's capture
    torch.testing.assert_close(nade.logits(x), counted, rtol=1e-12, atol=1e-12)
    for i, j in itertools.product(range(3), range(2)):
        one = NADE(nade.b[j], nade.c[j], nade.W, nade.V)
        assert one.log_prob(x[i, j]).item() == pytest.approx(_by_hand(one, x[i, j]), abs=1e-10)


def test_with_w_zero_the_nade_is_independent_bernoullis_with_its_visible_biases():
    nade = _nade(zero_w=True, batch=(3,))
    x = (torch.rand(3, K, generator=torch.Generator().manual_seed(2)) < 0.5).double()
    logits = nade.b + (nade.V * torch.sigmoid(nade.c).unsqueeze(1)).sum(-1)  # h_k = sigmoid(c) for every key
    bernoulli = torch.distributions.Bernoulli(logits=logits).log_prob(x).sum(-1)
    torch.testing.assert_close(nade.log_prob(x), bernoulli)
    # with c fixed, W = 0 leaves each key's logit b_k + V_k . sigmoid(c): the Bernoulli emission with those biases
    plain = NADE(nade.b, torch.full_like(nade.c, -50.0), nade.W, nade.V)  # sigmoid(c) = 0: logits are b
    torch.testing.assert_close(plain.log_prob(x), torch.distributions.Bernoulli(logits=nade.b).log_prob(x).sum(-1))


def _chi2(nade, draws, k):
    codes = (draws * 2 ** torch.arange(k - 1, -1, -1)).sum(-1).long()
    observed = torch.bincount(codes, minlength=2 ** k).numpy()
    expected = nade.log_prob(_all_states(k).float()).exp().numpy() * len(draws)
    assert expected.sum() == pytest.approx(len(draws), rel=1e-5)
    return ((observed - expected) ** 2 / expected).sum()


@pytest.mark.parametrize("temperature", [1.0, 0.5])
def test_nade_samples_follow_its_probabilities(temperature):
    k = 4
    g = torch.Generator().manual_seed(3)
    nade = NADE(torch.randn(k, generator=g), torch.randn(H, generator=g), 2 * torch.randn(H, k, generator=g),
                2 * torch.randn(k, H, generator=g), temperature)
    torch.manual_seed(0)
    draws = nade.sample((40_000,))
    critical = stats.chi2.ppf(0.999, 2 ** k - 1)
    assert _chi2(nade, draws, k) < critical
    # the same test tells a wrong distribution apart: the keys shuffled independently of each other
    independent = torch.stack([draws[torch.randperm(len(draws)), i] for i in range(k)], 1)
    assert _chi2(nade, independent, k) > critical


def _gru_step(gru, x, h):
    """PyTorch's GRU cell written out: r, z gates and the candidate n."""
    w_ir, w_iz, w_in = gru.weight_ih_l0.chunk(3)
    w_hr, w_hz, w_hn = gru.weight_hh_l0.chunk(3)
    b_ir, b_iz, b_in = gru.bias_ih_l0.chunk(3)
    b_hr, b_hz, b_hn = gru.bias_hh_l0.chunk(3)
    r = torch.sigmoid(x @ w_ir.T + b_ir + h @ w_hr.T + b_hr)
    z = torch.sigmoid(x @ w_iz.T + b_iz + h @ w_hz.T + b_hz)
    n = torch.tanh(x @ w_in.T + b_in + r * (h @ w_hn.T + b_hn))
    return (1 - z) * n + z * h


@pytest.mark.parametrize("emission", ["bernoulli", "nade"])
def test_the_rnn_loss_is_the_exact_log_likelihood_computed_by_hand(emission):
    torch.manual_seed(0)
    config = SRNNConfig(d=4, a=3, z=0, hidden=5, emission=emission, nade_hidden=3)
    rnn = SRNN(config)
    for p in rnn.parameters():  # nonzero biases, so that every term counts
        torch.nn.init.normal_(p, 0, 0.5)
    x = (torch.rand(2, 6, 88) < 0.2).float()
    u = torch.cat([torch.zeros(2, 1, 88), x[:, :-1]], 1)
    mask = torch.ones(2, 6, dtype=torch.bool)
    mask[1, 4:] = False
    expected = []
    for i in range(2):
        h, total = torch.zeros(config.d), 0.0
        for t in range(int(mask[i].sum())):
            e = clipped_leaky_relu(rnn.embed.layer2(clipped_leaky_relu(rnn.embed.layer1(u[i, t]))))
            h = _gru_step(rnn.gru_d, e, h)
            out = rnn.emission.out(clipped_leaky_relu(rnn.emission.layer1(h)))
            if emission == "bernoulli":
                total += -F.binary_cross_entropy_with_logits(out, x[i, t], reduction="sum")
            else:
                b, c = out[:88], out[88:]
                for k in range(88):
                    p = torch.sigmoid(b[k] + rnn.emission.V[k] @ torch.sigmoid(c + rnn.emission.W[:, :k] @ x[i, t, :k]))
                    total += torch.log(p if x[i, t, k] else 1 - p)
        expected.append(float(total.detach()))
    batch = Batch(x, u, mask, rnn.initial_state(2))
    with pyro.validation_enabled(True):  # Pyro's own Trace_ELBO: no latent site, so no sampling at all
        loss = pyro.infer.Trace_ELBO().differentiable_loss(rnn.model, rnn.guide, batch)
    assert -loss.item() == pytest.approx(sum(expected), rel=1e-5)
    with pyro.validation_enabled(False):
        elbo = StackedTrace_ELBO()
        assert -rnn(batch, elbo).item() * int(mask.sum()) == pytest.approx(sum(expected), rel=1e-5)
    assert elbo.last_terms.kl.abs().sum() == 0
    sequences = [x[0].numpy(), x[1, :4].numpy()]
    scores = score_sequences(rnn, sequences, iwae=4)
    np.testing.assert_allclose(scores.elbo, expected, rtol=1e-5)
    np.testing.assert_allclose(scores.iwae, expected, rtol=1e-5)  # the bound of an exact likelihood is itself


def test_pretraining_fits_the_nade_to_frames_and_starts_the_emission_there():
    from pyro_srnn.model import Emission

    torch.manual_seed(0)
    chords = torch.zeros(2, 88)
    chords[0, [40, 44, 47]] = chords[1, [41, 45, 48]] = 1  # two chords, equally likely: entropy log 2
    frames = chords[torch.arange(400) % 2]
    emission = Emission(d_dim=2, z_dim=0, hidden=4, x_dim=88, kind="nade", nade_hidden=8)
    fitted = emission.pretrain_nade(frames, updates=300, lr=3e-2, seed=0)
    with torch.no_grad():
        emission.out.weight.zero_()  # the emission is then its output bias alone: the fitted b and c
        log_likelihood = emission.distribution(torch.zeros(2, 2), torch.zeros(2, 0)).log_prob(chords)
    assert log_likelihood.mean().item() == pytest.approx(fitted, abs=0.1)
    # independent keys put at most 2 / 64 of the mass on the two chords; the NADE knows which keys sound together
    assert log_likelihood.exp().sum().item() > 0.85


def test_a_checkpoint_config_from_before_emissions_loads_as_bernoulli(tiny_run):
    from pyro_srnn.checkpoint import load_checkpoint, model_from_checkpoint

    ckpt = load_checkpoint(tiny_run / "best.pt")
    for key in ("emission", "nade_hidden"):
        ckpt["config"].pop(key)
    model = model_from_checkpoint(ckpt)
    assert model.config.emission == "bernoulli" and not hasattr(model.emission, "W")


def test_nade_sampling_through_the_model_is_batched():
    torch.manual_seed(0)
    config = SRNNConfig(d=4, a=3, z=2, hidden=5, emission="nade", nade_hidden=3)
    model = SRNN(config).eval()
    from pyro_srnn.sample import Controls, sample_rolls

    rolls = sample_rolls(model, 7, 5, controls=Controls(burn_in=2))
    assert rolls.shape == (5, 7, 88) and set(np.unique(rolls)) <= {0, 1}
    tempered = model.emission.distribution(torch.zeros(3, 4), torch.zeros(3, 2), 0.5)
    plain = model.emission.distribution(torch.zeros(3, 4), torch.zeros(3, 2))
    x = torch.ones(3, 88)
    torch.testing.assert_close(tempered.logits(x), plain.logits(x) / 0.5)


def test_a_nade_record_from_before_pretraining_reads_as_trained_without_it():
    config = SRNNConfig(emission="nade").to_dict()
    del config["nade_pretrain"]
    assert SRNNConfig.from_dict(config).nade_pretrain == 0  # those runs were not pretrained
    assert SRNNConfig.from_dict(SRNNConfig(emission="nade").to_dict()).nade_pretrain == SRNNConfig().nade_pretrain
