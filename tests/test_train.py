"""The training recipe: TBPTT chunks and carried states, schedules, learning, exact resume, bad input."""
import dataclasses
import json
import math

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from cli.main import srnn as srnn_cli
from data_prep.h5 import PianoRollFile
from data_prep.sources import read_srnn_npz
from pyro_srnn.batching import make_streams, tbptt_chunks
from pyro_srnn.errors import RunBusy, SRNNError
from pyro_srnn.evaluate import score_sequences
from pyro_srnn.train import Hooks, Trainer, kl_temperature, learning_rate
from tests.conftest import tiny_config, tiny_tsbn_config


@pytest.mark.parametrize("name", ["jsb", "piano"])
def test_chunking_reproduces_reference_npz(source_dir, name):
    path = source_dir / "srnn_npz" / f"{name}_raw_batchsize16_seqlen100.npz"
    ref = np.load(path)
    for split in ("train", "valid"):
        streams = make_streams(read_srnn_npz(path)[split][0], 16)
        chunks = list(tbptt_chunks(streams, 100))
        assert len(chunks) * 16 == len(ref[f"x_{split}"])
        for i, (x, u, mask) in enumerate(chunks):
            assert mask.all()
            np.testing.assert_array_equal(x, ref[f"x_{split}"][i * 16:(i + 1) * 16])
            ref_u = ref[f"u_{split}"][i * 16:(i + 1) * 16].copy()
            if i == 0:  # the reference feeds each stream's first frame the end of another stream; we feed 0
                assert not u[:, 0].any()
                ref_u[:, 0] = 0
            np.testing.assert_array_equal(u, ref_u)


def test_carried_states_are_the_previous_chunk_of_the_same_stream(bach_file):
    trainer = Trainer(tiny_config(), PianoRollFile(bach_file), "unused")
    seen = []
    original = trainer.step

    def spy(batch, temperature):
        params = {k: v.clone() for k, v in trainer.model.state_dict().items()}
        loss, recon, carry = original(batch, temperature)
        seen.append((batch, params, carry))
        return loss, recon, carry

    trainer.step = spy
    trainer.train_epoch()
    assert len(seen) == trainer.batches_per_epoch >= 3
    assert not any(s.any() for s in seen[0][0].state)
    for (batch, params, carry), (next_batch, _, _) in zip(seen, seen[1:]):
        assert torch.equal(next_batch.state[0], carry[0]) and torch.equal(next_batch.state[1], carry[1])
        current = {k: v.clone() for k, v in trainer.model.state_dict().items()}
        trainer.model.load_state_dict(params)  # d_T as the GRU computed it before that step's update
        with torch.no_grad():
            d = trainer.model.forward_path(batch.u, batch.state[0])
        trainer.model.load_state_dict(current)
        torch.testing.assert_close(carry[0], d[:, -1])
        # and the stream really continues: chunk i+1's first input is chunk i's last frame
        assert torch.equal(next_batch.u[:, 0], batch.x[:, -1])


def test_schedules_follow_the_paper():
    paper = tiny_config(epochs=50)
    assert [learning_rate(paper, e * 10, 10) for e in (0, 19)] == [1e-3, 1e-3]
    assert learning_rate(paper, 200, 10) == pytest.approx(1e-3 / 1.2)
    assert learning_rate(paper, 499, 10) == pytest.approx(1e-3 / 1.2 ** 30)
    assert kl_temperature(paper, 0, 10) == pytest.approx(0.2)
    assert kl_temperature(paper, 100, 10) == pytest.approx(0.6)  # half of 20 epochs of 10 batches
    assert kl_temperature(paper, 200, 10) == kl_temperature(paper, 10 ** 6, 10) == 1.0
    short = tiny_config(epochs=10)  # 40% warm-up kept: 4 epochs
    assert kl_temperature(short, 20, 10) == pytest.approx(0.6)
    assert learning_rate(short, 39, 10) == 1e-3 and learning_rate(short, 40, 10) == pytest.approx(1e-3 / 1.2)
    fixed = tiny_config(epochs=10, schedule="fixed")  # the paper's 20 epochs whatever the length
    assert kl_temperature(fixed, 50, 10) == pytest.approx(0.4)
    assert learning_rate(fixed, 99, 10) == 1e-3


