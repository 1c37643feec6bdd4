"""The TSBN (pyro_srnn.tsbn) against its equations, summed exactly over every binary state; its score-function
gradient with baselines against the exact gradient; the chain's TraceGraph loss against Pyro's own."""
import itertools

import numpy as np
import pyro
import pytest
import torch

from pyro_srnn.batching import padded, to_batch
from pyro_srnn.config import SRNNConfig
from pyro_srnn.elbo import sequence_terms
from pyro_srnn.evaluate import batch_scores, make_elbo, score_sequences
from pyro_srnn.models import build_model
from pyro_srnn.sequence_model import Batch

KEYS, HIDDEN, STEPS = 4, 3, 2


def tiny_tsbn(seed=0, baseline_hidden=5) -> "torch.nn.Module":
    torch.manual_seed(seed)
    tsbn = build_model(SRNNConfig(model="tsbn", x_dim=KEYS, z=HIDDEN, baseline_hidden=baseline_hidden))
    with torch.no_grad():
        for p in tsbn.parameters():  # away from the near-zero initialisation, so every term matters
            p.normal_(0.0, 0.8)
    return tsbn.double()


def one_sequence(seed=1):
    rng = np.random.default_rng(seed)
    x = torch.as_tensor(rng.random((1, STEPS, KEYS)) < 0.5, dtype=torch.float64)
    u = torch.cat([torch.zeros(1, 1, KEYS, dtype=torch.float64), x[:, :-1]], 1)
    return Batch(x, u, torch.ones(1, STEPS, dtype=torch.bool), (torch.zeros(1, HIDDEN, dtype=torch.float64),))


def log_bernoulli(logits, value):
    return (value * torch.nn.functional.logsigmoid(logits) + (1 - value) * torch.nn.functional.logsigmoid(-logits)).sum()


def exact_elbo(tsbn, batch) -> torch.Tensor:
    """sum_h q(h | v) [log p(v, h) - log q(h | v)] over all 2^(H T) states, from (T1)-(T3) written out with
    the weights: differentiable in every parameter."""
    P = dict(tsbn.named_parameters())
    x, u = batch.x[0], batch.u[0]
    total = 0.0
    states = [torch.tensor(s, dtype=torch.float64) for s in itertools.product([0.0, 1.0], repeat=HIDDEN)]
    for path in itertools.product(states, repeat=STEPS):
        log_p = log_q = 0.0
        h_prev = torch.zeros(HIDDEN, dtype=torch.float64)
        for t, h in enumerate(path):
            prior = P["transition.state.weight"] @ h_prev + P["transition.frames.weight"] @ u[t] + P["transition.frames.bias"]
            emit = P["emission.state.weight"] @ h + P["emission.frames.weight"] @ u[t] + P["emission.frames.bias"]
            post = (P["recognition.state.weight"] @ h_prev + P["recognition.frames.weight"] @ torch.cat([x[t], u[t]])
                    + P["recognition.frames.bias"])
            log_p = log_p + log_bernoulli(prior, h) + log_bernoulli(emit, x[t])
            log_q = log_q + log_bernoulli(post, h)
            h_prev = h
        total = total + log_q.exp() * (log_p - log_q)
    return total


