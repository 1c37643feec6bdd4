"""Training: the paper's recipe (docs/MODEL.md, R1-R7) over a run directory that survives interruption.

The run directory's layout is :class:`pyro_srnn.runs.RunDir`'s. Checkpoints carry the optimiser and every
random state, so a resumed run ends with exactly the parameters of an uninterrupted one; they hold only
tensors, numbers, strings, lists and dicts, and are read with ``weights_only=True``, so loading a file never
runs code.
"""
from __future__ import annotations

import math
import dataclasses
import random
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyro
import torch

from data_prep.h5 import PianoRollFile

from .checkpoint import CHECKPOINT_FORMAT, atomic_save, load_checkpoint
from .capture import CapturedSteps, capture_problem, make_capturable, set_learning_rate
from .batching import make_streams, n_chunks, tbptt_chunks, to_batch, transpose_keys
from .config import SRNNConfig
from .errors import RunBusy, SRNNError, TrainingDiverged
from . import distributed
from .evaluate import make_elbo, score_sequences
from .numerics import denormals_flushed
from .models import build_model
from .runs import RunDir, check_data, data_record
from .step import make_optimizer, svi_step

def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise SRNNError("--device cuda: no CUDA device is available")
    return torch.device(device)


def kl_temperature(config: SRNNConfig, step: int, batches_per_epoch: int) -> float:
    """Linear per batch from kl_start to 1 over the (scaled) warm-up epochs, then 1."""
    warmup = config.effective_kl_anneal_epochs * config.schedule_epoch_updates(batches_per_epoch)
    if warmup <= 0:
        return 1.0
    return min(1.0, config.kl_start + (1.0 - config.kl_start) * step / warmup)


