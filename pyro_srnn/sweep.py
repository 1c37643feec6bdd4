"""Sweeps on Optuna: a grid (Optuna's GridSampler) or a search (TPE) over SRNNConfig's fields.

A sweep is one Optuna study in a database: an SQLite file in the sweep folder by default, or any SQLAlchemy URL
(PostgreSQL, MySQL) so that sweeps started on several machines share one study. Every trial trains an ordinary
run directory (config.json, metrics.jsonl, checkpoints) under the sweep folder of the machine that runs it,
reports its validation ELBO at every validation epoch to the pruner, and leaves its scores in the study, so
the results table is read from the study alone. Workers are processes (``work``); a killed worker's trial is
failed by the heartbeat and retried from its run directory's last.pt.
"""
from __future__ import annotations

import csv
import dataclasses
import io
import itertools
import json
import math
import os
import socket
import traceback
import warnings
from dataclasses import dataclass
from pathlib import Path

from data_prep.files import write_text

from .config import SRNNConfig
from .errors import SRNNError, allocation_failure

HEARTBEAT_SECONDS, GRACE_SECONDS = 10, 30  # a trial whose worker is silent for 30 s is failed and retried
POLL_SECONDS = 2  # how often an idle worker looks for work
STUDY_DB = "study.db"


def boolean(text: str) -> bool:
    if text.lower() not in ("true", "false", "1", "0"):
        raise ValueError(text)
    return text.lower() in ("true", "1")


# A sweep key is an SRNNConfig field, written with dashes (seq-len); its values are read with its type. The
# piano's 88 keys are fixed, and the sweep's --epochs sets every run's length.
GRID_KEYS = {f.name.replace("_", "-"): {bool: boolean}.get(type(f.default), type(f.default))
             for f in dataclasses.fields(SRNNConfig)
             if type(f.default) in (int, float, str, bool) and f.name not in ("x_dim", "epochs")}


def _key(part: str, option: str):
    key, sep, values = part.partition("=")
    if not sep or key not in GRID_KEYS or not values:
        raise SRNNError(f"{option}: cannot read {part!r}; expected KEY=VALUES with KEY one of {', '.join(GRID_KEYS)}")
    return key, values


def parse_grid(text: str, epochs: int | None = None) -> dict:
    """'a=30,300 z=10,100' -> {'a': [30, 300], 'z': [10, 100]}. A key given twice is refused, and every point
    is checked as SRNNConfig checks a configuration, before any run starts."""
    grid = {}
    for part in text.split():
        key, values = _key(part, "--grid")
        if key in grid:
            raise SRNNError(f"--grid: {key} is given twice; list all its values once, e.g. {key}=V1,V2")
        try:
            grid[key] = [GRID_KEYS[key](v) for v in values.split(",")]
        except ValueError:
            raise SRNNError(f"--grid: {part!r} has a value that is not a {GRID_KEYS[key].__name__}") from None
    if not grid:
        raise SRNNError("--grid is empty")
    for point in grid_points(grid):
        point_config(point, epochs)
    return grid


def grid_points(grid: dict) -> list:
    """Every configuration of a grid, in a fixed order: {'a': [30, 300], 'z': [10]} -> [{'a': 30, 'z': 10}, ...]."""
    return [dict(zip(grid, values)) for values in itertools.product(*grid.values())]


@dataclass
class Dimension:
    """One searched field: a range (``low..high``, ``:log`` for a log scale) or a list of choices."""

    kind: str  # "int", "float" or "choice"
    low: float = 0.0
    high: float = 0.0
    log: bool = False
    choices: tuple = ()

    def suggest(self, trial, key: str):
        if self.kind == "choice":
            return trial.suggest_categorical(key, list(self.choices))
        if self.kind == "int":
            return trial.suggest_int(key, int(self.low), int(self.high), log=self.log)
        return trial.suggest_float(key, self.low, self.high, log=self.log)


