"""srnn evaluate: exact likelihood when z is idle, IWAE >= ELBO and growing in K, normalisations, padding."""
import json
import math

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from cli.main import srnn as srnn_cli
from data_prep.h5 import PianoRollFile
from pyro_srnn.batching import sequence_batches
from pyro_srnn.evaluate import SequenceScores, score_sequences
from pyro_srnn.config import SRNNConfig
from pyro_srnn.model import SRNN
from pyro_srnn.train import Trainer
from tests.conftest import random_roll, tiny_config, tiny_tsbn_config
from tests.test_model import hand_gru, randomised, f


def exact_log_likelihood(srnn, x):
    """log p(x) of the deterministic model left when the emission ignores z: sum_t log Bernoulli(x_t | d_t)."""
    P = {k: v.detach().double() for k, v in srnn.named_parameters()}
    x = torch.as_tensor(x, dtype=torch.float64)
    u = torch.cat([torch.zeros(1, 88, dtype=torch.float64), x[:-1]])
    embed = lambda v: f(P["embed.layer2.weight"] @ f(P["embed.layer1.weight"] @ v + P["embed.layer1.bias"])  # noqa
                        + P["embed.layer2.bias"])
    d = hand_gru([embed(v) for v in u], torch.zeros(srnn.config.d, dtype=torch.float64), P["gru_d.weight_ih_l0"],
                 P["gru_d.weight_hh_l0"], P["gru_d.bias_ih_l0"], P["gru_d.bias_hh_l0"])
    total = 0.0
    w1 = P["emission.layer1.weight"][:, : srnn.config.d]
    for t in range(len(x)):
        logits = P["emission.out.weight"] @ f(w1 @ d[t] + P["emission.layer1.bias"]) + P["emission.out.bias"]
        total += float(torch.sum(x[t] * torch.nn.functional.logsigmoid(logits)
                                 + (1 - x[t]) * torch.nn.functional.logsigmoid(-logits)))
    return total


def idle_latent_model():
    """The emission ignores z and q equals the prior exactly, so no bound has slack."""
    torch.manual_seed(0)
    srnn = randomised(SRNN(tiny_config()))
    with torch.no_grad():
        srnn.emission.layer1.weight[:, srnn.config.d:] = 0  # emission weights on z
        for gaussian in (srnn.prior, srnn.posterior):
            gaussian.mean_out.weight.zero_()
            gaussian.logvar_out.weight.zero_()
            gaussian.logvar_out.bias.fill_(-0.7)
        srnn.posterior.mean_out.bias.zero_()  # residual mean: q's mean = the prior's
    return srnn


def test_elbo_and_iwae_equal_exact_likelihood_when_z_is_idle():
    srnn = idle_latent_model()
    rng = np.random.default_rng(0)
    seqs = [random_roll(rng, n, 0.1) for n in (5, 9, 3)]
    scores = score_sequences(srnn, seqs, kl_form="trace", iwae=3)
    exact = np.array([exact_log_likelihood(srnn, s) for s in seqs])
    np.testing.assert_allclose(scores.elbo, exact, rtol=1e-5)
    np.testing.assert_allclose(scores.iwae, exact, rtol=1e-5)
    np.testing.assert_allclose(scores.kl, 0, atol=1e-4)
    analytic = score_sequences(srnn, seqs, kl_form="analytic")
    np.testing.assert_allclose(analytic.elbo, exact, rtol=1e-5)


@pytest.fixture(scope="module", params=["srnn", "tsbn"])
def trained(bach_file, tmp_path_factory, request):
    """A small trained model of each family: the evaluation tests that take it run on both."""
    config = (tiny_config(epochs=4, d=16, a=16, z=4, hidden=32) if request.param == "srnn"
              else tiny_tsbn_config(epochs=4, z=8, lr=3e-2))  # far enough from q = p = 1/2 to have a gap
    trainer = Trainer(config, PianoRollFile(bach_file), tmp_path_factory.mktemp("run") / "run")
    trainer.start()
    trainer.fit()
    return trainer


def test_iwae_bound_above_elbo_and_growing_with_k(trained):
    seqs = [s[:24] for s in trained.valid]
    torch.manual_seed(0)
    means, stderrs = [], []
    for k in (1, 8, 64):
        scores = score_sequences(trained.model, seqs * 4, kl_form="trace", iwae=k)
        means.append(scores.iwae.mean())
        stderrs.append(scores.iwae.std() / math.sqrt(len(scores.iwae)))
        if k == 1:  # K = 1 is the ELBO itself
            elbo = score_sequences(trained.model, seqs * 4, kl_form="analytic", samples=8).elbo.mean()
            assert abs(means[0] - elbo) < 4 * stderrs[0] + 0.05
    assert means[0] < means[1] < means[2]