def learning_rate(config: SRNNConfig, step: int, batches_per_epoch: int) -> float:
    """Constant for the (scaled) first epochs, then divided by lr_decay every epoch; ``step`` from 0."""
    epoch = int(step // config.schedule_epoch_updates(batches_per_epoch))
    decays = max(0, epoch + 1 - math.ceil(config.effective_lr_constant_epochs))
    return config.lr / config.lr_decay ** decays


# ----------------------------------------------------------------------------- checkpoints


def _rng_state(np_rng: np.random.Generator) -> dict:
    state = {"torch": torch.get_rng_state(), "numpy": np_rng.bit_generator.state, "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict, np_rng: np.random.Generator):
    torch.set_rng_state(state["torch"])
    np_rng.bit_generator.state = state["numpy"]
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# ----------------------------------------------------------------------------- the loop


@dataclass
class Hooks:
    """What the command line shows while training runs; all optional."""

    epoch_start: callable = None  # (epoch, n_batches)
    step: callable = None  # (frames, metrics dict)
    epoch_end: callable = None  # (metrics dict)
    validation_start: callable = None  # (n_frames)
    validation_step: callable = None  # (frames)
    pretrain_start: callable = None  # (updates)
    pretrain_step: callable = None  # (log-likelihood per frame)


class Trainer:
    def __init__(self, config: SRNNConfig, data: PianoRollFile, run_dir, device="cpu", hooks: Hooks | None = None,
                 capture: bool = False):
        """``capture``: the training step as a CUDA graph (pyro_srnn.capture); where that is not possible the
        step stays eager and ``capture_problem`` says why."""
        self.config, self.data, self.run = config, data, RunDir(run_dir)
        self.device = distributed.process_device(resolve_device(device) if isinstance(device, str) else device)
        self.hooks = hooks or Hooks()
        self.rank, self.world = distributed.rank_and_world(self.device)
        if len(data.split("train")) == 0:
            raise SRNNError(f"{data.path}: holds no training pieces (prepared with --split all-test, for scoring)")
        if config.batch_size % self.world:
            raise SRNNError(f"--batch-size {config.batch_size} streams cannot be split over {self.world} processes")
        train_frames = int(data.split("train").lengths.sum())
        if config.batch_size > train_frames:
            raise SRNNError(f"--batch-size {config.batch_size}: more streams than the {train_frames} training frames "
                            f"of {data.path}")
        from .memory import check_fits

        check_fits([config], device=self.device)
        torch.manual_seed(config.seed)  # the same initial parameters on every process
        pyro.clear_param_store()
        self.model = build_model(config).to(self.device)
        torch.manual_seed(config.seed + self.rank)  # but each process its own noise
        random.seed(config.seed)
        self.np_rng = np.random.default_rng(config.seed)  # shared: augmentation shifts are drawn for all streams
        self.parallel = torch.nn.parallel.DistributedDataParallel(self.model) if self.world > 1 else None
        self.optimizer = make_optimizer(self.model, config)
        self.capture_problem = capture_problem(self.device, self.world, config) if capture else None
        self.captured = CapturedSteps(self.model, self.optimizer, config, self.device) \
            if capture and self.capture_problem is None else None
        make_capturable(self.optimizer, self.captured is not None, self.device)
        self.elbo = make_elbo(config.elbo, config.free_bits)
        self.streams = make_streams(data.split("train").sequences(), config.batch_size)
        per_process = config.batch_size // self.world
        self.my_streams = slice(self.rank * per_process, (self.rank + 1) * per_process)
        self.valid = data.split("valid").sequences()
        self.batches_per_epoch = n_chunks(self.streams.shape[1], config.seq_len)
        if config.updates:  # the run is as many passes over the data as the updates need, the last one cut short
            self.config = config = dataclasses.replace(config, epochs=math.ceil(config.updates / self.batches_per_epoch))
        self.epoch, self.step_count, self.best_valid = 0, 0, -math.inf
        self.stale_validations = 0  # validations since the best one, for early stopping

    # -- run directory

    def start(self, resume: bool = False):
        """Create the run directory, or with ``resume`` continue from its last checkpoint."""
        self._made_folder = not self.run.path.exists()
        self._made_record = False
        try:
            self.run.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise SRNNError(f"{self.run.path}: cannot create the run directory ({exc.strerror})") from None
        try:
            if self.rank == 0:
                self._lock()
            self._start(resume)
        except BaseException:
            self._abandon()
            raise

    def _abandon(self):
        """After a failure: a run this process began that has no checkpoint yet holds nothing to resume, so
        what it wrote goes (a corrected command may then use the same --run-dir); a run with a checkpoint
        is kept as it is."""
        self._unlock()
        if self.rank > 0 or not self._made_record or self.run.last.exists():
            return
        for path in (self.run.config_path, self.run.metrics_path, self.run.path / RunDir.LOCK):
            try:
                path.unlink()
            except OSError:
                pass
        if self._made_folder:
            try:
                self.run.path.rmdir()  # only when empty
            except OSError:
                pass

    def _start(self, resume: bool):
        run = self.run
        self.data_fingerprint = self.data.fingerprint()
        rank_zero = self.rank == 0
        if rank_zero:
            run.remove_stale_temporaries()
        if resume and run.last.exists():
            record = run.record()
            saved = SRNNConfig.from_dict(record["config"]).to_dict()
            if saved != self.config.to_dict():
                diff = sorted(k for k in saved if saved.get(k) != self.config.to_dict().get(k))
                raise SRNNError(f"{run.last}: checkpoint of another configuration (differs in {', '.join(diff)}); "
                                "resume with the same options or use another --run-dir")
            check_data(record.get("data_fingerprint"), self.data, run.path)
            ckpt = load_checkpoint(run.last)
            if not isinstance(ckpt.get("rng"), list) or not ckpt["rng"]:
                raise SRNNError(f"{run.last}: damaged checkpoint: its rng states are missing")
            if len(ckpt["rng"]) != self.world:
                raise SRNNError(f"{run.last}: written by {len(ckpt['rng'])} process(es); resume with as many")
            try:
                self.model.load_state_dict(ckpt["model"])
                self.optimizer.load_state_dict(ckpt["optimizer"])
                make_capturable(self.optimizer, self.captured is not None, self.device)  # whichever way it was saved
                self.epoch, self.step_count, self.best_valid = (int(ckpt["epoch"]), int(ckpt["step"]),
                                                                float(ckpt["best_valid"]))
                self.stale_validations = int(ckpt.get("stale_validations", 0))
                _set_rng_state(ckpt["rng"][self.rank], self.np_rng)
            except (KeyError, TypeError, ValueError, RuntimeError, IndexError) as exc:
                field = exc.args[0] if isinstance(exc, KeyError) else str(exc).splitlines()[0][:120]
                raise SRNNError(f"{run.last}: damaged checkpoint: cannot resume from it ({field})") from None
            if rank_zero:
                if not run.config_path.is_file():
                    run.write_record(self.record())
                run.truncate_metrics(self.epoch)
            return
        if not resume and run.holds_run():  # resume before a first checkpoint starts anew
            raise SRNNError(f"{run.path}: holds a run already; pass --resume to continue it or choose "
                            "another --run-dir")
        if resume and run.config_path.is_file():  # killed before its first checkpoint: only its data must agree
            check_data(run.record().get("data_fingerprint"), self.data, run.path)
        distributed.barrier(self.world)  # every process has looked before rank 0 writes
        if not rank_zero:
            return
        self._made_record = not run.config_path.exists()
        run.write_record(self.record())
        run.start_metrics()

    def record(self) -> dict:
        """What config.json holds, and every checkpoint with it."""
        return {"config": self.config.to_dict(), **data_record(self.data.path, self.run.path),
                "data_fingerprint": self.data_fingerprint,
                "dataset": self.data.dataset, "grid": self.data.grid.__dict__, "tempo_bpm": self.data.tempo_bpm,
                "device": str(self.device), "processes": self.world}

    def _lock(self):
        """Hold the run directory for this process's lifetime: two trainings in one directory would
        interleave their checkpoints and metrics."""
        import fcntl

        self._lock_file = open(self.run.path / RunDir.LOCK, "w")
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunBusy(f"{self.run.path}: another process is training in this run directory") from None

    def _unlock(self):
        if getattr(self, "_lock_file", None):
            self._lock_file.close()
            self._lock_file = None

    def _checkpoint(self, path: Path):
        """Written by rank 0 only, with every process's random state."""
        rng_states = distributed.gather_objects(_rng_state(self.np_rng), self.world)
        if self.rank > 0:
            return
        atomic_save({**self.record(), "format": CHECKPOINT_FORMAT, "model": self.model.state_dict(),
                     "optimizer": self.optimizer.state_dict(), "epoch": self.epoch, "step": self.step_count,
                     "best_valid": self.best_valid, "stale_validations": self.stale_validations,
                     "rng": rng_states}, path)

    # -- training

    @denormals_flushed()
    def fit(self) -> list:
        """Train the remaining epochs; returns this call's per-epoch metrics. Releases the run directory
        when it ends, however it ends."""
        try:
            return self._fit()
        except BaseException:
            self._abandon()
            raise
        finally:
            self._unlock()

    def _fit(self) -> list:
        history = []
        if self.step_count == 0:  # before the first checkpoint, so a run killed here pretrains again, the same way
            if self.model.pretrain_updates and self.hooks.pretrain_start:
                self.hooks.pretrain_start(self.model.pretrain_updates)
            self.pretrain_log_likelihood = self.model.pretrain(self.data.split("train").rolls, self.hooks.pretrain_step)
        while self.epoch < self.config.epochs and not self.stopped_early:
            metrics = self.train_epoch()
            self.epoch += 1
            metrics["epoch"] = self.epoch
            if self.epoch % self.config.valid_every == 0 or self.epoch == self.config.epochs:
                metrics["valid_elbo"] = distributed.broadcast_object(self.validate() if self.rank == 0 else None,
                                                                     self.world)
                if metrics["valid_elbo"] > self.best_valid:
                    self.best_valid, self.stale_validations = metrics["valid_elbo"], 0
                    self._checkpoint(self.run.best)
                else:
                    self.stale_validations += 1
                if self.stopped_early:  # best.pt keeps the best model
                    metrics["stopped_early"] = True
            if self.rank == 0:
                self.run.append_metrics(metrics)
            self._checkpoint(self.run.last)
            history.append(metrics)
            if self.hooks.epoch_end:
                self.hooks.epoch_end(metrics)
        return history

    @property
    def stopped_early(self) -> bool:
        """``patience`` validations in a row did not beat the best one."""
        return bool(self.config.patience) and self.stale_validations >= self.config.patience

    def epoch_streams(self) -> np.ndarray:
        """The training streams of this epoch, each transposed by its own random shift when augmenting."""
        r = self.config.augment_transpose
        if not r:
            return self.streams[self.my_streams]
        shifts = self.np_rng.integers(-r, r + 1, size=len(self.streams))
        return transpose_keys(self.streams[self.my_streams], shifts[self.my_streams])

    def train_epoch(self) -> dict:
        c = self.config
        self.model.train()
        if self.hooks.epoch_start:
            self.hooks.epoch_start(self.epoch, self.batches_per_epoch)
        streams = self.epoch_streams()
        carried = self.model.initial_state(len(streams), self.device)
        totals = {"loss": 0.0, "reconstruction": 0.0, "kl": 0.0, "grad_norm": 0.0, "frames": 0}
        started = time.perf_counter()
        steps = 0
        for i, (x, u, mask) in enumerate(tbptt_chunks(streams, c.seq_len)):
            if c.updates and self.step_count >= c.updates:
                break
            batch = to_batch(x, u, mask, carried, device=self.device)
            lr = learning_rate(c, self.step_count, self.batches_per_epoch)
            set_learning_rate(self.optimizer, lr)
            temperature = kl_temperature(c, self.step_count, self.batches_per_epoch)
            loss, (reconstruction, kl), carried = self.step(batch, temperature)
            if not (math.isfinite(loss) and math.isfinite(self.last_grad_norm)):
                kept = (f"{self.run.path} keeps the checkpoints of epoch {self.epoch}" if self.run.last.exists()
                        else "no checkpoint had been written yet")
                raise TrainingDiverged(f"training diverged: the loss became {loss} (gradient norm "
                                       f"{self.last_grad_norm}) at epoch {self.epoch + 1}, step {i + 1}; {kept}")
            frames = int(mask.sum())
            totals["loss"] += loss * frames
            totals["reconstruction"] += reconstruction
            totals["kl"] += kl
            totals["grad_norm"] += self.last_grad_norm
            totals["frames"] += frames
            self.step_count += 1
            steps += 1
            if self.hooks.step:
                n = totals["frames"]
                self.hooks.step(frames, {"elbo": (totals["reconstruction"] - totals["kl"]) / n, "kl": totals["kl"] / n,
                                         "temperature": temperature})
        seconds = time.perf_counter() - started
        keys = ("loss", "reconstruction", "kl", "frames")
        totals.update(zip(keys, distributed.sum_over_processes([totals[k] for k in keys], self.world)))
        n = totals["frames"]
        return {"train_elbo": (totals["reconstruction"] - totals["kl"]) / n,
                "train_reconstruction": totals["reconstruction"] / n, "train_kl": totals["kl"] / n,
                "train_loss": totals["loss"] / n, "kl_temperature": temperature, "lr": lr,
                "grad_norm": totals["grad_norm"] / steps, "frames_per_second": n / seconds,
                "seconds": seconds}

    def step(self, batch, temperature: float):
        """One update; returns the loss per frame, (reconstruction, KL) summed over the batch, the state to carry."""
        if self.captured is not None:
            loss, terms, states, self.last_grad_norm = self.captured(batch, temperature)
        else:
            loss, terms, states, self.last_grad_norm = svi_step(self.model, self.elbo, self.optimizer, self.config,
                                                                batch, temperature, self.parallel)
        return loss, terms, states

    def validate(self) -> float:
        """Validation ELBO per frame on full sequences, the paper's normalisation."""
        if self.hooks.validation_start:
            self.hooks.validation_start(sum(len(s) for s in self.valid))
        scores = score_sequences(self.model, self.valid, kl_form=self.config.kl_form, device=self.device,
                                 on_batch=self.hooks.validation_step)
        return scores.per_frame()["per_sequence"]