def parse_search(text: str) -> dict:
    """'lr=1e-4..3e-3:log z=4..128:int elbo=trace,analytic' -> {key: Dimension}. Integer fields are searched
    over integers (``:int`` may say so), every other number over floats."""
    space = {}
    for part in text.split():
        key, spec = _key(part, "--search")
        if key in space:
            raise SRNNError(f"--search: {key} is given twice")
        kind = GRID_KEYS[key]
        spec, *flags = spec.split(":") if ".." in spec else (spec,)  # a choice may hold a colon: elbo=iwae:4
        if set(flags) - {"log", "int"} or ("int" in flags and kind is not int):
            raise SRNNError(f"--search: {part!r}: after the range only :log, and :int for an integer field")
        low, sep, high = spec.partition("..")
        try:
            if not sep:
                if flags:
                    raise ValueError
                space[key] = Dimension("choice", choices=tuple(kind(v) for v in spec.split(",")))
                continue
            if kind not in (int, float):
                raise ValueError
            dim = Dimension("int" if kind is int else "float", kind(low), kind(high), "log" in flags)
        except ValueError:
            raise SRNNError(f"--search: cannot read {part!r}; expected KEY=LOW..HIGH[:log] for a number or "
                            f"KEY=V1,V2 for choices") from None
        if not (math.isfinite(dim.low) and math.isfinite(dim.high) and dim.low < dim.high) or (dim.log and dim.low <= 0):
            raise SRNNError(f"--search: {part!r}: the range must be LOW < HIGH (and LOW > 0 on a log scale)")
        space[key] = dim
    if not space:
        raise SRNNError("--search is empty")
    search_corners(space)  # the ends of every range must be valid configurations
    return space


def search_corners(space: dict, epochs: int | None = None) -> list:
    """The configurations at the corners of a search space: every end of every range, every choice."""
    return [point_config(dict(zip(space, corner)), epochs)
            for corner in itertools.product(*[d.choices or (d.low, d.high) for d in space.values()])]


def point_config(point: dict, epochs: int | None = None) -> SRNNConfig:
    """The configuration of a sweep point; invalid values raise one SRNNError naming the point."""
    values = {k.replace("-", "_"): v for k, v in point.items()}
    try:
        return SRNNConfig(**values, **({"epochs": epochs} if epochs else {}))
    except SRNNError as exc:
        raise SRNNError(f"sweep point {run_name(point)}: {exc}") from None


def run_name(point: dict) -> str:
    return "-".join(f"{k}{v}" for k, v in point.items()).replace(":", "")  # elbo=iwae:4 -> elboiwae4


# ----------------------------------------------------------------------------- the study


