"""`srnn train`: the paper's recipe with live progress, resumable; `--nproc` relaunches itself data-parallel."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import click
from rich.progress import TextColumn

from pyro_srnn.config import EMISSIONS, MODELS, SRNNConfig, parse_augment

from .common import DEFAULT, UserError, chosen_data_file, console, data_options, existing_data_file, friendly_errors, \
    given_on_command_line, named_data_file, numbers_table, out, prep_command_for, progress_bar, refuse_other_models, \
    styled


@click.command()
@data_options("piano")
@click.option("--model", type=click.Choice(MODELS), default=DEFAULT.model, show_default=True,
              help="srnn: the SRNN (with --z 0 and --emission nade the RNN, RNN-NADE, SRNN-NADE); tsbn: the "
                   "one-layer temporal sigmoid belief network of Gan et al. (2015), binary hidden states.")
@click.option("--z", type=click.IntRange(min=0), default=DEFAULT.z, show_default=True,
              help="Latent size: the SRNN's z_t (0: the RNN), the TSBN's J hidden units h_t.")
@click.option("--d", type=click.IntRange(min=1), default=DEFAULT.d, show_default=True, help="Forward GRU size d.")
@click.option("--a", type=click.IntRange(min=1), default=DEFAULT.a, show_default=True, help="Backward GRU size a.")
@click.option("--hidden", type=click.IntRange(min=1), default=DEFAULT.hidden, show_default=True,
              help="MLP hidden width.")
@click.option("--emission", type=click.Choice(EMISSIONS), default=DEFAULT.emission, show_default=True,
              help="p(x_t | z_t, d_t): 88 independent Bernoullis (the paper), or a NADE over the keys, lowest "
                   "first, whose biases come from the emission MLP (RNN-NADE's; with --z 0, RNN-NADE itself).")
@click.option("--nade-hidden", type=click.IntRange(min=1), default=DEFAULT.nade_hidden, show_default=True,
              help="--emission nade: the NADE's hidden units H.")
@click.option("--nade-pretrain", type=click.IntRange(min=0), default=DEFAULT.nade_pretrain, show_default=True,
              help="--emission nade: updates of the NADE alone on training frames before training (0: none).")
@click.option("--nade-pretrain-lr", type=click.FloatRange(min=0, min_open=True), default=DEFAULT.nade_pretrain_lr,
              show_default=True, help="--emission nade: the pretraining's Adam step size.")
@click.option("--seq-len", type=click.IntRange(min=1), default=DEFAULT.seq_len, show_default=True,
              help="Truncated back-propagation length.")
@click.option("--batch-size", type=click.IntRange(min=1), default=DEFAULT.batch_size, show_default=True,
              help="Parallel streams.")
@click.option("--epochs", type=click.IntRange(min=1), default=DEFAULT.epochs, show_default=True)
@click.option("--updates", type=click.IntRange(min=0), default=DEFAULT.updates, show_default=True,
              help="Train for N updates instead of --epochs (0: off), with the paper's 50-epoch schedule in which "
                   "an epoch is N/50 updates: a small dataset can get as many updates as a large one.")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=DEFAULT.lr, show_default=True,
              help="Adam's learning rate while it is constant; then divided by 1.2 every epoch (docs/MODEL.md R5).")
@click.option("--weight-decay", type=click.FloatRange(min=0), default=DEFAULT.weight_decay, show_default=True,
              help="Decoupled weight decay (AdamW): every update shrinks each weight by lr x this (0: off, as "
                   "the paper).")
@click.option("--dropout", type=click.FloatRange(min=0, max=1, max_open=True), default=DEFAULT.dropout,
              show_default=True, help="Dropout rate in training on the embedding e(.) and the emission's hidden "
                                      "layer (0: off, as the paper).")
@click.option("--elbo", metavar="KIND", default=None, show_default="the model's first below",
              help="SRNN: trace: Trace_ELBO; analytic: TraceMeanField_ELBO (analytic KL per step, as the paper); "
                   "iwae:K: the importance-weighted bound with K particles (K times the work per update). TSBN: "
                   "tracegraph: TraceGraph_ELBO, the score function with downstream costs and the NVIL baseline; "
                   "trace: the score function of the whole ELBO, no baseline.")
@click.option("--baseline-hidden", type=click.IntRange(min=0), default=DEFAULT.baseline_hidden, show_default=True,
              help="TSBN: hidden units of the NVIL baseline network (0: no baseline).")
@click.option("--kl-start", type=click.FloatRange(min=0, max=1, min_open=True), default=DEFAULT.kl_start, show_default=True,
              help="KL temperature of the first update, raised linearly to 1 over --kl-anneal-epochs.")
@click.option("--kl-anneal-epochs", type=click.FloatRange(min=0), default=DEFAULT.kl_anneal_epochs,
              show_default=True, help="Epochs of the KL warm-up (of the paper's 50; see --schedule).")
@click.option("--free-bits", type=click.FloatRange(min=0), default=DEFAULT.free_bits, show_default=True,
              help="Free bits (Kingma et al. 2016): training charges each latent unit's KL only above this many "
                   "nats per frame (0: the ELBO, as the paper); needs --elbo analytic. Scores stay the ELBO's.")
@click.option("--schedule", type=click.Choice(["scaled", "fixed"]), default=DEFAULT.schedule, show_default=True,
              help="KL warm-up and constant learning rate: 20 epochs each as the paper (fixed), or their 40% "
                   "share of --epochs when that is under 50 (scaled).")
@click.option("--patience", type=click.IntRange(min=0), default=DEFAULT.patience, show_default=True,
              help="Stop after P validations in a row without a new best validation ELBO (0: off); best.pt keeps "
                   "the best model.")
@click.option("--filtering", is_flag=True, help="Ablation: a_t from an MLP of [d_t, e(x_t)], no backward GRU.")
@click.option("--residual/--no-residual", default=DEFAULT.residual, show_default=True,
              help="--no-residual: ablation, the posterior mean is not added to the prior mean.")
@click.option("--augment", "augment_transpose", callback=lambda ctx, param, value: _augment(value),
              help="transpose[:R]: shift each training stream by a random -R..R semitones per epoch.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option("--capture", is_flag=True, help="On CUDA: capture the training step as a CUDA graph once per chunk "
              "shape and replay it (one launch instead of thousands); elsewhere the step stays eager, with a note.")
@click.option("--seed", type=int, default=DEFAULT.seed, show_default=True)
@click.option("--run-dir", type=click.Path(), help="Default: runs/<dataset>-<date-time>/.")
@click.option("--resume", is_flag=True, help="Continue the run in --run-dir (or the latest run) from last.pt.")
@click.option("--config", "config_file", type=click.Path(dir_okay=False),
              help="Train again what a run recorded (its config.json, e.g. docs/runs/NAME/config.json): its "
                   "configuration, on its dataset and variant; options given beside it change those fields.")
@click.option("--nproc", type=click.IntRange(min=1), default=1, show_default=True,
              help="Data-parallel processes on this machine, launched by PyTorch's elastic launcher "
                   "(gloo on CPU, nccl on GPUs); the streams of a batch are split between them.")
@click.option("--tensorboard", is_flag=True, help="Also write every epoch's metrics as TensorBoard event files "
              "into RUN_DIR/tensorboard/ (needs: pip install pyro-srnn[tensorboard]).")
@click.pass_context
@friendly_errors
def train(ctx, dataset, variant, data_file, device, run_dir, resume, config_file, nproc, tensorboard, capture,
          **options):
    """Train an SRNN (or with --z 0 and --emission nade the RNN, RNN-NADE or SRNN-NADE; with --model tsbn the
    TSBN) with the paper's recipe; live progress, metrics.jsonl, last.pt and best.pt."""
    import time

    from data_prep.h5 import PianoRollFile
    from pyro_srnn.runs import RunDir, data_location, latest_run, read_record

    # every remaining option is named as the SRNNConfig field it sets
    if resume and run_dir is None:
        run_dir = str(latest_run())
    saved = RunDir(run_dir).record() if resume else None  # config.json, or the record last.pt carries
    named = chosen_data_file(ctx, dataset, variant, data_file)
    given = {k: v for k, v in options.items() if given_on_command_line(ctx, k)}
    if options["elbo"] is None:  # the model's own default (pyro_srnn.config.MODEL_ELBOS)
        del options["elbo"]
    if config_file:
        if resume:
            raise UserError("--config starts a run from a recorded configuration and --resume continues one from "
                            "its own record: give one of them")
        recorded = read_record(config_file)
        refuse_other_models(ctx, given.get("model", recorded["config"].get("model", "srnn")), given)
        config = SRNNConfig.from_dict({**recorded["config"], **given})
        data_file = named if data_file or given_on_command_line(ctx, "dataset") else recorded_data(recorded, config_file)
    elif saved:
        refuse_other_models(ctx, given.get("model", saved["config"].get("model", "srnn")), given)
        config = RunDir(run_dir).resume_config(given)
        data_file = data_file or data_location(saved, run_dir) or saved.get("data") or named
    else:
        refuse_other_models(ctx, options["model"], given)
        config = SRNNConfig(**options)
        data_file = named
    if not Path(data_file).exists():
        raise UserError(f"{data_file}: no such data file; prepare it with `{prep_command(saved, dataset, variant)}`")
    if tensorboard:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise UserError("--tensorboard needs the tensorboard package: pip install pyro-srnn[tensorboard] "
                            "(or pip install tensorboard)") from None
    if nproc > 1 and config.batch_size % nproc:
        raise UserError(f"--nproc {nproc}: the {config.batch_size} streams of a batch (--batch-size) cannot be "
                        f"split evenly over {nproc} processes")
    data = PianoRollFile(data_file)
    from pyro_srnn.train import Hooks, Trainer  # torch: after the checks that need none, so that they answer at once

    distributed_child = int(os.environ.get("WORLD_SIZE", "1")) > 1
    if distributed_child and run_dir is None:
        raise UserError("under torchrun pass --run-dir: every process must write to the same run")
    run_dir = run_dir or os.path.join("runs", f"{data.dataset}-{time.strftime('%Y%m%d-%H%M%S')}")
    if nproc > 1 and not distributed_child:
        from pyro_srnn.distributed import launch

        argv = _without_option(sys.argv[1:], "--nproc") + (["--run-dir", run_dir] if "--run-dir" not in sys.argv else [])
        console.print(styled(f"launching {nproc} data-parallel processes for run ", (str(run_dir), "bold")))
        launch(nproc, [sys.executable, "-m", "cli.main", *argv])  # the first process prints the summary
        return
    if int(os.environ.get("RANK", "0")) > 0:  # only the first process reports
        trainer = Trainer(config, data, run_dir, device, capture=capture)
        trainer.start(resume=resume)
        trainer.fit()
        return

    progress = progress_bar("frames", TextColumn("{task.fields[status]}", markup=False))
    state = {}

    def epoch_start(epoch, n_batches):
        frames = trainer.streams.shape[1] * trainer.streams.shape[0]
        state["task"] = progress.add_task(f"epoch {epoch + 1}/{trainer.config.epochs}", total=frames, status="")
        state["first_step"] = True

    def step(frames, m):
        since = {}
        if state.pop("first_step", False):  # the rate leaves out the first update and its one-time start-up
            since = {"rate_since": (frames, progress.get_time())}
        progress.update(state["task"], advance=frames, **since,
                        status=f"ELBO {m['elbo']:.3f}  KL {m['kl']:.3f}  T {m['temperature']:.2f}")

    def validation_start(frames):
        state["valid"] = progress.add_task("  validation", total=frames, status="")

    def validation_step(frames):
        progress.advance(state["valid"], frames)

    def pretrain_start(updates):
        state["pretrain"] = progress.add_task("NADE pretraining", total=updates, status="")

    def pretrain_step(log_likelihood):
        progress.update(state["pretrain"], advance=1, status=f"log-likelihood {log_likelihood:.3f} per frame")

    def epoch_end(m):
        if writer is not None:  # the same numbers as metrics.jsonl, under their own names
            for key, value in m.items():
                if key != "epoch":
                    writer.add_scalar(key, value, m["epoch"])
            writer.flush()
        valid = f"  valid {m['valid_elbo']:.3f}" if "valid_elbo" in m else ""
        progress.console.print(f"epoch {m['epoch']:3d}  ELBO {m['train_elbo']:.4f}  KL {m['train_kl']:.4f}"
                               f"  lr {m['lr']:.2e}  {m['frames_per_second']:.0f} frames/s{valid}")

    trainer = Trainer(config, data, run_dir, device,
                      Hooks(epoch_start, step, epoch_end, validation_start, validation_step, pretrain_start,
                            pretrain_step), capture=capture)
    if trainer.capture_problem:
        console.print(styled(("--capture", "yellow"), f": {trainer.capture_problem}; the step runs eagerly"))
    trainer.start(resume=resume)
    writer = SummaryWriter(str(trainer.run.path / "tensorboard")) if tensorboard else None
    sizes = f"d={config.d} a={config.a} z={config.z}" if config.model == "srnn" else f"J={config.z}"
    summary = (f": {data.dataset} ({data.path}), {config.model_name}, {sizes}, "
               f"{trainer.config.epochs} epochs"
               + (f" ({config.updates} updates)" if config.updates else "")
               + f", {config.elbo} {'bound' if config.iwae_particles else 'ELBO'}, device {trainer.device}"
               + (f", resumed after epoch {trainer.epoch}" if trainer.epoch else ""))
    console.print(styled("run ", (str(run_dir), "bold"), summary))
    with progress:
        trainer.fit()
    _print_training_summary(trainer.run, recorded=Path(config_file).parent if config_file else None)


