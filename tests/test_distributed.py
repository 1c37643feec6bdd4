"""Data-parallel training: two CPU processes with gloo take the same step as one process on the whole batch."""
import json
import os
import socket
import subprocess
import sys

import torch
import torch.distributed
import torch.multiprocessing as mp

from data_prep.h5 import PianoRollFile
from pyro_srnn.batching import tbptt_chunks, to_batch
from pyro_srnn.train import Trainer
from tests.conftest import draw_means, tiny_config


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _one_step(trainer):
    x, u, mask = next(tbptt_chunks(trainer.epoch_streams(), trainer.config.seq_len))
    trainer.step(to_batch(x, u, mask, trainer.model.initial_state(len(x))), 1.0)
    return {k: v.clone() for k, v in trainer.model.state_dict().items()}


def _worker(rank, world, port, data_path, out_dir):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE=str(world), RANK=str(rank))
    draw_means()  # z at the posterior mean: one process and two, which draw their noise differently, agree exactly
    trainer = Trainer(tiny_config(), PianoRollFile(data_path), os.path.join(out_dir, "run"), "cpu")
    trainer.start()
    torch.save(_one_step(trainer), os.path.join(out_dir, f"rank{rank}.pt"))
    torch.distributed.destroy_process_group()


def test_two_processes_take_the_single_process_step(bach_file, tmp_path, posterior_mean_z):
    mp.spawn(_worker, args=(2, _free_port(), str(bach_file), str(tmp_path)), nprocs=2, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    single = Trainer(tiny_config(), PianoRollFile(bach_file), tmp_path / "single", "cpu")
    expected = _one_step(single)
    for name, value in expected.items():
        assert torch.equal(ranks[0][name], ranks[1][name]), name
        torch.testing.assert_close(ranks[0][name], value, rtol=1e-5, atol=1e-6, msg=name)
    assert any(not torch.equal(value, single_init) for value, single_init in
               zip(expected.values(), Trainer(tiny_config(), PianoRollFile(bach_file), tmp_path / "x").model.state_dict().values()))


def test_nproc_launch_trains_checkpoints_once_and_resumes(bach_file, tmp_path):
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "cli.main", "train", "--nproc", "2", "--data", str(bach_file), "--d", "6", "--a", "5",
           "--z", "3", "--hidden", "8", "--seq-len", "20", "--batch-size", "4", "--epochs", "2", "--device", "cpu",
           "--run-dir", str(run)]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [m["epoch"] for m in metrics] == [1, 2]
    assert json.loads((run / "config.json").read_text())["processes"] == 2
    ckpt = torch.load(run / "last.pt", weights_only=False)
    assert len(ckpt["rng"]) == 2 and ckpt["epoch"] == 2
    resumed = subprocess.run(cmd + ["--resume"], capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]  # both processes load their own random state
    assert [json.loads(x)["epoch"] for x in (run / "metrics.jsonl").read_text().splitlines()] == [1, 2]
    single = subprocess.run(cmd[:4] + cmd[6:] + ["--resume"], capture_output=True, text=True, timeout=300)
    assert single.returncode == 1 and "written by 2 process(es)" in single.stderr