def test_training_raises_the_validation_elbo(bach_file, tmp_path):
    data = PianoRollFile(bach_file)
    trainer = Trainer(tiny_config(epochs=6, d=16, a=16, z=4, hidden=32), data, tmp_path / "run")
    trainer.start()
    torch.manual_seed(0)
    before = score_sequences(trainer.model, trainer.valid).per_frame()["per_sequence"]
    trainer.fit()
    metrics = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [m["epoch"] for m in metrics] == list(range(1, 7))
    assert metrics[-1]["valid_elbo"] > before + 5  # nats per frame: from about 88 log 2 to far better
    assert metrics[-1]["train_elbo"] > metrics[0]["train_elbo"]
    for key in ("train_reconstruction", "train_kl", "kl_temperature", "lr", "grad_norm", "frames_per_second"):
        assert all(math.isfinite(m[key]) for m in metrics)
    assert (tmp_path / "run" / "best.pt").exists() and (tmp_path / "run" / "last.pt").exists()


def test_training_on_the_importance_weighted_bound(bach_file, tmp_path):
    data = PianoRollFile(bach_file)
    trainer = Trainer(tiny_config(epochs=4, d=16, a=16, z=4, hidden=32, elbo="iwae:4"), data, tmp_path / "run")
    trainer.start()
    torch.manual_seed(0)
    before = score_sequences(trainer.model, trainer.valid).per_frame()["per_sequence"]
    metrics = trainer.fit()
    assert metrics[-1]["valid_elbo"] > before + 5
    # the loss is minus the (annealed) bound, which is above the particles' mean ELBO that training reports
    assert all(m["train_loss"] < -m["train_elbo"] for m in metrics)


class Interrupt(Exception):
    pass


NADE_RUN = {"emission": "nade", "nade_hidden": 5, "nade_pretrain": 12}


def _interrupted_and_resumed_like_a_full_run(config, data_file, tmp_path, crashing_hooks, resumes_at=0) -> Trainer:
    """A run interrupted by ``crashing_hooks`` and resumed ends with exactly the parameters of a run that was
    not interrupted; returns the resumed trainer (``.full``: the uninterrupted one)."""
    data = PianoRollFile(data_file)
    full = Trainer(config, data, tmp_path / "full")
    full.start()
    full.fit()
    broken = Trainer(config, data, tmp_path / "cut", hooks=crashing_hooks)
    broken.start()
    with pytest.raises(Interrupt):
        broken.fit()
    resumed = Trainer(config, data, tmp_path / "cut")
    resumed.start(resume=True)
    assert resumed.epoch == resumes_at  # from the last checkpoint, not from the start
    resumed.fit()
    for (name, a), b in zip(full.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), name
    resumed.full = full
    return resumed


@pytest.mark.parametrize("model", [{}, NADE_RUN, {"z": 0, **NADE_RUN}, "tsbn"])
def test_resume_after_interruption_matches_uninterrupted_run(bach_file, tmp_path, model):
    config = (tiny_tsbn_config(epochs=3, augment_transpose=3) if model == "tsbn"
              else tiny_config(epochs=3, augment_transpose=3, **model))
    steps = {"n": 0}

    def crash(frames, metrics):
        steps["n"] += 1
        if steps["n"] == batches + 2:  # in the middle of the second epoch
            raise Interrupt

    batches = Trainer(config, PianoRollFile(bach_file), tmp_path / "count").batches_per_epoch
    _interrupted_and_resumed_like_a_full_run(config, bach_file, tmp_path, Hooks(step=crash), resumes_at=1)
    lines = (tmp_path / "cut" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["epoch"] for x in lines] == [1, 2, 3]


def test_a_run_killed_while_pretraining_its_nade_pretrains_again_the_same_way(bach_file, tmp_path):
    config = tiny_config(epochs=1, **NADE_RUN)

    def crash(log_likelihood):
        raise Interrupt

    full = _interrupted_and_resumed_like_a_full_run(config, bach_file, tmp_path, Hooks(pretrain_step=crash)).full
    data = PianoRollFile(bach_file)
    plain = Trainer(dataclasses.replace(config, nade_pretrain=0), data, tmp_path / "plain")
    plain.start()
    plain.fit()
    assert not torch.equal(plain.model.emission.W, full.model.emission.W)  # the pretraining did act


