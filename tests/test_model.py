"""The SRNN's ELBO against a hand computation from docs/MODEL.md section 1, and the two Pyro estimators."""
import numpy as np
import pyro
import pytest
import torch

from pyro_srnn.batching import padded, to_batch
from pyro_srnn.evaluate import batch_scores, make_elbo, traces
from pyro_srnn.model import SRNN, reversal_index
from tests.conftest import random_roll, tiny_config


def f(v):
    return torch.clamp(torch.where(v >= 0, v, v / 3.0), -3.0, 3.0)


def hand_gru(inputs, h, w_ih, w_hh, b_ih, b_hh):
    """GRU equations written out (PyTorch's gate order r, z, n)."""
    out = []
    for x in inputs:
        gi, gh = w_ih @ x + b_ih, w_hh @ h + b_hh
        r = torch.sigmoid(gi[: len(h)] + gh[: len(h)])
        z = torch.sigmoid(gi[len(h): 2 * len(h)] + gh[len(h): 2 * len(h)])
        n = torch.tanh(gi[2 * len(h):] + r * gh[2 * len(h):])
        h = (1 - z) * n + z * h
        out.append(h)
    return out


def hand_elbo(srnn, x, zs):
    """ELBO of one sequence x (T, 88) at the guide's samples zs (T, z), from the equations of docs/MODEL.md section 1
    with the analytic KL of each step: sum_t log p(x_t | z_t, d_t) - KL(q(z_t | z_{t-1}, a_t) || p(z_t | z_{t-1}, d_t))."""
    P = {k: v.detach().double() for k, v in srnn.named_parameters()}
    c = srnn.config
    x = torch.as_tensor(x, dtype=torch.float64)
    zs = zs.detach().double()

    def embed(v):
        return f(P["embed.layer2.weight"] @ f(P["embed.layer1.weight"] @ v + P["embed.layer1.bias"]) + P["embed.layer2.bias"])

    def gaussian(prefix, cond, z_prev):
        pre = P[f"{prefix}.first_c.weight"] @ cond + P[f"{prefix}.first_c.bias"] + P[f"{prefix}.first_z.weight"] @ z_prev
        h_mean, h_lv = f(pre[: c.hidden]), f(pre[c.hidden:])
        mean = P[f"{prefix}.mean_out.weight"] @ h_mean + P[f"{prefix}.mean_out.bias"]
        logvar = P[f"{prefix}.logvar_out.weight"] @ h_lv + P[f"{prefix}.logvar_out.bias"]
        return mean, torch.exp(logvar) + 1e-6

    gru = lambda name, inputs, h: hand_gru(inputs, h, P[f"{name}.weight_ih_l0"], P[f"{name}.weight_hh_l0"],  # noqa
                                           P[f"{name}.bias_ih_l0"], P[f"{name}.bias_hh_l0"])
    T = len(x)
    u = torch.cat([torch.zeros(1, 88, dtype=torch.float64), x[:-1]])
    d = gru("gru_d", [embed(u_t) for u_t in u], torch.zeros(c.d, dtype=torch.float64))
    a = gru("gru_a", [torch.cat([d[t], embed(x[t])]) for t in reversed(range(T))], torch.zeros(c.a, dtype=torch.float64))[::-1]
    elbo, z_prev = 0.0, torch.zeros(c.z, dtype=torch.float64)
    for t in range(T):
        mu_p, var_p = gaussian("prior", d[t], z_prev)
        dmu_q, var_q = gaussian("posterior", a[t], z_prev)
        mu_q = mu_p + dmu_q
        kl = 0.5 * torch.sum(torch.log(var_p / var_q) + (var_q + (mu_q - mu_p) ** 2) / var_p - 1)
        logits = P["emission.out.weight"] @ f(P["emission.layer1.weight"] @ torch.cat([d[t], zs[t]])
                                               + P["emission.layer1.bias"]) + P["emission.out.bias"]
        log_px = torch.sum(x[t] * torch.nn.functional.logsigmoid(logits) + (1 - x[t]) * torch.nn.functional.logsigmoid(-logits))
        elbo = elbo + log_px - kl
        z_prev = zs[t]
    return float(elbo.detach())


