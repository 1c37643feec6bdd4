"""Every hyperparameter of the SRNN and its training recipe, with the paper's defaults (docs/MODEL.md sections 1-2)."""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

PAPER_EPOCHS = 50
# Frames generated and dropped before a sampled piece starts. Training starts a zero state (d = z = 0,
# u = 0) only at the 16 stream starts of an epoch: every other piece begins where the previous one ended.
# From that unfamiliar state the model opens with a burst (15 keys at frame 0 on Piano-midi.de, against 1.4
# in the data), fading over about 20 frames; dropping 32 frames starts the piece from a state it knows.
SAMPLING_BURN_IN = 32
# Two octaves either way: further shifts push most of a piece off the 88 keys instead of into a new key.
MAX_TRANSPOSE = 24
# What an evaluated sequence's u_1 is: 0 (the model's definition), x_1, or the frame before it where the data
# holds one (pyro_srnn.evaluate.first_inputs).
FIRST_INPUTS = ("zero", "x1", "previous")


@dataclass
class SRNNConfig:
    # architecture (docs/MODEL.md, M1-M6)
    x_dim: int = 88  # piano keys 21..108
    d: int = 300  # forward GRU state d_t
    a: int = 300  # backward GRU state a_t
    z: int = 100  # latent z_t
    hidden: int = 500  # every MLP's hidden width, and the embedding width
    filtering: bool = False  # a_t from an MLP of [d_t, e(x_t)] instead of the backward GRU
    residual: bool = True  # posterior mean = prior mean + MLP output
    variance_floor: float = 1e-6  # variance = exp(lv) + floor

    # training recipe (docs/MODEL.md, R1-R7)
    seq_len: int = 100  # truncated back-propagation chunk
    batch_size: int = 16  # parallel streams
    epochs: int = PAPER_EPOCHS
    updates: int = 0  # run length in updates instead of epochs (0: epochs decides); see schedule_epoch_updates
    lr: float = 1e-3
    adam_betas: tuple = (0.9, 0.999)
    adam_eps: float = 1e-4
    weight_decay: float = 0.0  # decoupled (AdamW): each update shrinks every weight by lr * weight_decay (0: the paper)
    dropout: float = 0.0  # in training, on the embedding e(.) and the emission's hidden layer (0: the paper)
    max_grad_norm: float = 1.0  # the gradient is rescaled to this total norm ...
    grad_clip_value: float = 10.0  # ... then clipped element-wise
    lr_constant_epochs: float = 20.0  # then lr /= lr_decay every epoch
    lr_decay: float = 1.2
    kl_start: float = 0.2  # KL temperature, linear per batch up to 1 over kl_anneal_epochs
    kl_anneal_epochs: float = 20.0
    schedule: str = "scaled"  # "scaled": runs shorter than 50 epochs keep the proportions; "fixed": as written
    valid_every: int = 2  # epochs between validation ELBOs
    patience: int = 0  # stop after this many validations without a new best (0: train every epoch)
    elbo: str = "trace"  # "trace": Trace_ELBO; "analytic": TraceMeanField_ELBO (the paper's analytic KL); "iwae:K"
    augment_transpose: int = 0  # semitones of random transposition of training chunks (0: off)
    seed: int = 0

    def __post_init__(self):
        self.adam_betas = tuple(self.adam_betas)
        problems = [f"{k} must be positive" for k in ("x_dim", "d", "a", "z", "hidden", "seq_len", "batch_size",
                                                       "epochs", "valid_every") if getattr(self, k) < 1]
        if self.updates < 0:
            problems.append("updates must be 0 (epochs decide) or positive")
        if not (isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and self.lr > 0):
            problems.append(f"lr must be a positive number, not {self.lr!r}")
        if not (isinstance(self.weight_decay, (int, float)) and 0 <= self.weight_decay < math.inf):
            problems.append(f"weight_decay must be a number >= 0, not {self.weight_decay!r}")
        if not (isinstance(self.dropout, (int, float)) and 0 <= self.dropout < 1):
            problems.append(f"dropout must be a probability in [0, 1), not {self.dropout!r}")
        if self.patience < 0:
            problems.append("patience must be 0 (off) or positive")
        if not 0 <= self.augment_transpose <= MAX_TRANSPOSE:
            problems.append(f"augment_transpose must be 0..{MAX_TRANSPOSE} semitones, not {self.augment_transpose}")
        if not (self.elbo in ("trace", "analytic") or iwae_particles(self.elbo) >= 2):
            problems.append(f"elbo must be 'trace', 'analytic' or 'iwae:K' with K >= 2 particles, not {self.elbo!r}")
        if self.schedule not in ("scaled", "fixed"):
            problems.append(f"schedule must be 'scaled' or 'fixed', not {self.schedule!r}")
        if not 0 < self.kl_start <= 1:
            problems.append("kl_start must be in (0, 1]")
        if problems:
            from .errors import SRNNError

            raise SRNNError("invalid configuration: " + "; ".join(problems))

    @property
    def iwae_particles(self) -> int:
        """K of an importance-weighted training bound (elbo 'iwae:K'); 0 when training on an ELBO."""
        return iwae_particles(self.elbo)

    @property
    def kl_form(self) -> str:
        """How validation (and a captured step) computes the ELBO's KL part: the trained ELBO's own form, and the
        analytic KL for a run trained on the importance-weighted bound."""
        return "trace" if self.elbo == "trace" else "analytic"

    # The paper's schedules are for 50 epochs; by default shorter runs keep their proportions (40% warm-up).
    # A run of N updates follows the paper's 50-epoch schedule as written, with an epoch of N/50 updates.
    @property
    def schedule_scale(self) -> float:
        return min(1.0, self.epochs / PAPER_EPOCHS) if self.schedule == "scaled" and not self.updates else 1.0

    def schedule_epoch_updates(self, batches_per_epoch: int) -> float:
        """The updates in one epoch of the schedules (KL warm-up, learning-rate phases): a pass over the data,
        or with ``updates`` set, a fiftieth of the run (so a small dataset can get the paper's number of
        updates with the paper's schedule)."""
        return self.updates / PAPER_EPOCHS if self.updates else batches_per_epoch

    @property
    def effective_kl_anneal_epochs(self) -> float:
        return self.kl_anneal_epochs * self.schedule_scale

    @property
    def effective_lr_constant_epochs(self) -> float:
        return self.lr_constant_epochs * self.schedule_scale

    ARCHITECTURE = ("x_dim", "d", "a", "z", "hidden", "filtering", "residual", "variance_floor")

    def architecture(self) -> dict:
        return {k: getattr(self, k) for k in self.ARCHITECTURE}

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "SRNNConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})


def iwae_particles(elbo: str) -> int:
    """K of the training objective 'iwae:K' (the importance-weighted bound); 0 for an ELBO ('trace', 'analytic')."""
    kind, _, particles = str(elbo).partition(":")
    return int(particles) if kind == "iwae" and particles.isdigit() else 0


def parse_augment(value: str | None) -> int:
    """``--augment transpose[:R]`` as the semitone radius R (6 when not given; 0 for no augmentation)."""
    if value is None:
        return 0
    kind, _, radius = str(value).partition(":")
    if kind != "transpose" or (radius and not radius.isdigit()):
        from .errors import SRNNError

        raise SRNNError(f"--augment {value!r}: expected transpose or transpose:R with R a number of semitones "
                        f"(0..{MAX_TRANSPOSE})")
    return int(radius) if radius else 6