def test_elbo_equals_the_exact_sum_over_every_binary_state():
    tsbn, batch = tiny_tsbn(), one_sequence()
    exact = float(exact_elbo(tsbn, batch).detach())
    # our traces, with the guide held at each state in turn, weighted by q of that state
    states = [torch.tensor([s], dtype=torch.float64) for s in itertools.product([0.0, 1.0], repeat=HIDDEN)]
    enumerated = 0.0
    for path in itertools.product(states, repeat=STEPS):
        values = {f"h_{t + 1}": h for t, h in enumerate(path)}
        with torch.no_grad():
            guide_trace = pyro.poutine.trace(pyro.condition(tsbn.guide, data=values)).get_trace(batch)
            for name in values:  # held at a value, but a draw of the guide's as far as the model is concerned
                guide_trace.nodes[name]["is_observed"] = False
            model_trace = pyro.poutine.trace(pyro.poutine.replay(tsbn.model, trace=guide_trace)).get_trace(batch)
            terms = sequence_terms(model_trace, guide_trace, "trace")
            guide_trace.compute_log_prob()
            q = float(sum(site["log_prob"].sum() for site in guide_trace.nodes.values() if site["type"] == "sample"))
        enumerated += np.exp(q) * float((terms.reconstruction - terms.kl).sum())
    assert enumerated == pytest.approx(exact, rel=1e-9)
    # and the sampled ELBO of evaluation averages to it
    tsbn = tsbn.float()  # as evaluation runs it
    torch.manual_seed(0)
    draws = score_sequences(tsbn, [batch.x[0].numpy()] * 3000, kl_form="trace").elbo
    assert abs(draws.mean() - exact) < 4 * draws.std() / np.sqrt(len(draws))
    analytic = score_sequences(tsbn, [batch.x[0].numpy()] * 3000, kl_form="analytic").elbo
    assert abs(analytic.mean() - exact) < 4 * analytic.std() / np.sqrt(len(analytic))
    assert analytic.std() < draws.std()  # the KL of each step given the previous one: less noise


def _model_gradients(tsbn):
    return torch.cat([p.grad.flatten() for name, p in tsbn.named_parameters() if not name.startswith("baseline")])


def test_score_function_gradient_with_baselines_is_unbiased():
    tsbn, batch = tiny_tsbn(), one_sequence()
    exact = torch.autograd.grad(-exact_elbo(tsbn, batch), [p for n, p in tsbn.named_parameters()
                                                           if not n.startswith("baseline")])
    exact = torch.cat([g.flatten() for g in exact])
    elbo = make_elbo("tracegraph")
    copies = Batch(batch.x.expand(50, -1, -1), batch.u.expand(50, -1, -1), batch.mask.expand(50, -1),
                   (batch.state[0].expand(50, -1),))
    torch.manual_seed(0)
    means = []  # each the mean of 50 independent draws (50 copies of the sequence in one batch)
    with pyro.validation_enabled(False):
        for _ in range(60):
            tsbn.zero_grad()
            (elbo.differentiable_loss(tsbn.model, tsbn.guide, copies) / 50).backward()
            means.append(_model_gradients(tsbn))
    means = torch.stack(means)
    stderr = means.std(0) / np.sqrt(len(means))
    assert ((means.mean(0) - exact).abs() < 4.5 * stderr + 1e-6).all()
    assert (stderr > 0).any()  # a score-function estimate is noisy: the test can see a bias
    # the same test catches an estimator without the score function (the pathwise part alone is biased)
    biased = []
    torch.manual_seed(0)
    for _ in range(60):
        tsbn.zero_grad()
        terms = batch_scores(tsbn, copies, "trace")
        (-(terms.reconstruction - terms.kl).sum() / 50).backward()
        biased.append(_model_gradients(tsbn))
    biased = torch.stack(biased)
    assert ((biased.mean(0) - exact).abs() > 4.5 * biased.std(0) / np.sqrt(len(biased)) + 1e-6).any()

@pytest.mark.parametrize("baseline_hidden", [0, 5])
def test_the_chains_tracegraph_loss_is_pyros_for_the_same_noise(baseline_hidden):
    """With padding, a KL scale and carried states, the stacked loss (validation off) has the value and the
    gradient of Pyro's own TraceGraph_ELBO (validation on), for the same draws."""
    tsbn = tiny_tsbn(baseline_hidden=baseline_hidden).float()
    rng = np.random.default_rng(2)
    x, u, mask = padded([(rng.random((n, KEYS)) < 0.4).astype(np.float32) for n in (5, 3)], keys=KEYS)
    batch = to_batch(x, u, mask, (torch.bernoulli(torch.full((2, HIDDEN), 0.5)),))
    results = []
    for validation in (True, False):
        elbo = make_elbo("tracegraph")
        tsbn.zero_grad()
        torch.manual_seed(5)
        with pyro.validation_enabled(validation):
            loss = elbo.differentiable_loss(tsbn.model, tsbn.guide, batch, 0.4)
        loss.backward()
        results.append((float(loss), [p.grad.clone() for p in tsbn.parameters()], elbo.last_terms))
    (pyro_loss, pyro_grads, pyro_terms), (loss, grads, terms) = results
    assert loss == pytest.approx(pyro_loss, rel=1e-5)
    for a, b in zip(grads, pyro_grads):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    for a, b in zip(terms, pyro_terms):
        torch.testing.assert_close(a, b)
    assert -loss == pytest.approx(float((terms.reconstruction - terms.kl_scaled).sum()), rel=1e-5)