def randomised(srnn, seed=0):
    """Biases are zero at initialisation; give every parameter a value so that no term can hide."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in srnn.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=g))
    return srnn


def tiny_batch(lengths=(7, 4), seed=0):
    rng = np.random.default_rng(seed)
    x, u, mask = padded([random_roll(rng, n, 0.1) for n in lengths])
    return to_batch(x, u, mask, (torch.zeros(len(x), 6), torch.zeros(len(x), 3)))


def test_analytic_elbo_equals_hand_computation():
    torch.manual_seed(0)
    srnn = randomised(SRNN(tiny_config()))
    batch = tiny_batch()
    pyro.set_rng_seed(3)
    loss = make_elbo("analytic").differentiable_loss(srnn.model, srnn.guide, batch)
    pyro.set_rng_seed(3)
    _, guide_trace = traces(srnn, batch)  # the same noise: the z the loss was computed at
    by_hand = 0.0
    for i, length in enumerate(batch.mask.sum(1).tolist()):
        zs = torch.stack([guide_trace.nodes[f"z_{t + 1}"]["value"][i] for t in range(length)])
        by_hand += hand_elbo(srnn, batch.x[i, :length], zs)
    assert -loss.item() == pytest.approx(by_hand, rel=1e-5)


@pytest.mark.parametrize("kind", ["analytic", "trace"])
def test_per_sequence_scores_sum_to_pyro_loss(kind):
    torch.manual_seed(1)
    srnn = randomised(SRNN(tiny_config()), 1)
    batch = tiny_batch((9, 3, 6), 1)
    pyro.set_rng_seed(5)
    loss = make_elbo(kind).differentiable_loss(srnn.model, srnn.guide, batch, 0.5)
    pyro.set_rng_seed(5)
    reconstruction, kl, _ = batch_scores(srnn, batch, kind)
    # KL annealing at temperature 0.5: the training loss is -(reconstruction - 0.5 KL)
    assert loss.item() == pytest.approx(-float((reconstruction - 0.5 * kl).sum()), rel=1e-5)
    pyro.set_rng_seed(5)
    loss1 = make_elbo(kind).differentiable_loss(srnn.model, srnn.guide, batch)
    assert -float(loss1) == pytest.approx(float((reconstruction - kl).sum()), rel=1e-5)


def test_trace_estimate_averages_to_analytic():
    torch.manual_seed(2)
    srnn = randomised(SRNN(tiny_config()), 2)
    rng = np.random.default_rng(2)
    roll = random_roll(rng, 8, 0.1)
    x, u, mask = padded([roll] * 4000)
    batch = to_batch(x, u, mask, (torch.zeros(len(x), 6), torch.zeros(len(x), 3)))
    # same draws, both KL forms: their difference has mean zero
    pyro.set_rng_seed(9)
    with torch.no_grad():
        rec_a, kl_a, _ = batch_scores(srnn, batch, "analytic")
    pyro.set_rng_seed(9)
    with torch.no_grad():
        rec_t, kl_t, _ = batch_scores(srnn, batch, "trace")
    torch.testing.assert_close(rec_a, rec_t)
    diff = (kl_t - kl_a).double()
    assert kl_a.mean() > 0.05  # the latent variables matter in this model
    assert abs(diff.mean()) < 4 * diff.std() / len(diff) ** 0.5


def test_reversal_index_keeps_padding_behind():
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1], [1, 0, 0, 0]], dtype=torch.bool)
    assert reversal_index(mask).tolist() == [[2, 1, 0, 3], [3, 2, 1, 0], [0, 1, 2, 3]]


def test_ablations_build_and_differ():
    base = tiny_config()
    filtering = SRNN(tiny_config(filtering=True))
    assert not hasattr(filtering, "gru_a") and hasattr(filtering, "filtering_path")
    torch.manual_seed(0)
    srnn = randomised(SRNN(tiny_config(residual=False)))
    batch = tiny_batch()
    pyro.set_rng_seed(0)
    _, guide_trace = traces(srnn, batch)
    pyro.set_rng_seed(0)
    srnn.config.residual = True
    _, guide_trace_residual = traces(srnn, batch)
    assert not torch.allclose(guide_trace.nodes["z_2"]["fn"].mean, guide_trace_residual.nodes["z_2"]["fn"].mean)
    assert base.residual


def test_dropout_drops_the_embedding_and_emission_units_in_training_only():
    p = 0.4
    torch.manual_seed(3)
    srnn = randomised(SRNN(tiny_config(hidden=400, dropout=p)), 3)
    g = torch.Generator().manual_seed(3)
    v, d, z = (torch.rand(6, 10, n, generator=g) for n in (88, 6, 3))
    hidden = []
    srnn.emission.out.register_forward_pre_hook(lambda module, args: hidden.append(args[0].detach()))
    units = {}
    for mode in ("eval", "train"):
        srnn.train(mode == "train")
        hidden.clear()
        srnn.emission(d, z)
        units[mode] = {"embed": srnn.embed(v).detach(), "emission": hidden[0]}
    for name in ("embed", "emission"):
        whole, kept = units["eval"][name], units["train"][name]
        live = whole != 0
        dropped = (kept == 0) & live
        # inverted dropout: each unit is dropped, or kept and scaled by 1 / (1 - p)
        torch.testing.assert_close(kept[~dropped], whole[~dropped] / (1 - p))
        rate = float(dropped.sum() / live.sum())
        assert abs(rate - p) < 4 * (p * (1 - p) / float(live.sum())) ** 0.5, (name, rate)
    # evaluation uses the whole networks: the ELBO of the same weights without dropout
    batch = tiny_batch()
    srnn.eval()
    pyro.set_rng_seed(4)
    with_option = float(make_elbo("analytic").differentiable_loss(srnn.model, srnn.guide, batch))
    srnn.embed.dropout = srnn.emission.dropout = 0.0
    pyro.set_rng_seed(4)
    assert float(make_elbo("analytic").differentiable_loss(srnn.model, srnn.guide, batch)) == with_option
    srnn.train()
    pyro.set_rng_seed(4)
    assert float(make_elbo("analytic").differentiable_loss(srnn.model, srnn.guide, batch)) == with_option


def test_no_dropout_draws_no_random_numbers_in_training():
    srnn = randomised(SRNN(tiny_config()))  # dropout 0, the paper: training must be exactly as without the option
    srnn.train()
    state = torch.random.get_rng_state()
    srnn.embed(torch.rand(2, 5, 88, generator=torch.Generator().manual_seed(0)))
    assert torch.equal(torch.random.get_rng_state(), state)


def test_shapes_on_the_meta_device_match_the_model_and_load_no_torchdynamo():
    """Checkpoint checks and memory estimates build each model on the meta device; normal_ there would import
    TorchDynamo, seconds of every `srnn evaluate`, `sample` and `train`, so the initialisation skips meta tensors."""
    import subprocess
    import sys

    script = (
        "import sys, torch\n"
        "from pyro_srnn.memory import parameter_count\n"
        "from pyro_srnn.models import build_model\n"
        "from tests.conftest import tiny_config, tiny_tsbn_config\n"
        "for config in (tiny_config(), tiny_config(emission='nade', nade_hidden=7), tiny_tsbn_config()):\n"
        "    with torch.device('meta'):\n"
        "        meta = {k: v.shape for k, v in build_model(config).state_dict().items()}\n"
        "    print(parameter_count(config), sum(s.numel() for s in meta.values()), 'torch._dynamo' in sys.modules)\n"
        "    real = {k: v.shape for k, v in build_model(config).state_dict().items()}\n"
        "    assert real == meta, config\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    rows = [line.split() for line in result.stdout.splitlines()]
    assert len(rows) == 3
    for count, meta_count, dynamo in rows:
        assert int(count) == int(meta_count) > 0
        assert dynamo == "False"
