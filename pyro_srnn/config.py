"""Every hyperparameter of the sequence models (the SRNN and its RNN and NADE variants, the TSBN) and of their
training recipe, with the papers' defaults (docs/MODEL.md sections 1-2, docs/TSBN.md)."""
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
EMISSIONS = ("bernoulli", "nade")
MODELS = ("srnn", "tsbn")
# The fields only one model reads; a configuration of the other model refuses them unless they hold the default.
# Every other field is the training recipe (or x_dim and z, which both models read), shared by all models.
MODEL_FIELDS = {
    "srnn": ("d", "a", "hidden", "emission", "nade_hidden", "nade_pretrain", "nade_pretrain_lr", "filtering",
             "residual", "variance_floor", "dropout"),
    "tsbn": ("baseline_hidden",),
}
# The training objectives each model takes, the first its default: the SRNN's z_t are reparameterised; the
# TSBN's binary h_t are not, so it trains by the score function, with TraceGraph_ELBO's downstream costs and
# baselines ("tracegraph") or with Trace_ELBO's whole-sequence signal ("trace", no baselines).
MODEL_ELBOS = {"srnn": ("trace", "analytic", "iwae:K"), "tsbn": ("tracegraph", "trace")}

# The ranges every value is checked against before any work starts (SRNNConfig for training, sweeps and records;
# pyro_srnn.sample.Controls and the command line for sampling). The upper ends are far beyond any useful value
# and keep a typo (--d 100000, iwae:100000) from asking for terabytes; pyro_srnn.memory then checks that what is
# left fits the machine.
MAX_WIDTH = 16_384  # d, a, z, hidden
MAX_STREAMS = 65_536  # batch_size
MAX_PARTICLES = 10_000  # iwae:K
MAX_RUN = 1_000_000  # epochs, patience, valid_every
MAX_UPDATES = 10 ** 9
MAX_SEED = 2 ** 63 - 1  # torch, numpy and Python all take 0..2^63 - 1
MAX_SAMPLE_FRAMES = 100_000  # frames of one sampled piece (--steps, --burn-in): the reader's longest piece
MAX_MUSIC_PIECES = 10_000  # evaluate --music: far more than its statistics need (32 give two decimals)
SAMPLING_LIMITS = {"temperature": (0.01, 100.0), "z_scale": (0.0, 100.0), "burn_in": (0, MAX_SAMPLE_FRAMES)}