def _cli(args, cwd):
    runner = CliRunner()
    with runner.isolated_filesystem(temp_dir=cwd):
        return runner.invoke(srnn_cli, args)


def test_bad_input_gives_one_line_errors(bach_file, tmp_path):
    runner = CliRunner()
    cases = [
        (["train", "--dataset", "nowhere"], "data/nowhere.h5: no such data file"),
        (["train", "--data", str(tmp_path / "bad.h5")], "not an HDF5 file"),
        (["train", "--data", str(bach_file), "--z", "-1"], "Invalid value for '--z'"),
        (["train", "--data", str(bach_file), "--z", "0", "--filtering"], "filtering and iwae:K do not apply"),
        (["train", "--data", str(bach_file), "--augment", "rotate"], "--augment"),
    ]
    (tmp_path / "bad.h5").write_text("nope")
    for args, message in cases:
        result = runner.invoke(srnn_cli, args)
        assert result.exit_code != 0, args
        assert message in result.output, (args, result.output)
        assert "Traceback" not in result.output


def test_a_dataset_is_read_in_the_variant_named(bach_file, tmp_path, monkeypatch):
    import shutil

    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    tiny = ["--d", "6", "--a", "5", "--z", "3", "--hidden", "8", "--epochs", "1", "--seq-len", "20",
            "--batch-size", "4"]
    missing = runner.invoke(srnn_cli, ["train", "--dataset", "jsb", "--variant", "srnn", *tiny])
    assert missing.exit_code == 1
    assert "data/jsb-srnn.h5: no such data file; prepare it with `srnn prep --dataset jsb --variant srnn`" \
        in missing.output
    (tmp_path / "data").mkdir()
    shutil.copy(bach_file, tmp_path / "data" / "jsb-srnn.h5")  # only the srnn variant exists
    assert "prepare it with `srnn prep --dataset jsb`" in runner.invoke(srnn_cli, ["train", "--dataset", "jsb",
                                                                                     *tiny]).output
    trained = runner.invoke(srnn_cli, ["train", "--dataset", "jsb", "--variant", "srnn", *tiny, "--run-dir", "run"])
    assert trained.exit_code == 0, trained.output
    assert json.loads((tmp_path / "run" / "config.json").read_text())["data"] == str(tmp_path / "data" / "jsb-srnn.h5")
    scored = runner.invoke(srnn_cli, ["evaluate", "run", "--dataset", "jsb", "--variant", "srnn", "--json"])
    assert scored.exit_code == 0, scored.output
    both = runner.invoke(srnn_cli, ["evaluate", "run", "--dataset", "jsb", "--data", "data/jsb-srnn.h5"])
    assert both.exit_code == 1 and "not both" in both.output


def test_resume_with_another_configuration_is_refused(bach_file, tmp_path):
    runner = CliRunner()
    run = str(tmp_path / "run")
    base = ["train", "--data", str(bach_file), "--d", "6", "--a", "5", "--z", "3", "--hidden", "8",
            "--epochs", "1", "--seq-len", "20", "--batch-size", "4", "--run-dir", run]
    first = runner.invoke(srnn_cli, base)
    assert first.exit_code == 0, first.output
    again = runner.invoke(srnn_cli, base)
    assert again.exit_code == 1 and "--resume" in again.output
    other = runner.invoke(srnn_cli, base[:8] + ["4"] + base[9:] + ["--resume"])  # --z 3 -> --z 4
    assert other.exit_code == 1 and "another configuration (differs in z)" in other.output
    (tmp_path / "run" / "last.pt").write_bytes(b"garbage")
    broken = runner.invoke(srnn_cli, ["evaluate", run + "/last.pt"])
    assert broken.exit_code == 1 and "unreadable checkpoint" in broken.output


def test_nan_loss_stops_with_message_and_keeps_checkpoints(bach_file, tmp_path):
    data = PianoRollFile(bach_file)
    trainer = Trainer(tiny_config(epochs=2), data, tmp_path / "run")
    trainer.start()
    trainer.config.epochs = 1
    trainer.fit()
    trainer.config.epochs = 2
    before = (tmp_path / "run" / "last.pt").read_bytes()
    with torch.no_grad():
        trainer.model.emission.out.bias.fill_(float("nan"))
    with pytest.raises(SRNNError, match=r"diverged.*epoch 2, step 1"):
        trainer.fit()
    assert (tmp_path / "run" / "last.pt").read_bytes() == before


