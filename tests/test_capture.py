"""The capture-ready training step (pyro_srnn.capture) is the eager step: on the CPU its static-buffer
function, run eagerly, gives the eager svi_step's losses, terms, gradient norms, carried states and parameters
for the same seed, with the temperature and learning rate changed between steps as inputs. On a GPU, the
same check of the captured graph is in tests/test_cuda.py."""
import pytest
import torch

from data_prep.h5 import PianoRollFile
from pyro_srnn.batching import make_streams, tbptt_chunks, to_batch
from pyro_srnn.capture import CapturedSteps, make_capturable, set_learning_rate
from pyro_srnn.evaluate import make_elbo
from pyro_srnn.model import SRNN
from pyro_srnn.step import make_optimizer, svi_step
from pyro_srnn.train import Trainer
from tests.conftest import tiny_config


def run_steps(config, streams, use_static: bool, schedule):
    torch.manual_seed(0)
    srnn = SRNN(config)
    optimizer = make_optimizer(srnn, config)
    static = CapturedSteps(srnn, optimizer, config, "cpu", capture=False)
    elbo = make_elbo(config.elbo)
    torch.manual_seed(1)  # the step's noise
    d, z = torch.zeros(len(streams), config.d), torch.zeros(len(streams), config.z)
    results = []
    for (x, u, mask), (temperature, lr) in zip(tbptt_chunks(streams, config.seq_len), schedule):
        batch = to_batch(x, u, mask, (d, z))
        set_learning_rate(optimizer, lr)
        if use_static:
            loss, terms, (d, z), norm = static(batch, temperature)
        else:
            loss, terms, (d, z), norm = svi_step(srnn, elbo, optimizer, config, batch, temperature)
        results.append((loss, *terms, norm, d.clone(), z.clone()))
    return results, [p.detach().clone() for p in srnn.parameters()]


@pytest.mark.parametrize("elbo", ["trace", "analytic"])
def test_the_static_step_is_the_eager_step(bach_file, elbo):
    config = tiny_config(elbo=elbo, seq_len=15)
    streams = make_streams(PianoRollFile(bach_file).split("train").sequences(), config.batch_size)
    schedule = [(0.2, 1e-3), (0.5, 1e-3), (0.9, 5e-4), (1.0, 2e-3), (1.0, 1e-3)]
    chunks = len(list(tbptt_chunks(streams, config.seq_len)))
    assert chunks >= len(schedule)  # every step of the schedule is taken
    eager, eager_params = run_steps(config, streams, False, schedule)
    static, static_params = run_steps(config, streams, True, schedule)
    assert len(eager) == len(static) == len(schedule)
    for e, s in zip(eager, static):
        assert s[:4] == pytest.approx(e[:4], rel=1e-5)  # loss, reconstruction, KL, gradient norm
        torch.testing.assert_close(s[4], e[4], rtol=1e-5, atol=1e-6)  # carried d_T
        torch.testing.assert_close(s[5], e[5], rtol=1e-5, atol=1e-6)  # carried z_T
    for pe, ps in zip(eager_params, static_params):
        torch.testing.assert_close(ps, pe, rtol=1e-5, atol=1e-6)
    assert eager[0][0] != eager[1][0]  # the steps differ: a comparison of something


def test_a_trainer_asked_to_capture_on_the_cpu_trains_eagerly_and_says_why(bach_file, tmp_path):
    trainer = Trainer(tiny_config(epochs=1), PianoRollFile(bach_file), tmp_path / "run", capture=True)
    assert trainer.captured is None and "needs a CUDA device" in trainer.capture_problem
    trainer.start()
    assert trainer.fit()[0]["train_elbo"] < 0


def test_adam_settings_switch_between_captured_and_eager_both_ways():
    param = torch.nn.Parameter(torch.ones(3))
    optimizer = torch.optim.Adam([param], lr=1e-3)
    param.grad = torch.ones(3)
    optimizer.step()
    make_capturable(optimizer, True, "cpu")
    group = optimizer.param_groups[0]
    assert torch.is_tensor(group["lr"]) and group["capturable"]
    set_learning_rate(optimizer, 5e-4)
    assert float(group["lr"]) == pytest.approx(5e-4)
    make_capturable(optimizer, False, "cpu")  # a checkpoint of a captured run, resumed eagerly
    assert group["lr"] == pytest.approx(5e-4) and not group["capturable"]
    optimizer.step()
    assert int(optimizer.state[param]["step"]) == 2