def _augment(value):
    try:
        return parse_augment(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc).partition(": ")[2] or str(exc)) from None


def recorded_variant(record: dict) -> str:
    """The --variant whose file holds a recorded run's data: srnn, or boulanger, which names every other file
    data/<dataset>.h5 (the Bach chorales, a --midi folder)."""
    return "srnn" if (record.get("data_fingerprint") or {}).get("variant") == "srnn" else "boulanger"


def recorded_data(record: dict, record_file) -> str:
    """The prepared file of a recorded run's dataset and variant, refused unless it holds the very data the run
    trained on (the fingerprint's checksum)."""
    from data_prep.h5 import PianoRollFile

    fingerprint = record.get("data_fingerprint") or {}
    name, variant = record.get("dataset"), recorded_variant(record)
    if not name:
        raise UserError(f"{record_file}: names no dataset; pass --data")
    path = existing_data_file(named_data_file(name, variant), name, variant)
    if fingerprint.get("sha256") and PianoRollFile(path).fingerprint().get("sha256") != fingerprint["sha256"]:
        raise UserError(f"{path}: not the data {record_file} was trained on (its checksum differs); prepare it "
                        "again, or pass --data to train on this file anyway")
    return path


def prep_command(record: dict | None, dataset: str, variant: str) -> str:
    """The `srnn prep` command that makes a run's data again (from its record), or the named dataset's."""
    if not record:
        return prep_command_for(dataset, variant)
    return prep_command_for(record.get("dataset") or dataset, recorded_variant(record))