def test_a_run_directory_is_used_by_one_training_at_a_time(bach_file, tmp_path):
    data = PianoRollFile(bach_file)
    first = Trainer(tiny_config(), data, tmp_path / "run")
    first.start()
    second = Trainer(tiny_config(), data, tmp_path / "run")
    with pytest.raises(RunBusy, match="another process is training"):
        second.start(resume=True)
    command = ["train", "--data", str(bach_file), "--run-dir", str(tmp_path / "run"), "--resume", "--epochs", "1"]
    busy = CliRunner().invoke(srnn_cli, command)
    assert busy.exit_code == RunBusy.EXIT_CODE and "another process is training" in busy.output


def test_resume_before_the_first_checkpoint_starts_the_run(bach_file, tmp_path):
    data = PianoRollFile(bach_file)
    config = tiny_config(epochs=1)
    killed = Trainer(config, data, tmp_path / "run")
    killed.start()  # killed during its first epoch: config.json, no last.pt
    killed._unlock()
    again = Trainer(config, data, tmp_path / "run")
    again.start(resume=True)
    assert again.epoch == 0
    again.fit()
    assert (tmp_path / "run" / "last.pt").exists()


def test_an_update_uses_the_gradient_rescaled_to_norm_1_then_clipped_element_wise():
    from pyro_srnn.model import SRNN
    from pyro_srnn.step import make_optimizer, svi_step
    from pyro_srnn.evaluate import make_elbo
    from tests.test_model import randomised, tiny_batch

    torch.manual_seed(0)
    config = tiny_config()
    srnn = randomised(SRNN(config), seed=1)
    batch = tiny_batch((9, 9))
    elbo = make_elbo("trace")
    torch.manual_seed(5)
    raw = torch.autograd.grad(srnn(batch, elbo, 0.5), list(srnn.parameters()))
    norm = torch.sqrt(sum((g ** 2).sum() for g in raw))
    assert norm > 2 * config.max_grad_norm  # the rescaling matters

    seen = {}

    class Spy(torch.optim.Adam):
        def step(self, closure=None):
            seen["grads"] = [p.grad.clone() for p in srnn.parameters()]
            return super().step(closure)

    optimizer = make_optimizer(srnn, config)
    optimizer.__class__ = Spy
    torch.manual_seed(5)
    *_, grad_norm = svi_step(srnn, elbo, optimizer, config, batch, 0.5)
    assert grad_norm == pytest.approx(float(norm), rel=1e-5)
    for got, g in zip(seen["grads"], raw):
        expected = (g * config.max_grad_norm / norm).clamp(-config.grad_clip_value, config.grad_clip_value)
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-7)


def test_weight_decay_shrinks_every_weight_by_lr_times_decay_besides_the_adam_step():
    """Decoupled (AdamW) decay: the same update with and without it differs by exactly -lr * decay * weight."""
    from pyro_srnn.model import SRNN
    from pyro_srnn.step import make_optimizer, svi_step
    from pyro_srnn.evaluate import make_elbo
    from tests.test_model import randomised, tiny_batch

    batch, elbo = tiny_batch((9, 9)), make_elbo("trace")
    before = randomised(SRNN(tiny_config()), seed=1).state_dict()
    after = {}
    for decay in (0.0, 0.5):
        config = tiny_config(lr=0.01, weight_decay=decay)
        srnn = SRNN(config)
        srnn.load_state_dict(before)
        torch.manual_seed(5)
        svi_step(srnn, elbo, make_optimizer(srnn, config), config, batch, 0.5)
        after[decay] = srnn.state_dict()
    for name, weight in before.items():
        torch.testing.assert_close(after[0.5][name] - after[0.0][name], -0.01 * 0.5 * weight, rtol=1e-4, atol=1e-7)


