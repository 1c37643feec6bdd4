"""On a GPU the model is the same model: the same ELBO, gradients and scores as on the CPU, and a run
started on a GPU continues on a CPU. Skipped where PyTorch sees no CUDA device."""
import json

import numpy as np
import pytest
import torch

from data_prep.h5 import PianoRollFile, Split
from data_prep.midi import SRNN_GRID
from data_prep.prep import Prepared
from pyro_srnn.batching import tbptt_chunks, to_batch
from pyro_srnn.evaluate import make_elbo, score_sequences
from pyro_srnn.model import SRNN
from pyro_srnn.train import Trainer
from tests.conftest import random_roll, tiny_config

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.fixture
def random_file(tmp_path):
    rng = np.random.default_rng(0)
    splits = {s: Split.from_sequences([random_roll(rng, frames=int(rng.integers(30, 60))) for _ in range(n)],
                                      [f"{s}{i}" for i in range(n)])
              for s, n in (("train", 8), ("valid", 3), ("test", 3))}
    path = tmp_path / "random.h5"
    Prepared("random", "srnn", SRNN_GRID, splits).write(path, command="tests")
    return path


@pytest.fixture
def mean_z_in_fp32(monkeypatch, posterior_mean_z):
    # z at the posterior mean: the two devices draw different noise, so compare the deterministic part;
    # and full fp32 in cuDNN's GRU (PyTorch lets it use TF32, 10-bit mantissas, by default)
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)


@pytest.mark.parametrize("kind", ["trace", "analytic"])
def test_loss_and_gradients_on_cuda_equal_cpu(random_file, mean_z_in_fp32, kind):
    config = tiny_config(d=12, a=10, z=4, hidden=16)
    torch.manual_seed(0)
    cpu = SRNN(config)
    gpu = SRNN(config)
    gpu.load_state_dict(cpu.state_dict())
    gpu.cuda()
    streams = np.stack([s[:30] for s in PianoRollFile(random_file).split("train").sequences()[:4]])
    x, u, mask = next(tbptt_chunks(streams, 30))
    grads = []
    for srnn, device in ((cpu, "cpu"), (gpu, "cuda")):
        batch = to_batch(x, u, mask, srnn.initial_state(len(x)), device=device)
        loss = srnn(batch, make_elbo(kind))
        loss.backward()
        grads.append((loss.item(), {k: p.grad.cpu() for k, p in srnn.named_parameters()}))
    assert grads[0][0] == pytest.approx(grads[1][0], rel=1e-5)
    for name, g in grads[0][1].items():
        torch.testing.assert_close(grads[1][1][name], g, rtol=1e-4, atol=1e-6, msg=name)


def test_scores_on_cuda_equal_cpu(random_file, mean_z_in_fp32):
    torch.manual_seed(0)
    srnn = SRNN(tiny_config())
    sequences = PianoRollFile(random_file).split("test").sequences()
    on_cpu = score_sequences(srnn, sequences, device="cpu").per_frame()
    on_gpu = score_sequences(srnn.cuda(), sequences, device="cuda").per_frame()
    for key, value in on_cpu.items():
        assert on_gpu[key] == pytest.approx(value, rel=1e-5), key


def test_run_started_on_cuda_resumes_on_cpu(random_file, tmp_path):
    data = PianoRollFile(random_file)
    first = Trainer(tiny_config(epochs=2), data, tmp_path / "run", "cuda")
    first.start()
    first.train_epoch()
    first.epoch = 1
    first._checkpoint(tmp_path / "run" / "last.pt")
    first._unlock()
    on_gpu = {k: v.cpu() for k, v in first.model.state_dict().items()}

    second = Trainer(tiny_config(epochs=2), data, tmp_path / "run", "cpu")
    second.start(resume=True)
    for name, value in second.model.state_dict().items():
        assert value.device.type == "cpu" and torch.equal(value, on_gpu[name]), name
    assert all(s.device.type == "cpu" for state in second.optimizer.state.values() for s in state.values()
               if torch.is_tensor(s))
    history = second.fit()
    assert [m["epoch"] for m in history] == [2] and np.isfinite(history[0]["valid_elbo"])
    assert json.loads((tmp_path / "run" / "config.json").read_text())["device"] == "cuda"


def test_a_captured_step_is_the_eager_step(random_file, monkeypatch):
    """The CUDA graph replays the eager step: the same losses, terms and parameters for the same seed, with the
    temperature and learning rate changing between replays, over chunks of two shapes (two graphs)."""
    from pyro_srnn.batching import make_streams
    from pyro_srnn.capture import CapturedSteps, make_capturable, set_learning_rate
    from pyro_srnn.step import make_optimizer, svi_step

    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", False)
    config = tiny_config(seq_len=25, elbo="analytic")
    streams = make_streams(PianoRollFile(random_file).split("train").sequences(), config.batch_size)

    def run(captured: bool):
        torch.manual_seed(0)
        srnn = SRNN(config).cuda()
        optimizer = make_optimizer(srnn, config)
        make_capturable(optimizer, captured, "cuda")
        steps = CapturedSteps(srnn, optimizer, config, torch.device("cuda"), capture=True) if captured else None
        elbo = make_elbo(config.elbo)
        torch.manual_seed(1)
        d, z = torch.zeros(len(streams), config.d).cuda(), torch.zeros(len(streams), config.z).cuda()
        losses = []
        for i, (x, u, mask) in enumerate(tbptt_chunks(streams, config.seq_len)):
            batch = to_batch(x, u, mask, (d, z), device="cuda")
            set_learning_rate(optimizer, 1e-3 / (1 + i))
            temperature = min(1.0, 0.2 + 0.2 * i)
            if captured:
                loss, terms, (d, z), _ = steps(batch, temperature)
            else:
                loss, terms, (d, z), _ = svi_step(srnn, elbo, optimizer, config, batch, temperature)
            losses.append((loss, *terms))
        return losses, [p.detach().cpu() for p in srnn.parameters()], steps

    eager, eager_params, _ = run(False)
    captured, captured_params, steps = run(True)
    assert len(steps.steps) == 2  # full chunks and the short last one
    assert captured == pytest.approx(eager, rel=1e-4)
    for a, b in zip(captured_params, eager_params):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_a_captured_run_trains_as_the_eager_run(random_file, tmp_path, monkeypatch):
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", False)
    runs = {}
    for captured in (False, True):
        trainer = Trainer(tiny_config(epochs=2), PianoRollFile(random_file), tmp_path / str(captured), "cuda",
                          capture=captured)
        assert (trainer.captured is not None) == captured
        trainer.start()
        runs[captured] = trainer.fit()
    for key in ("train_elbo", "train_kl", "valid_elbo"):
        assert [m.get(key) for m in runs[True]] == pytest.approx([m.get(key) for m in runs[False]], rel=1e-3)
    resumed = Trainer(tiny_config(epochs=3), PianoRollFile(random_file), tmp_path / "True", "cpu")  # eager, CPU
    with pytest.raises(Exception):
        resumed.start(resume=True)  # another configuration (epochs): refused before touching the optimiser