def _without_option(argv, name):
    """argv without ``name VALUE`` or ``name=VALUE``."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == name:
            skip = True
        elif not arg.startswith(name + "="):
            out.append(arg)
    return out


def _best_validation(metrics: list):
    return max((m["valid_elbo"] for m in metrics if "valid_elbo" in m), default=None)


def _print_training_summary(run, recorded: Path | None = None):
    """The epochs' table and the best validation ELBO; with ``recorded`` (the folder of the --config record),
    the recorded run's best validation beside the new one."""
    rows = run.metrics()
    table = numbers_table(f"training summary  {run}",
                          ("epoch", "train ELBO", "recon", "KL", "KL temp", "lr", "frames/s", "valid ELBO"))
    for m in rows:
        table.add_row(str(m["epoch"]), f"{m['train_elbo']:.4f}", f"{m['train_reconstruction']:.4f}",
                      f"{m['train_kl']:.4f}", f"{m['kl_temperature']:.2f}", f"{m['lr']:.2e}",
                      f"{m['frames_per_second']:.0f}", f"{m['valid_elbo']:.4f}" if "valid_elbo" in m else "")
    out.print(table)
    best = _best_validation(rows)
    if best is not None:
        out.print(f"best validation ELBO per frame: {best:.4f} (best.pt)")
    if recorded is not None and best is not None:
        from pyro_srnn.runs import RunDir

        before = _best_validation(RunDir(recorded).metrics())
        if before is not None:
            out.print(f"recorded in {recorded}: {before:.4f}; new - recorded: {best - before:+.4f} (scores: srnn "
                      f"evaluate {run} --split test --json, beside {recorded}/test.json)")