@dataclass
class Sweep:
    """Everything a worker needs to join a sweep (sent to worker processes, so plain values only)."""

    data_file: str
    out_dir: str
    epochs: int
    grid: str | None = None  # --grid text, or
    search: str | None = None  # --search text with
    trials: int = 0  # ... this many finished trials
    prune: bool = True
    storage: str | None = None  # SQLAlchemy URL; default: sqlite in out_dir
    study_name: str | None = None  # default: the sweep folder's name
    device: str = "cpu"
    threads: int = 0  # torch threads per worker (0: torch's default)
    seed: int = 0

    @property
    def storage_url(self) -> str:
        return self.storage or f"sqlite:///{Path(self.out_dir).resolve() / STUDY_DB}"

    @property
    def name(self) -> str:
        return self.study_name or Path(self.out_dir).resolve().name

    def identity(self, fingerprint: dict) -> dict:
        """What makes two sweeps the same study: a sweep that differs is refused, not mixed in."""
        return {"grid": self.grid and parse_grid(self.grid), "search": self.search and " ".join(self.search.split()),
                "epochs": self.epochs,
                "data": fingerprint}

    def pruner(self):
        import optuna

        if not self.prune:
            return optuna.pruners.NopPruner()
        # Below the median of earlier trials at the same epoch, after 4 trials and the KL warm-up: until the KL
        # temperature reaches 1 trials optimise different objectives, and with the batch size searched an epoch
        # is a different number of updates, so early curves cross (a fifth of the run pruned good trials).
        warmup = math.ceil(SRNNConfig(epochs=self.epochs).effective_kl_anneal_epochs)
        return optuna.pruners.MedianPruner(n_startup_trials=4, n_warmup_steps=max(2, warmup))

    def sampler(self):
        import optuna

        if self.grid:
            return optuna.samplers.GridSampler(parse_grid(self.grid), seed=self.seed)
        # Unseeded: workers started with one seed (two sweep commands, two machines) would propose the same
        # first trials. A search with several workers is not reproducible draw for draw anyway; the study
        # records every trial.
        return optuna.samplers.TPESampler(n_startup_trials=max(4, self.trials // 3))

    def suggest(self, trial) -> dict:
        if self.grid:
            return {k: trial.suggest_categorical(k, v) for k, v in parse_grid(self.grid).items()}
        return {k: dim.suggest(trial, k) for k, dim in parse_search(self.search).items()}


def sqlite_file(url: str) -> Path | None:
    """The database file of an SQLite URL (None for any other database). A study is shared by separate
    processes (the workers, other sweeps), so an in-memory database, which each process would see empty, is
    refused, as is a URL that names no file."""
    if not url.startswith("sqlite:"):
        return None
    path = url[len("sqlite:///"):].split("?", 1)[0] if url.startswith("sqlite:///") else ""
    if not path or ":memory:" in path or path.startswith("file:") or "mode=memory" in url:
        raise SRNNError(f"--storage {url}: an in-memory SQLite database is private to one process, and the sweep's "
                        "workers are separate processes; name a file (sqlite:///path/study.db) or leave --storage out")
    return Path(path)


def open_storage(url: str, attempts: int = 5):
    """The study database. Two sweeps that create it at the same moment race to make its tables: on SQLite
    they take turns under a lock on the database's folder (no lock file is left beside it); on a server the
    loser tries again. A database file this call created is removed again when it cannot be opened (a full
    disk, a file that is not a database), so a failed sweep leaves nothing behind."""
    import contextlib
    import fcntl
    import time

    import optuna
    from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback

    database = sqlite_file(url)
    if database is not None:
        if not database.parent.is_dir():
            raise SRNNError(f"--storage {url}: cannot open the study database (folder {database.parent} does not "
                            "exist)")
        if database.exists() and not database.is_file():
            raise SRNNError(f"--storage {url}: cannot open the study database ({database} is not a regular file)")
    created = database is not None and not database.exists()
    engine = {"connect_args": {"timeout": 60}} if database is not None else {}  # workers wait for the file lock
    try:
        for attempt in range(attempts):
            try:
                with contextlib.ExitStack() as turn, warnings.catch_warnings():
                    if database is not None:
                        folder = os.open(database.parent, os.O_RDONLY)
                        turn.callback(os.close, folder)
                        fcntl.flock(folder, fcntl.LOCK_EX)
                    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # heartbeats, since 2.8
                    return RDBStorage(url, engine_kwargs=engine, heartbeat_interval=HEARTBEAT_SECONDS,
                                      grace_period=GRACE_SECONDS,
                                      heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=3))
            except ImportError as exc:
                missing = getattr(exc.__cause__, "name", None) or exc.name
                raise SRNNError(f"--storage {url}: needs a database driver that is not installed ({missing}); for "
                                "PostgreSQL: pip install 'pyro-srnn[postgres]'") from None
            except Exception as exc:  # sqlalchemy's errors: no server, bad URL, no permission, the race above
                if not (isinstance(exc, optuna.exceptions.OptunaError) or type(exc).__module__.startswith("sqlalchemy")):
                    raise
                racing = any(word in str(exc).lower() for word in ("already exists", "locked", "duplicate", "unique"))
                if not racing or attempt == attempts - 1:
                    raise SRNNError(f"--storage {url}: cannot open the study database "
                                    f"({str(exc).splitlines()[0]})") from None
                time.sleep(0.5 + attempt)
    except BaseException:
        if created:
            for leftover in (database, database.with_name(database.name + "-journal")):
                with contextlib.suppress(OSError):
                    leftover.unlink()
        raise


def open_study(sweep: Sweep, fingerprint: dict):
    """The sweep's study, created on first use; a study made by another sweep (other grid, search, epochs or
    data) is refused."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    Path(sweep.out_dir).mkdir(parents=True, exist_ok=True)
    storage = open_storage(sweep.storage_url)
    study = optuna.create_study(storage=storage, study_name=sweep.name, direction="maximize", load_if_exists=True,
                                sampler=sweep.sampler(), pruner=sweep.pruner())
    identity = json.loads(json.dumps(sweep.identity(fingerprint)))
    saved = study.user_attrs.get("sweep")
    if saved is None:
        study.set_user_attr("sweep", identity)
    elif saved != identity:
        differs = ", ".join(k for k in identity if saved.get(k) != identity[k])
        raise SRNNError(f"study {sweep.name!r} in {sweep.storage_url} was made by another sweep (it differs in "
                        f"{differs}); rerun it as it was started, or choose another --study or --out")
    return study


class TrialFailed(Exception):
    """A trial that could not train: its reason is in the trial's ``error`` attribute."""


def trial_ended(trial) -> bool:
    """Whether a trial is over for good and stands in the results: finished, not a duplicate of another, and not
    failed by the heartbeat check (such a trial's worker was killed, and a retry takes it over)."""
    from optuna.trial import TrialState

    return (trial.state.is_finished() and "duplicate_of" not in trial.user_attrs
            and (trial.state != TrialState.FAIL or "error" in trial.user_attrs))


def unfinished_work(study, sweep: Sweep) -> str | None:
    """What keeps a worker in the sweep: "train" while a grid point has no trial yet, a search has fewer
    finished trials than asked for, or a retried trial waits; "wait" while trials run (in this or another
    worker, or in a killed one whose heartbeat has not yet gone stale, after which its retry waits); None when
    the study is done."""
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    states = [t.state for t in trials]
    if TrialState.WAITING in states:
        return "train"
    if sweep.grid:
        claimed = {t.user_attrs.get("run") for t in trials if "duplicate_of" not in t.user_attrs}
        if any(run_name(p) not in claimed for p in grid_points(parse_grid(sweep.grid))):
            return "train"
    else:
        ended = [t for t in trials if trial_ended(t)]
        failed = sum(t.state == TrialState.FAIL for t in ended)
        finished = len(ended) - failed
        if finished + states.count(TrialState.RUNNING) < sweep.trials and failed < sweep.trials:
            return "train"
    return "wait" if TrialState.RUNNING in states else None


def work(sweep: Sweep):
    """One worker: take trials from the study, one at a time, until it is done."""
    import time

    import optuna
    import torch

    from data_prep.h5 import PianoRollFile

    if sweep.threads:
        torch.set_num_threads(sweep.threads)
    data = PianoRollFile(sweep.data_file)
    study = open_study(sweep, data.fingerprint())
    while (todo := unfinished_work(study, sweep)) is not None:
        if todo == "wait":
            time.sleep(POLL_SECONDS)
            with warnings.catch_warnings():  # "experimental" since Optuna 2.9
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                optuna.storages.fail_stale_trials(study)  # a killed worker's trial is failed, and its retry queued
            continue
        study.optimize(lambda trial: run_trial(trial, sweep, data), n_trials=1, catch=(TrialFailed,))


def run_trial(trial, sweep: Sweep, data) -> float:
    """Train one trial's run directory (resuming it), reporting validation ELBOs to the pruner; returns the
    best validation ELBO per frame."""
    import optuna
    from optuna.trial import TrialState

    from .train import Hooks, Trainer

    point = sweep.suggest(trial)
    # A retried trial carries its original's user attributes, so it resumes the original's run directory.
    name = trial.user_attrs.get("run") or (run_name(point) if sweep.grid else f"trial{trial.number:03d}")
    run_dir = Path(sweep.out_dir) / name
    trial.set_user_attr("run", name)
    trial.set_user_attr("where", f"{socket.gethostname()}:{Path(sweep.out_dir).resolve()}")
    # Two workers may take the last grid point at once: the lower trial number trains it.
    for other in trial.study.get_trials(deepcopy=False):
        if other.number != trial.number and other.user_attrs.get("run") == name and (
                other.state in (TrialState.COMPLETE, TrialState.PRUNED)
                or other.state == TrialState.RUNNING and other.number < trial.number):
            trial.set_user_attr("duplicate_of", other.number)
            raise TrialFailed("duplicate")

    def report(metrics):
        if "valid_elbo" in metrics:
            trial.report(metrics["valid_elbo"], metrics["epoch"])
            if trial.should_prune():
                raise optuna.TrialPruned()

    trainer = None
    try:
        config = point_config(point, sweep.epochs)
        trainer = Trainer(config, data, run_dir, device=sweep.device, hooks=Hooks(epoch_end=report))
        trainer.start(resume=True)
        for metrics in trainer.run.metrics():  # a resumed run's history, for the pruner
            if "valid_elbo" in metrics:
                trial.report(metrics["valid_elbo"], metrics["epoch"])
        trainer.fit()
    except optuna.TrialPruned:
        trial.set_user_attr("epochs", trainer.epoch)
        raise
    except SRNNError as exc:  # RunBusy among them: someone outside the sweep trains in this run directory
        trial.set_user_attr("error", str(exc))
        raise TrialFailed(str(exc)) from None
    except Exception as exc:  # noqa: BLE001 - a bug must not end the sweep: its traceback goes to the run's log
        if allocation_failure(exc):
            trial.set_user_attr("error", allocation_failure(exc))
            raise TrialFailed(allocation_failure(exc)) from None
        log = run_dir / "trial-error.log"
        run_dir.mkdir(parents=True, exist_ok=True)
        log.write_text(traceback.format_exc())
        trial.set_user_attr("error", f"{type(exc).__name__}: {exc} (traceback in {log})")
        raise TrialFailed(str(exc)) from None
    trial.set_user_attr("epochs", trainer.epoch)
    scores = final_scores(trainer)
    for key, value in scores.items():
        trial.set_user_attr(key, value)
    write_text(run_dir / "eval.json", json.dumps(scores), update=True)  # for srnn report, beside the run it scores
    return trainer.best_valid


def final_scores(trainer) -> dict:
    """Validation and test ELBO per frame of the best checkpoint, in both normalisations."""
    from .evaluate import score_sequences
    from .checkpoint import load_checkpoint, model_from_checkpoint

    model = model_from_checkpoint(load_checkpoint(trainer.run.best), trainer.device)
    scores = {}
    for split in ("valid", "test"):
        sequences = trainer.data.split(split).sequences()
        if not sequences:
            continue
        per_frame = score_sequences(model, sequences, device=trainer.device).per_frame()
        scores[f"{split}_elbo"] = per_frame["per_sequence"]
        scores[f"{split}_elbo_total_frames"] = per_frame["total_frames"]
    return scores


# ----------------------------------------------------------------------------- results


def study_rows(study, out_dir) -> list:
    """One row per trial (duplicates left out): its run, state, parameters and scores, best validation first;
    a run that lives on another machine or folder says where."""
    here = f"{socket.gethostname()}:{Path(out_dir).resolve()}"
    rows = []
    for t in study.get_trials(deepcopy=False):
        if "duplicate_of" in t.user_attrs:
            continue
        a = t.user_attrs
        run = a.get("run", "")
        where = a.get("where", here)
        state = t.state.name.lower()
        if state == "fail":
            state = f"failed: {a['error']}" if "error" in a else "failed"
        row = {"trial": t.number, "run": run if where == here else f"{where}/{run}", "state": state,
               **{k: _plain(v) for k, v in t.params.items()},
               "epochs": a.get("epochs", ""),
               "valid_elbo": a.get("valid_elbo", t.value if t.value is not None else _best(t.intermediate_values)),
               "valid_elbo_total_frames": a.get("valid_elbo_total_frames", ""),
               "test_elbo": a.get("test_elbo", ""), "test_elbo_total_frames": a.get("test_elbo_total_frames", "")}
        rows.append(row)
    # a retried trial replaces the one it retries: keep each run's latest trial
    latest = {}
    for row in rows:
        latest[row["run"]] = row
    rows = list(latest.values())
    return sorted(rows, key=lambda r: -r["valid_elbo"] if isinstance(r["valid_elbo"], float) else math.inf)


def _plain(value):
    return float(f"{value:.4g}") if isinstance(value, float) else value


def _best(values: dict):
    return max(values.values()) if values else ""


def markdown_cell(text: str) -> str:
    """A string as one cell of a markdown table, the one escaping step of that medium: a | would start a new
    cell and a line break end the row (a trial's error message may hold either)."""
    return " ".join(text.replace("\\", "\\\\").replace("|", "\\|").split())


def results_tables(rows: list) -> tuple:
    """The results as (markdown, csv) text."""
    if not rows:
        return "no trials\n", ""
    columns = list(dict.fromkeys(k for r in rows for k in r))
    fmt = lambda v: markdown_cell(f"{v:.4f}" if isinstance(v, float) else str(v))  # noqa: E731
    md = "| " + " | ".join(columns) + " |\n|" + "---|" * len(columns) + "\n"
    md += "".join("| " + " | ".join(fmt(r.get(c, "")) for c in columns) + " |\n" for r in rows)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns)
    writer.writeheader()
    writer.writerows(rows)
    return md, buf.getvalue()


def worker_threads(jobs: int) -> int:
    """Torch threads per worker so that ``jobs`` workers share the cores instead of fighting over them;
    OMP_NUM_THREADS, when set, decides (several sweeps on one machine)."""
    return max(1, int(os.environ.get("OMP_NUM_THREADS") or 0) or (os.cpu_count() or 1) // jobs)