def test_the_kl_temperature_follows_the_global_step_across_epochs(bach_file, tmp_path):
    config = tiny_config(epochs=3, schedule="fixed", valid_every=3)
    trainer = Trainer(config, PianoRollFile(bach_file), tmp_path / "run")
    temperatures = []
    original = trainer.step

    def spy(batch, temperature):
        temperatures.append(temperature)
        return original(batch, temperature)

    trainer.step = spy
    trainer.start()
    metrics = trainer.fit()
    n = trainer.batches_per_epoch
    assert temperatures == pytest.approx([kl_temperature(config, step, n) for step in range(3 * n)])
    assert [m["kl_temperature"] for m in metrics] == pytest.approx(
        [kl_temperature(config, (e + 1) * n - 1, n) for e in range(3)])
    assert temperatures[n] > temperatures[n - 1] > temperatures[0]  # rises within and across epochs


def test_the_guide_returns_its_last_d_and_sampled_z_for_the_next_chunk():
    from pyro import poutine

    from pyro_srnn.model import SRNN
    from tests.test_model import randomised, tiny_batch

    torch.manual_seed(0)
    srnn = randomised(SRNN(tiny_config()))
    batch = tiny_batch((6, 6))
    batch.state[1].normal_()
    trace = poutine.trace(srnn.guide).get_trace(batch)
    d_last, z_last = trace.nodes["_RETURN"]["value"]
    assert torch.equal(z_last, trace.nodes[f"z_{batch.steps}"]["value"])
    assert not torch.equal(z_last, batch.state[1])
    torch.testing.assert_close(d_last, srnn.forward_path(batch.u, batch.state[0])[:, -1])


def test_early_stopping_after_patience_validations_without_a_new_best(bach_file, tmp_path):
    from pyro_srnn.runs import RunDir

    scores = iter([-5.0, -4.0, -4.5, -4.2, -3.0])  # best at epoch 2, then two worse ones

    def make(run_dir):
        trainer = Trainer(tiny_config(epochs=5, patience=2), PianoRollFile(bach_file), run_dir)
        trainer.validate = lambda: next(scores)
        return trainer

    trainer = make(tmp_path / "run")
    trainer.start()
    metrics = trainer.fit()
    assert [m["epoch"] for m in metrics] == [1, 2, 3, 4] and metrics[-1]["stopped_early"]
    assert torch.load(tmp_path / "run" / "best.pt", weights_only=True)["epoch"] == 2
    assert RunDir(tmp_path / "run").metrics()[-1] == metrics[-1]  # the record on disk says why it ended
    again = make(tmp_path / "run")
    again.start(resume=True)
    assert again.fit() == []  # a resumed run that stopped early stays stopped