def test_two_normalisations_follow_their_definitions():
    scores = SequenceScores(elbo=np.array([-20.0, -90.0]), reconstruction=np.array([-18.0, -80.0]),
                            kl=np.array([2.0, 10.0]), lengths=np.array([10, 30]))
    r = scores.per_frame()
    assert r["per_sequence"] == pytest.approx((-2.0 - 3.0) / 2)  # the paper: mean of per-sequence ratios
    assert r["total_frames"] == pytest.approx(-110.0 / 40)  # other papers: total over total
    assert r["per_sequence_stderr"] == pytest.approx(np.std([-2.0, -3.0], ddof=1) / math.sqrt(2))


def test_padding_does_not_change_a_sequence(posterior_mean_z):
    # z at the posterior mean makes every score a deterministic function of the sequence
    torch.manual_seed(1)
    srnn = randomised(SRNN(tiny_config()), 1)
    rng = np.random.default_rng(1)
    seqs = [random_roll(rng, n, 0.1) for n in (4, 11, 7)]
    together = score_sequences(srnn, seqs, kl_form="analytic", max_frames=10 ** 6)
    for i, s in enumerate(seqs):
        alone = score_sequences(srnn, [s], kl_form="analytic")
        assert alone.elbo[0] == pytest.approx(together.elbo[i], rel=1e-5)