def test_options_of_one_model_are_refused_for_the_other():
    from pyro_srnn.errors import SRNNError

    with pytest.raises(SRNNError, match="residual is the SRNN's, not the TSBN's"):
        SRNNConfig(model="tsbn", residual=False)
    with pytest.raises(SRNNError, match="baseline_hidden is the TSBN's"):
        SRNNConfig(baseline_hidden=3)
    with pytest.raises(SRNNError, match="does not train the TSBN"):
        SRNNConfig(model="tsbn", elbo="iwae:5")
    assert SRNNConfig(model="tsbn").elbo == "tracegraph" and SRNNConfig().elbo == "trace"


def test_a_tsbn_run_loads_scores_and_samples_through_the_api(tiny_tsbn_run):
    from pyro_srnn import load_run
    from pyro_srnn.capture import capture_problem
    from pyro_srnn.memory import training_bytes
    from pyro_srnn.tsbn import TSBN

    run = load_run(tiny_tsbn_run)
    assert isinstance(run.model, TSBN) and run.config.model_name == "TSBN"
    batch = run.batch("test", n=2)
    assert len(batch.state) == 1 and batch.state[0].shape == (2, run.config.z)
    scores = run.score("test", iwae=4)
    assert np.isfinite(scores.iwae).all() and np.all(scores.kl >= 0)  # the analytic KL of Bernoullis
    rolls = run.sample(steps=30, n=3)
    assert rolls.shape == (3, 30, 88) and set(np.unique(rolls)) <= {0, 1}
    assert "SRNN's" in capture_problem(torch.device("cuda"), 1, run.config)
    assert 0 < training_bytes(run.config) < training_bytes(SRNNConfig())


def test_the_command_line_refuses_the_other_models_options_in_one_line(bach_file, tmp_path):
    from click.testing import CliRunner

    from cli.main import srnn as srnn_cli

    for args, message in ((["--model", "tsbn", "--residual"], "--residual/--no-residual is an option of the SRNN"),
                          (["--model", "tsbn", "--d", "300"], "--d is an option of the SRNN, not of the TSBN"),
                          (["--baseline-hidden", "10"], "--baseline-hidden is an option of the TSBN, not of the SRNN")):
        result = CliRunner().invoke(srnn_cli, ["train", "--data", str(bach_file), "--run-dir", str(tmp_path / "r"),
                                               "--epochs", "1", *args])
        assert result.exit_code == 1 and message in result.output and "Traceback" not in result.output, result.output
        assert not (tmp_path / "r").exists()  # refused before anything was written


def test_a_checkpoint_written_before_the_tsbn_existed_loads_as_an_srnn(tiny_run, tmp_path):
    from pyro_srnn.checkpoint import atomic_save, load_checkpoint, model_from_checkpoint
    from pyro_srnn.model import SRNN

    ckpt = load_checkpoint(tiny_run / "best.pt")
    for key in ("model", "baseline_hidden"):  # the fields this change added to every configuration
        del ckpt["config"][key]
    atomic_save(ckpt, tmp_path / "old.pt")
    model = model_from_checkpoint(load_checkpoint(tmp_path / "old.pt"))
    assert type(model) is SRNN
    for name, value in model.state_dict().items():
        assert torch.equal(value, ckpt["model"][name]), name