def test_a_run_of_n_updates_follows_the_paper_schedule_with_an_epoch_of_n_over_50_updates(bach_file, tmp_path):
    from pyro_srnn.config import PAPER_EPOCHS

    config = tiny_config(updates=100, valid_every=4)
    trainer = Trainer(config, PianoRollFile(bach_file), tmp_path / "run")
    n = trainer.batches_per_epoch
    assert trainer.config.epochs == -(-100 // n)  # as many passes as 100 updates need
    seen = []
    original = trainer.step

    def spy(batch, temperature):
        seen.append((trainer.optimizer.param_groups[0]["lr"], temperature))
        return original(batch, temperature)

    trainer.step = spy
    trainer.start()
    metrics = trainer.fit()
    assert trainer.step_count == len(seen) == 100
    per_epoch = 100 / PAPER_EPOCHS  # two updates per epoch of the paper's schedule
    # KL warm-up over the paper's 20 epochs (40 updates here), lr constant for 20 of them, then / 1.2 per epoch
    for step, (lr, temperature) in enumerate(seen):
        epoch = int(step // per_epoch)
        assert temperature == pytest.approx(min(1.0, 0.2 + 0.8 * step / (20 * per_epoch)))
        assert lr == pytest.approx(1e-3 / 1.2 ** max(0, epoch + 1 - 20))
    assert seen[-1][0] == pytest.approx(1e-3 / 1.2 ** 30)
    assert metrics[-1]["epoch"] == trainer.config.epochs and "valid_elbo" in metrics[-1]
    # the resumed record matches: --updates is part of the configuration
    again = Trainer(config, PianoRollFile(bach_file), tmp_path / "run")
    again.start(resume=True)
    assert again.fit() == [] and again.step_count == 100


def test_replicate_lane_in_a_fresh_folder_scores_the_new_run_and_shows_it_beside_the_record(bach_file, tmp_path):
    """As in a fresh clone: no runs/, and a recorded test.json from an earlier run of the lane."""
    import os
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    (tmp_path / "scripts").mkdir()
    for script in ("replicate.sh", "results.py"):
        shutil.copy(root / "scripts" / script, tmp_path / "scripts" / script)
    (tmp_path / "data").mkdir()
    shutil.copy(bach_file, tmp_path / "data" / "bach.h5")
    recorded = tmp_path / "docs" / "runs" / "smoke"
    recorded.mkdir(parents=True)
    (recorded / "test.json").write_text(json.dumps({"elbo": {"total_frames": -99.0, "per_sequence": -99.0}}))
    env = {**os.environ, "SRNN": str(Path(sys.executable).parent / "srnn"), "PYTHON": sys.executable}
    done = subprocess.run(["bash", "scripts/replicate.sh", "smoke"], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    new = json.loads((tmp_path / "runs" / "smoke" / "test.json").read_text())
    assert json.loads((recorded / "test.json").read_text()) == new  # no recorded score is left beside new metrics
    assert (recorded / "metrics.jsonl").read_text() == (tmp_path / "runs" / "smoke" / "metrics.jsonl").read_text()
    row = next(line for line in done.stdout.splitlines() if line.startswith("elbo.total_frames"))
    before, after, change = (float(v) for v in row.split()[1:])
    assert before == -99.0 and after == pytest.approx(new["elbo"]["total_frames"], abs=1e-4)
    assert change == pytest.approx(after - before, abs=2e-4)
    assert "done smoke" in done.stdout


def test_train_config_trains_the_recorded_configuration_on_its_own_data(bach_file, tmp_path, monkeypatch):
    import shutil

    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    shutil.copy(bach_file, tmp_path / "data" / "bach.h5")
    runner = CliRunner()
    first = runner.invoke(srnn_cli, ["train", "--dataset", "bach", "--d", "6", "--a", "5", "--z", "3", "--hidden", "8",
                                     "--epochs", "1", "--seq-len", "20", "--batch-size", "4", "--lr", "2e-3",
                                     "--run-dir", "first"])
    assert first.exit_code == 0, first.output
    again = runner.invoke(srnn_cli, ["train", "--config", "first/config.json", "--run-dir", "again"])
    assert again.exit_code == 0, again.output
    best = max(json.loads(line)["valid_elbo"] for line in (tmp_path / "first" / "metrics.jsonl").read_text().splitlines())
    assert f"recorded in first: {best:.4f}; new - recorded: +0.0000" in again.output  # the same run again
    records = [json.loads((tmp_path / run / "config.json").read_text()) for run in ("first", "again")]
    assert records[0]["config"] == records[1]["config"]
    assert records[0]["data_fingerprint"] == records[1]["data_fingerprint"]
    # the same update from the same start: the two runs' metrics agree
    metrics = [json.loads((tmp_path / run / "metrics.jsonl").read_text().splitlines()[0]) for run in ("first", "again")]
    assert metrics[0]["train_elbo"] == pytest.approx(metrics[1]["train_elbo"], rel=1e-6)
    changed = runner.invoke(srnn_cli, ["train", "--config", "first/config.json", "--z", "4", "--run-dir", "z4"])
    assert changed.exit_code == 0 and json.loads((tmp_path / "z4" / "config.json").read_text())["config"]["z"] == 4
    other = data_with_one_frame_changed(bach_file, tmp_path / "data" / "bach.h5")  # the file --config reads
    refused = runner.invoke(srnn_cli, ["train", "--config", "first/config.json", "--run-dir", "other"])
    assert refused.exit_code == 1 and "data/bach.h5: not the data first/config.json was trained on" in refused.output
    assert not (tmp_path / "other").exists()
    assert runner.invoke(srnn_cli, ["train", "--config", "first/config.json", "--data", str(other),
                                    "--run-dir", "anyway"]).exit_code == 0


def data_with_one_frame_changed(source, target):
    import shutil

    import h5py

    shutil.copy(source, target)
    with h5py.File(target, "r+") as f:
        f["train/rolls"][0, 40] = 1 - f["train/rolls"][0, 40]
    return target