def test_evaluate_command_json(trained):
    result = CliRunner().invoke(srnn_cli, ["evaluate", str(trained.run.path), "--split", "valid", "--iwae", "2",
                                           "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output[result.output.index("{"):])
    assert report["split"] == "valid" and report["sequences"] == 6
    assert report["iwae"]["k"] == 2 and report["elbo"]["per_sequence"] < 0
    elbo, parts = report["elbo"]["total_frames"], report["reconstruction"]["total_frames"] - report["kl_term"]["total_frames"]
    assert elbo == pytest.approx(parts)


def test_active_units_count_posterior_means_that_move(trained):
    rng = np.random.default_rng(3)
    seqs = [random_roll(rng, n, 0.1) for n in (12, 20, 9)]
    idle = score_sequences(idle_latent_model(), seqs, active_units=True)  # q's mean is a constant there
    assert idle.active_units() == 0 and idle.posterior_mean_variance.max() < 1e-10
    assert idle.active_units(residual=True) == 0
    torch.manual_seed(0)
    busy = score_sequences(randomised(SRNN(tiny_config()), 5), seqs, active_units=True)
    assert busy.active_units() == int((busy.posterior_mean_variance > 0.01).sum()) > 0
    assert busy.active_units(residual=True) == int((busy.residual_mean_variance > 0.01).sum()) > 0


def test_residual_units_are_inactive_when_q_copies_a_moving_prior():
    srnn = idle_latent_model()
    with torch.no_grad():  # the prior mean now follows d_t; q's residual stays zero
        srnn.prior.mean_out.weight.normal_()
    rng = np.random.default_rng(4)
    scores = score_sequences(srnn, [random_roll(rng, n, 0.2) for n in (15, 25)], active_units=True)
    assert scores.active_units() > 0 and scores.active_units(residual=True) == 0


def test_first_input_x1_changes_only_through_u1(trained):
    seqs = [s[:20] for s in trained.valid]
    x1 = np.stack([s[0] for s in seqs])
    torch.manual_seed(0)
    zero = score_sequences(trained.model, seqs, kl_form="analytic")
    torch.manual_seed(0)
    assert not np.allclose(zero.elbo, score_sequences(trained.model, seqs, kl_form="analytic", first_inputs=x1).elbo)
    torch.manual_seed(0)  # explicit zero frames are the model's definition
    np.testing.assert_array_equal(zero.elbo, score_sequences(trained.model, seqs, kl_form="analytic",
                                                             first_inputs=np.zeros_like(x1)).elbo)
    blank = [np.vstack([np.zeros((1, 88), np.uint8), s]) for s in seqs]  # x_1 = 0: both conventions agree
    torch.manual_seed(0)
    a = score_sequences(trained.model, blank, kl_form="analytic")
    torch.manual_seed(0)
    np.testing.assert_allclose(a.elbo, score_sequences(trained.model, blank, kl_form="analytic",
                                                       first_inputs=np.zeros((len(blank), 88))).elbo)


def test_first_input_previous_reads_the_frames_stored_with_the_data(trained, tmp_path):
    """--first-input previous feeds the data file's first_inputs as u_1; the fingerprint ignores them, so a
    run accepts the same data with or without them. Stored frames equal to x_1 must score as --first-input x1."""
    import h5py

    run, data = str(trained.run.path), tmp_path / "with-previous.h5"
    data.write_bytes(open(trained.data.path, "rb").read())

    def score(kind):
        result = CliRunner().invoke(srnn_cli, ["evaluate", run, "--data", str(data), "--split", "test",
                                               "--first-input", kind, "--json"])
        return result.exit_code, result.output

    code, output = score("previous")  # the Bach file comes from MIDI: no frame before its sequences
    assert code != 0 and "with-previous.h5: test split: this split holds no frame before" in output
    assert "Traceback" not in output
    test = trained.data.split("test")
    with h5py.File(data, "a") as f:
        f["test"].create_dataset("first_inputs", data=np.stack([s[0] for s in test.sequences()]))
    elbos = {}
    for kind in ("zero", "x1", "previous"):
        code, output = score(kind)
        assert code == 0, output
        elbos[kind] = json.loads(output[output.index("{"):])["elbo"]["per_sequence"]
    assert elbos["previous"] == elbos["x1"] != elbos["zero"]


def test_scoring_flushes_denormals_and_restores_the_mode(monkeypatch):
    """Padded steps drive GRU states through denormal floats, which CPUs multiply many times slower."""
    from pyro_srnn import evaluate
    from pyro_srnn.numerics import _flushing

    seen = []
    original = evaluate.batch_scores
    monkeypatch.setattr(evaluate, "batch_scores", lambda *a, **k: seen.append(_flushing()) or original(*a, **k))
    torch.manual_seed(0)
    srnn = SRNN(tiny_config())
    rng = np.random.default_rng(0)
    before = _flushing()
    evaluate.score_sequences(srnn, [random_roll(rng, 30), random_roll(rng, 12)])
    assert seen and all(seen) and _flushing() == before


def test_flushing_reaches_every_thread_of_the_pool():
    """torch.set_flush_denormal sets the calling thread's mode only: inside denormals_flushed a product of
    denormals is flushed in every part the pool's threads compute, and after it none is."""
    from pyro_srnn.numerics import denormals_flushed

    if torch.get_num_threads() < 2:
        pytest.skip("needs an intra-op pool of two threads or more")
    x = torch.full((4_000_000,), 1 << 20, dtype=torch.int32).view(torch.float32)  # 1.5e-39, by its bits
    (x * 1.0).sum()  # the pool's threads exist before flushing is asked for, as in training
    parts = torch.get_num_threads()
    with denormals_flushed():
        inside = (x * 1.0).view(parts, -1)
    after = (x * 1.0).view(parts, -1)
    assert bool((inside == 0).all()), [int((part == 0).sum()) for part in inside]
    assert bool((after != 0).all())


def test_sequence_batches_rebuild_every_sequence_once():
    """Each sequence lands in exactly one batch, as its own frames behind u_1 (zero or given), within the
    frame budget unless it is longer than the budget alone."""
    rng = np.random.default_rng(3)
    lengths = [7, 30, 3, 12, 12, 45, 1, 20]
    seqs = [random_roll(rng, n, 0.2) for n in lengths]
    starts = (rng.random((len(seqs), 88)) < 0.3).astype(np.float32)
    seen = []
    model = SRNN(SRNNConfig(d=5, z=3, a=4, hidden=4))
    for group, batch in sequence_batches(seqs, model, max_frames=40, first_inputs=starts):
        assert len(group) == 1 or len(group) * max(lengths[i] for i in group) <= 40
        assert batch.state[0].shape == (len(group), 5) and batch.state[1].shape == (len(group), 3)
        for row, i in enumerate(group):
            n = lengths[i]
            np.testing.assert_array_equal(batch.x[row, :n].numpy(), seqs[i])
            assert batch.mask[row].sum() == n and bool(batch.mask[row, :n].all())
            np.testing.assert_array_equal(batch.u[row, 0].numpy(), starts[i])
            np.testing.assert_array_equal(batch.u[row, 1:n].numpy(), seqs[i][:-1])
        seen += group
    assert sorted(seen) == list(range(len(seqs)))