@dataclass
class SRNNConfig:
    """One configuration for every sequence model the package trains (the name is the first model's)."""

    model: str = "srnn"  # "srnn" (with z = 0 the RNN; with emission "nade" the NADE variants) or "tsbn"
    # architecture (docs/MODEL.md, M1-M6)
    x_dim: int = 88  # piano keys 21..108
    d: int = 300  # forward GRU state d_t
    a: int = 300  # backward GRU state a_t
    z: int = 100  # latent z_t; 0: the RNN, with no stochastic layer (docs/MODEL.md section 1); the TSBN's J binary h_t
    hidden: int = 500  # every MLP's hidden width, and the embedding width
    emission: str = "bernoulli"  # p(x_t | .): "bernoulli" (88 independent keys, the paper) or "nade" (RNN-NADE's)
    nade_hidden: int = 150  # the NADE's hidden units H (Boulanger-Lewandowski et al. 2012)
    nade_pretrain: int = 5000  # updates of the NADE alone on training frames before training (0: none)
    nade_pretrain_lr: float = 1e-2  # ... at this Adam step size, 256 frames per update
    filtering: bool = False  # a_t from an MLP of [d_t, e(x_t)] instead of the backward GRU
    residual: bool = True  # posterior mean = prior mean + MLP output
    variance_floor: float = 1e-6  # variance = exp(lv) + floor
    baseline_hidden: int = 100  # the TSBN: hidden units of the NVIL baseline network (0: no baseline)

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
    free_bits: float = 0.0  # nats per frame per latent unit the training KL does not charge (0: the ELBO)
    schedule: str = "scaled"  # "scaled": runs shorter than 50 epochs keep the proportions; "fixed": as written
    valid_every: int = 2  # epochs between validation ELBOs
    patience: int = 0  # stop after this many validations without a new best (0: train every epoch)
    elbo: str = ""  # "trace": Trace_ELBO; "analytic": TraceMeanField_ELBO (the paper's analytic KL); "iwae:K";
    # "tracegraph": TraceGraph_ELBO with baselines (the TSBN's); "": the model's default (MODEL_ELBOS)
    augment_transpose: int = 0  # semitones of random transposition of training chunks (0: off)
    seed: int = 0

    def __post_init__(self):
        if isinstance(self.adam_betas, (list, tuple)):
            self.adam_betas = tuple(self.adam_betas)
        problems = self._type_problems()
        if problems:  # ranges of values of the wrong type mean nothing
            from .errors import SRNNError

            raise SRNNError("invalid configuration: " + "; ".join(problems))
        if self.model in MODELS and not self.elbo:
            self.elbo = MODEL_ELBOS[self.model][0]
        problems = self._model_problems()
        sizes = ("x_dim", "d", "a", "hidden", "nade_hidden")
        problems += [f"{k} must be 1..{MAX_WIDTH}, not {getattr(self, k)}" for k in sizes
                     if not 1 <= getattr(self, k) <= MAX_WIDTH]
        if not 0 <= self.baseline_hidden <= MAX_WIDTH:
            problems.append(f"baseline_hidden must be 0 (no baseline)..{MAX_WIDTH}, not {self.baseline_hidden}")
        if self.model == "tsbn" and self.z == 0:
            problems.append("z must be at least 1 for the TSBN: its hidden units J")
        if not 0 <= self.z <= MAX_WIDTH:
            problems.append(f"z must be 0..{MAX_WIDTH} (0: the RNN, no latent layer), not {self.z}")
        if self.emission not in EMISSIONS:
            problems.append(f"emission must be one of {', '.join(EMISSIONS)}, not {self.emission!r}")
        if self.z == 0 and (self.filtering or self.iwae_particles):
            problems.append("z = 0 is the RNN, which has no latent layer: filtering and iwae:K do not apply")
        problems += [f"{k} must be positive" for k in ("seq_len", "batch_size", "epochs", "valid_every")
                     if getattr(self, k) < 1]
        for key, high in (("seq_len", MAX_SAMPLE_FRAMES), ("batch_size", MAX_STREAMS), ("epochs", MAX_RUN),
                          ("valid_every", MAX_RUN), ("patience", MAX_RUN), ("updates", MAX_UPDATES)):
            if getattr(self, key) > high:
                problems.append(f"{key} must be at most {high}, not {getattr(self, key)}")
        if self.updates < 0:
            problems.append("updates must be 0 (epochs decide) or positive")
        if not 0 <= self.nade_pretrain <= MAX_UPDATES:
            problems.append(f"nade_pretrain must be 0 (none) up to {MAX_UPDATES} updates, not {self.nade_pretrain}")
        if not (math.isfinite(self.nade_pretrain_lr) and 0 < self.nade_pretrain_lr <= 10):
            problems.append(f"nade_pretrain_lr must be a positive number up to 10, not {self.nade_pretrain_lr!r}")
        if not (math.isfinite(self.lr) and 0 < self.lr <= 10):
            problems.append(f"lr must be a positive number up to 10, not {self.lr!r}")
        if not 0 <= self.weight_decay < 1e3:
            problems.append(f"weight_decay must be a number >= 0, not {self.weight_decay!r}")
        if not 0 <= self.dropout < 1:
            problems.append(f"dropout must be a probability in [0, 1), not {self.dropout!r}")
        if not 0 <= self.free_bits <= 100:
            problems.append(f"free_bits must be 0 (off) up to 100 nats per frame per unit, not {self.free_bits!r}")
        elif self.free_bits and (self.elbo != "analytic" or self.z == 0):
            problems.append("free_bits threshold the analytic KL of each latent unit: they need elbo 'analytic' "
                            f"and z > 0, not elbo {self.elbo!r} with z = {self.z}")
        if self.patience < 0:
            problems.append("patience must be 0 (off) or positive")
        if not 0 <= self.augment_transpose <= MAX_TRANSPOSE:
            problems.append(f"augment_transpose must be 0..{MAX_TRANSPOSE} semitones, not {self.augment_transpose}")
        if self.elbo.startswith("iwae") and not 2 <= iwae_particles(self.elbo) <= MAX_PARTICLES:
            problems.append(f"elbo 'iwae:K' needs 2 <= K <= {MAX_PARTICLES} particles, not {self.elbo!r}")
        if self.schedule not in ("scaled", "fixed"):
            problems.append(f"schedule must be 'scaled' or 'fixed', not {self.schedule!r}")
        if not 0 < self.kl_start <= 1:
            problems.append("kl_start must be in (0, 1]")
        if not 0 <= self.seed <= MAX_SEED:
            problems.append(f"seed must be 0..2^63-1, not {self.seed}")
        for key, low, high in (("variance_floor", 0, 1), ("adam_eps", 0, 1), ("max_grad_norm", 0, math.inf),
                               ("grad_clip_value", 0, math.inf), ("lr_constant_epochs", 0, MAX_RUN),
                               ("kl_anneal_epochs", 0, MAX_RUN), ("lr_decay", 1, math.inf)):
            value = getattr(self, key)
            if not (math.isfinite(value) and low <= value <= high) or (key in ("adam_eps", "max_grad_norm",
                                                                                "grad_clip_value") and value == 0):
                problems.append(f"{key} must be a finite number in range, not {value!r}")
        if len(self.adam_betas) != 2 or not all(0 <= b < 1 for b in self.adam_betas):
            problems.append(f"adam_betas must be two numbers in [0, 1), not {self.adam_betas!r}")
        if problems:
            from .errors import SRNNError

            raise SRNNError("invalid configuration: " + "; ".join(problems))

    def _model_problems(self) -> list:
        """The model must be known, take the training objective, and the fields only another model reads must
        hold their defaults (a TSBN given --residual is a mistake, not a setting)."""
        if self.model not in MODELS:
            return [f"model must be one of {', '.join(MODELS)}, not {self.model!r}"]
        problems = []
        kinds = MODEL_ELBOS[self.model]
        kind = "iwae:K" if self.elbo.startswith("iwae:") else self.elbo
        if kind not in kinds:
            problems.append(f"elbo {self.elbo!r} does not train the {self.model.upper()}: it takes "
                            + ", ".join(repr(k) for k in kinds))
        defaults = SRNNConfig.__dataclass_fields__
        for other, names in MODEL_FIELDS.items():
            given = [k for k in names if other != self.model and getattr(self, k) != defaults[k].default]
            if given:
                problems.append(f"{', '.join(given)} {'is' if len(given) == 1 else 'are'} the "
                                f"{other.upper()}'s, not the {self.model.upper()}'s")
        return problems

    def _type_problems(self) -> list:
        """Each field must hold a value of its default's type (an integer field no bool, a number field no
        text): a config.json edited by hand says which field is wrong, not a traceback from deep inside."""
        problems = []
        for f in dataclasses.fields(self):
            value, kind = getattr(self, f.name), type(f.default)
            if kind is bool:
                ok = isinstance(value, bool)
            elif kind is int:
                ok = isinstance(value, int) and not isinstance(value, bool)
            elif kind is float:
                ok = isinstance(value, (int, float)) and not isinstance(value, bool) and not math.isnan(value)
            elif kind is tuple:
                ok = isinstance(value, tuple) and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                                      for v in value)
            else:
                ok = isinstance(value, kind)
            if not ok:
                problems.append(f"{f.name} must be {_TYPE_NAMES.get(kind, kind.__name__)}, not {value!r}")
        return problems

    @property
    def iwae_particles(self) -> int:
        """K of an importance-weighted training bound (elbo 'iwae:K'); 0 when training on an ELBO."""
        return iwae_particles(self.elbo)

    @property
    def kl_form(self) -> str:
        """How validation (and a captured step) computes the ELBO's KL part: the trained ELBO's own form, and the
        analytic KL for a run trained on the importance-weighted bound."""
        return "trace" if self.elbo == "trace" else "analytic"  # tracegraph: the KL of each h_t given h_{t-1}

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

    @property
    def model_name(self) -> str:
        """The model this configuration is, by the names of the literature: SRNN, SRNN-NADE, RNN, RNN-NADE or TSBN."""
        if self.model == "tsbn":
            return "TSBN"
        return ("SRNN" if self.z else "RNN") + ("-NADE" if self.emission == "nade" else "")

    ARCHITECTURE = ("model", "x_dim", "d", "a", "z", "hidden", "emission", "nade_hidden", "filtering", "residual",
                    "variance_floor", "baseline_hidden")

    def architecture(self) -> dict:
        """The fields that decide the model's shape, the model's own only."""
        return {k: getattr(self, k) for k in self.ARCHITECTURE if k not in self.other_models_fields}

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def own_dict(self) -> dict:
        """:meth:`to_dict` without the fields only other models read (what a TSBN's report page lists)."""
        return {k: v for k, v in self.to_dict().items() if k not in self.other_models_fields}

    @property
    def other_models_fields(self) -> set:
        """The fields (MODEL_FIELDS) that only models other than this one read."""
        return {k for name, names in MODEL_FIELDS.items() if name != self.model for k in names}

    @classmethod
    def from_dict(cls, values: dict) -> "SRNNConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        if not isinstance(values, dict):
            from .errors import SRNNError

            raise SRNNError(f"invalid configuration: expected a mapping of fields, not {type(values).__name__}")
        values = {k: v for k, v in values.items() if k in known}
        if values.get("emission") == "nade" and "nade_pretrain" not in values:
            values["nade_pretrain"] = 0  # recorded before pretraining existed: trained without it
        return cls(**values)


_TYPE_NAMES = {bool: "true or false", int: "an integer", float: "a number", str: "text",
               tuple: "a list of numbers"}


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
