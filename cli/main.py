"""The ``srnn`` command line: parse options, call data_prep and pyro_srnn, show bars and tables."""
from __future__ import annotations

import functools
import json
import os
import sys
from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn, \
    TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

from data_prep.midi import MAX_FRAMES
from pyro_srnn.config import SRNNConfig, parse_augment

DEFAULT = SRNNConfig()  # the paper's hyperparameters: the one source of every default below

# rich wraps at 80 columns when output is not a terminal (logs, CI); tables are wider than that
console = Console(stderr=True, width=None if sys.stderr.isatty() else 120)
out = Console(width=None if sys.stdout.isatty() else 120)

DATASETS = ("jsb", "nottingham", "muse", "piano", "bach", "merged")


def numbers_table(title: str, columns) -> Table:
    """A table of right-aligned columns, the shape of every summary this command line prints."""
    table = Table(title=title)
    for col in columns:
        table.add_column(col, justify="right")
    return table


class UserError(click.ClickException):
    """A problem the user can fix; shown as one line, exit code 1 unless told otherwise."""

    def __init__(self, message: str, exit_code: int = 1):
        super().__init__(message)
        self.exit_code = exit_code


def friendly_errors(fn):
    """Turn the domain errors of our packages into one-line messages instead of tracebacks."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from data_prep.files import OutputError
        from data_prep.h5 import DataFileError
        from data_prep.midi import MidiError
        from data_prep.sources import SourceError
        from pyro_srnn.errors import RunBusy, SRNNError

        try:
            return fn(*args, **kwargs)
        except RunBusy as exc:
            raise UserError(str(exc), exit_code=RunBusy.EXIT_CODE) from None
        except (DataFileError, MidiError, SourceError, SRNNError, OutputError) as exc:
            raise UserError(str(exc)) from None
        except OSError as exc:  # a full disk, a read-only folder, a file that vanished: the system's own words
            where = f"{exc.filename}: " if exc.filename else ""
            raise UserError(f"{where}{exc.strerror or exc}") from None
        except MemoryError:
            raise UserError("out of memory; ask for less (fewer or shorter pieces, a smaller model)") from None
        except KeyboardInterrupt:
            console.print("[red]interrupted[/red]: no partial output was left; a training run continues "
                          "from its last checkpoint with --resume")
            sys.exit(130)

    return wrapper


class BarReporter:
    """data_prep's Reporter shown as a rich progress bar; skipped files get one warning line each."""

    def __init__(self, progress: Progress):
        self.progress, self.task = progress, None

    def start(self, total, what):
        self.task = self.progress.add_task(what, total=total)

    def advance(self, name, error=None):
        if error:
            self.progress.console.print(f"[yellow]skipped[/yellow] {error}")
        self.progress.advance(self.task)


class RateColumn(ProgressColumn):
    """Items per second of a task, in the task's own unit."""

    def __init__(self, unit):
        super().__init__()
        self.unit = unit

    def render(self, task):
        # rich estimates speed from the last updates; a task done in one or two updates has none
        speed = task.finished_speed or task.speed
        if speed is None and task.elapsed:
            speed = task.completed / task.elapsed
        return Text(f"{speed or 0:>8.1f} {self.unit}/s", style="progress.data.speed")


def progress_bar(unit="files", *extra_columns) -> Progress:
    """A bar with count, rate, elapsed time and ETA."""
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), RateColumn(unit),
                    TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(), *extra_columns,
                    console=console)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="pyro-srnn")
def srnn():
    """Stochastic Recurrent Neural Networks (Fraccaro et al. 2016) for polyphonic music, in Pyro."""


@srnn.command()
@click.option("--dataset", type=click.Choice(DATASETS), help="A benchmark, the music21 Bach chorales, or "
              "the four benchmarks merged.")
@click.option("--variant", type=click.Choice(["boulanger", "srnn"]), default="boulanger", show_default=True,
              help="boulanger: beat frames transposed to C (most papers); srnn: 0.3 s frames (the SRNN paper).")
@click.option("--source", type=click.Path(), help="Source file or folder (pickle, .mat, npz, zip or MIDI folder).")
@click.option("--midi", "midi_dir", type=click.Path(), help="Prepare any folder of MIDI files instead.")
@click.option("--name", help="Dataset name for --midi (the output is OUT/NAME.h5).")
@click.option("--frame", type=click.Choice(["quarter", "eighth", "16th"]), help="Frame unit for MIDI sources.")
@click.option("--transpose/--no-transpose", default=None,
              help="Transpose MIDI sources to C major / C minor (default: on for benchmarks and bach, off for --midi).")
@click.option("--limit", type=click.IntRange(min=1), help="Keep the first N pieces of each split.")
@click.option("--max-frames", type=click.IntRange(min=1), default=MAX_FRAMES, show_default=True,
              help="Skip (with a warning) a MIDI piece longer than this many frames.")
@click.option("--out", "out_dir", type=click.Path(), default="data", show_default=True, help="Output folder.")
@click.option("--force", is_flag=True, help="Overwrite an existing output file.")
@friendly_errors
def prep(dataset, variant, source, midi_dir, name, frame, transpose, limit, max_frames, out_dir, force):
    """Prepare a dataset as an HDF5 file of piano rolls (OUT/<dataset>.h5, or OUT/<dataset>-srnn.h5)."""
    from data_prep import prep as P
    from data_prep.files import check_output

    if (dataset is None) == (midi_dir is None):
        raise UserError("give exactly one of --dataset or --midi")
    if midi_dir is not None and not name:
        raise UserError("--midi needs --name NAME for the output file")
    if dataset in ("bach", "merged") and variant != "boulanger":
        raise UserError(f"--dataset {dataset} exists in variant boulanger only")
    target = Path(out_dir) / (f"{name}.h5" if midi_dir else P.output_name(dataset, variant))
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    check_output(target, force)  # before the work, not after it
    with progress_bar() as progress:
        reporter = BarReporter(progress)
        if midi_dir:
            prepared = P.prepare_midi_folder(midi_dir, name, frame or "eighth", bool(transpose), limit, reporter,
                                             max_frames=max_frames)
        elif dataset == "bach":
            prepared = P.prepare_bach(limit, frame or "quarter", transpose is not False, reporter,
                                      max_frames=max_frames)
        elif dataset == "merged":
            prepared = P.prepare_merged(out_dir, limit, reporter)
        else:
            prepared = P.prepare_benchmark(dataset, variant, source, out_dir, frame, transpose is not False,
                                           limit, reporter, max_frames=max_frames)
    prepared.write(target, command="srnn " + " ".join(sys.argv[1:]), force=force)
    if prepared.skipped:
        console.print(f"[yellow]{len(prepared.skipped)} file(s) skipped[/yellow] (reasons above)")
    from data_prep.h5 import PianoRollFile

    _print_summary(PianoRollFile(target))
    console.print(f"wrote [bold]{target}[/bold]")


@srnn.command()
@click.argument("file", type=click.Path())
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@friendly_errors
def info(file, as_json):
    """Sequences, frames, notes per frame and length range per split of a prepared FILE."""
    from data_prep.h5 import PianoRollFile

    data = PianoRollFile(file)
    if as_json:
        attrs = {k: v for k, v in data.attrs.items()}
        out.print_json(json.dumps({"file": file, "attrs": attrs, "splits": data.summary()}))
    else:
        _print_summary(data)


def _print_summary(data):
    a = data.attrs
    table = numbers_table(f"{a['dataset']} ({a['variant']}, {a['frame_name']} frames)  {data.path}",
                          ("split", "sequences", "frames", "notes/frame", "length min-max"))
    for split, s in data.summary().items():
        table.add_row(split, str(s["sequences"]), str(s["frames"]), f"{s['notes_per_frame']:.2f}",
                      f"{s['min_length']}-{s['max_length']}")
    out.print(table)



# ----------------------------------------------------------------------------- train

@srnn.command()
@click.option("--dataset", default="piano", show_default=True, help="Reads data/<dataset>.h5 (see srnn prep).")
@click.option("--data", "data_file", type=click.Path(), help="A prepared HDF5 file (overrides --dataset).")
@click.option("--z", type=click.IntRange(min=1), default=DEFAULT.z, show_default=True, help="Latent size z.")
@click.option("--d", type=click.IntRange(min=1), default=DEFAULT.d, show_default=True, help="Forward GRU size d.")
@click.option("--a", type=click.IntRange(min=1), default=DEFAULT.a, show_default=True, help="Backward GRU size a.")
@click.option("--hidden", type=click.IntRange(min=1), default=DEFAULT.hidden, show_default=True,
              help="MLP hidden width.")
@click.option("--seq-len", type=click.IntRange(min=1), default=DEFAULT.seq_len, show_default=True,
              help="Truncated back-propagation length.")
@click.option("--batch-size", type=click.IntRange(min=1), default=DEFAULT.batch_size, show_default=True,
              help="Parallel streams.")
@click.option("--epochs", type=click.IntRange(min=1), default=DEFAULT.epochs, show_default=True)
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=DEFAULT.lr, show_default=True)
@click.option("--elbo", type=click.Choice(["trace", "analytic"]), default=DEFAULT.elbo, show_default=True,
              help="trace: Trace_ELBO; analytic: TraceMeanField_ELBO (analytic KL per step, as the paper).")
@click.option("--schedule", type=click.Choice(["scaled", "fixed"]), default=DEFAULT.schedule, show_default=True,
              help="KL warm-up and constant learning rate: 20 epochs each as the paper (fixed), or their 40% "
                   "share of --epochs when that is under 50 (scaled).")
@click.option("--filtering", is_flag=True, help="Ablation: a_t from an MLP of [d_t, e(x_t)], no backward GRU.")
@click.option("--no-residual", is_flag=True, help="Ablation: posterior mean not added to the prior mean.")
@click.option("--augment", help="transpose[:R]: shift each training stream by a random -R..R semitones per epoch.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option("--seed", type=int, default=DEFAULT.seed, show_default=True)
@click.option("--run-dir", type=click.Path(), help="Default: runs/<dataset>-<date-time>/.")
@click.option("--resume", is_flag=True, help="Continue the run in --run-dir (or the latest run) from last.pt.")
@click.option("--nproc", type=click.IntRange(min=1), default=1, show_default=True,
              help="Data-parallel processes on this machine, launched by PyTorch's elastic launcher "
                   "(gloo on CPU, nccl on GPUs); the streams of a batch are split between them.")
@click.pass_context
@friendly_errors
def train(ctx, dataset, data_file, z, d, a, hidden, seq_len, batch_size, epochs, lr, elbo, schedule, filtering,
          no_residual, augment, device, seed, run_dir, resume, nproc):
    """Train an SRNN with the paper's recipe; live progress, metrics.jsonl, last.pt and best.pt."""
    import time

    from data_prep.h5 import PianoRollFile
    from pyro_srnn.runs import RunDir, latest_run
    from pyro_srnn.train import Hooks, Trainer

    options = dict(z=z, d=d, a=a, hidden=hidden, seq_len=seq_len, batch_size=batch_size, epochs=epochs, lr=lr,
                   elbo=elbo, schedule=schedule, filtering=filtering, residual=not no_residual, seed=seed,
                   augment_transpose=parse_augment(augment))
    if resume and run_dir is None:
        run_dir = str(latest_run())
    saved = RunDir(run_dir).record() if resume else None  # config.json, or the record last.pt carries
    if saved:
        given = {k for k in ctx.params if ctx.get_parameter_source(k).name == "COMMANDLINE"}
        given = {("residual" if k == "no_residual" else "augment_transpose" if k == "augment" else k) for k in given}
        config = SRNNConfig.from_dict({**saved["config"], **{k: v for k, v in options.items() if k in given}})
        data_file = data_file or saved["data"]
    else:
        config = SRNNConfig(**options)
    data_file = data_file or os.path.join("data", f"{dataset}.h5")
    if not Path(data_file).exists():
        raise UserError(f"{data_file}: no such data file; prepare it with `{prep_command(saved, dataset)}`")
    if nproc > 1 and config.batch_size % nproc:
        raise UserError(f"--nproc {nproc}: the {config.batch_size} streams of a batch (--batch-size) cannot be "
                        f"split evenly over {nproc} processes")
    data = PianoRollFile(data_file)
    distributed_child = int(os.environ.get("WORLD_SIZE", "1")) > 1
    if distributed_child and run_dir is None:
        raise UserError("under torchrun pass --run-dir: every process must write to the same run")
    run_dir = run_dir or os.path.join("runs", f"{data.dataset}-{time.strftime('%Y%m%d-%H%M%S')}")
    if nproc > 1 and not distributed_child:
        from pyro_srnn.distributed import launch

        argv = _without_option(sys.argv[1:], "--nproc") + (["--run-dir", run_dir] if "--run-dir" not in sys.argv else [])
        console.print(f"launching {nproc} data-parallel processes for run [bold]{run_dir}[/bold]")
        launch(nproc, [sys.executable, "-m", "cli.main", *argv])  # the first process prints the summary
        return
    if int(os.environ.get("RANK", "0")) > 0:  # only the first process reports
        trainer = Trainer(config, data, run_dir, device)
        trainer.start(resume=resume)
        trainer.fit()
        return

    progress = progress_bar("frames", TextColumn("{task.fields[status]}"))
    state = {}

    def epoch_start(epoch, n_batches):
        frames = trainer.streams.shape[1] * trainer.streams.shape[0]
        state["task"] = progress.add_task(f"epoch {epoch + 1}/{config.epochs}", total=frames, status="")

    def step(frames, m):
        progress.update(state["task"], advance=frames,
                        status=f"ELBO {m['elbo']:.3f}  KL {m['kl']:.3f}  T {m['temperature']:.2f}")

    def validation_start(frames):
        state["valid"] = progress.add_task("  validation", total=frames, status="")

    def validation_step(frames):
        progress.advance(state["valid"], frames)

    def epoch_end(m):
        valid = f"  valid {m['valid_elbo']:.3f}" if "valid_elbo" in m else ""
        progress.console.print(f"epoch {m['epoch']:3d}  ELBO {m['train_elbo']:.4f}  KL {m['train_kl']:.4f}"
                               f"  lr {m['lr']:.2e}  {m['frames_per_second']:.0f} frames/s{valid}")

    trainer = Trainer(config, data, run_dir, device,
                      Hooks(epoch_start, step, epoch_end, validation_start, validation_step))
    trainer.start(resume=resume)
    console.print(f"run [bold]{run_dir}[/bold]: {data.dataset} ({data.path}), d={config.d} a={config.a} "
                  f"z={config.z}, {config.epochs} epochs, {config.elbo} ELBO, device {trainer.device}"
                  + (f", resumed after epoch {trainer.epoch}" if trainer.epoch else ""))
    with progress:
        trainer.fit()
    _print_training_summary(trainer.run)


def prep_command(record: dict | None, dataset: str) -> str:
    """The `srnn prep` command that makes a run's data again (from its record), or the named dataset's."""
    fingerprint = (record or {}).get("data_fingerprint") or {}
    name = (record or {}).get("dataset") or dataset
    if name not in DATASETS:
        return f"srnn prep --midi FOLDER --name {name}"
    return f"srnn prep --dataset {name}" + (" --variant srnn" if fingerprint.get("variant") == "srnn" else "")


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


def _print_training_summary(run):
    rows = run.metrics()
    table = numbers_table(f"training summary  {run}",
                          ("epoch", "train ELBO", "recon", "KL", "KL temp", "lr", "frames/s", "valid ELBO"))
    for m in rows:
        table.add_row(str(m["epoch"]), f"{m['train_elbo']:.4f}", f"{m['train_reconstruction']:.4f}",
                      f"{m['train_kl']:.4f}", f"{m['kl_temperature']:.2f}", f"{m['lr']:.2e}",
                      f"{m['frames_per_second']:.0f}", f"{m['valid_elbo']:.4f}" if "valid_elbo" in m else "")
    out.print(table)
    best = max((m["valid_elbo"] for m in rows if "valid_elbo" in m), default=None)
    if best is not None:
        out.print(f"best validation ELBO per frame: {best:.4f} (best.pt)")


# ----------------------------------------------------------------------------- evaluate


@srnn.command()
@click.argument("target", required=False, type=click.Path())
@click.option("--split", type=click.Choice(["test", "valid", "train"]), default="test", show_default=True)
@click.option("--iwae", type=click.IntRange(min=0), default=0, show_default=True,
              help="K > 0 adds the importance-weighted bound with K samples.")
@click.option("--samples", type=click.IntRange(min=1), default=1, show_default=True,
              help="Average the ELBO over S draws.")
@click.option("--elbo", "kl", type=click.Choice(["analytic", "trace"]), default="analytic", show_default=True,
              help="KL term: analytic per step (the paper) or sampled.")
@click.option("--data", "data_file", type=click.Path(), help="Data file (default: the one the run trained on).")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--first-input", type=click.Choice(["zero", "x1"]), default="zero", show_default=True,
              help="u_1 of each sequence: 0 (the model's definition) or x_1 (the reference code's test arrays).")
@click.option("--active-units", is_flag=True, help="Count latent dimensions whose posterior mean varies (> 0.01).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@friendly_errors
def evaluate(target, split, iwae, samples, kl, data_file, device, seed, first_input, active_units, as_json):
    """ELBO (and IWAE bound) per frame of full sequences, for TARGET: a run directory or checkpoint
    (default: the most recent run under runs/)."""
    import time

    import torch

    from data_prep.h5 import PianoRollFile
    from pyro_srnn.evaluate import score_sequences
    from pyro_srnn.runs import RunDir, check_data, record_of_checkpoint, resolve_checkpoint
    from pyro_srnn.train import load_checkpoint, model_from_checkpoint, resolve_device

    checkpoint = resolve_checkpoint(target)
    ckpt = load_checkpoint(checkpoint)
    record = record_of_checkpoint(ckpt)
    if record["data"] is None and RunDir(checkpoint.parent).config_path.is_file():  # checkpoints before records
        record = RunDir(checkpoint.parent).record()
    if data_file is None and record.get("data") is None:
        raise UserError(f"{checkpoint}: it does not name the data it was trained on; pass --data FILE")
    data = PianoRollFile(data_file or record["data"])
    check_data(record.get("data_fingerprint"), data, checkpoint, same_data=data_file is None)
    dev = resolve_device(device)
    srnn = model_from_checkpoint(ckpt, dev)
    sequences = data.split(split).sequences()
    torch.manual_seed(seed)
    started = time.perf_counter()
    with progress_bar("frames") as progress:
        passes = samples + iwae
        task = progress.add_task(f"{split} ({len(sequences)} sequences)", total=passes * sum(map(len, sequences)))
        scores = score_sequences(srnn, sequences, kl=kl, samples=samples, iwae=iwae, device=dev,
                                 on_batch=lambda frames: progress.advance(task, frames * passes),
                                 first_input=first_input, active_units=active_units)
    seconds = time.perf_counter() - started
    result = {"checkpoint": str(checkpoint), "data": data.path, "split": split, "sequences": len(sequences),
              "frames": int(scores.lengths.sum()), "kl": kl, "samples": samples, "seconds": seconds,
              "elbo": scores.per_frame(), "reconstruction": scores.per_frame(scores.reconstruction),
              "kl_term": scores.per_frame(scores.kl)}
    result["first_input"] = first_input
    if iwae:
        result["iwae"] = {"k": iwae, **scores.per_frame(scores.iwae)}
    if active_units:
        result["active_units"] = scores.active_units()
        result["active_units_residual"] = scores.active_units(residual=True)
        result["latent_dims"] = srnn.config.z
    if as_json:
        out.print_json(json.dumps(result))
        return
    table = numbers_table(f"{data.dataset} {split}: {checkpoint}",
                          ("nats per frame", "per sequence (paper)", "± s.e.", "total frames"))
    rows = [("ELBO", result["elbo"]), ("  reconstruction", result["reconstruction"]), ("  KL", result["kl_term"])]
    if iwae:
        rows.append((f"IWAE bound, K={iwae}", result["iwae"]))
    for label, r in rows:
        stderr = "n/a" if r["per_sequence_stderr"] is None else f"{r['per_sequence_stderr']:.4f}"
        table.add_row(label, f"{r['per_sequence']:.4f}", stderr, f"{r['total_frames']:.4f}")
    out.print(table)
    out.print(f"{len(sequences)} sequences, {result['frames']} frames, {seconds:.1f} s"
              + (f"; active latent units {result['active_units']} of {srnn.config.z} "
                 f"({result['active_units_residual']} beyond the prior mean)" if active_units else ""))


# ----------------------------------------------------------------------------- sample


@srnn.command()
@click.option("-o", "--output", required=True, type=click.Path(), help="MIDI file to write (with --n K: out-1.mid ...).")
@click.option("--run", "run_dir", type=click.Path(), help="Run directory (default: the most recent under runs/).")
@click.option("--checkpoint", type=click.Path(), help="A checkpoint file instead of a run.")
@click.option("--steps", type=click.IntRange(min=1), default=200, show_default=True, help="Frames to sample.")
@click.option("--n", "count", type=click.IntRange(min=1), default=1, show_default=True, help="Number of pieces.")
@click.option("--prime", type=click.Path(), help="A MIDI file whose opening the samples continue.")
@click.option("--prime-steps", type=click.IntRange(min=1), default=32, show_default=True,
              help="Frames of --prime to use.")
@click.option("--png", type=click.Path(), help="Also draw the piano roll(s) to this PNG file.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option("--force", is_flag=True, help="Overwrite existing output files.")
@friendly_errors
def sample(output, run_dir, checkpoint, steps, count, prime, prime_steps, png, seed, device, force):
    """Sample new music from a trained SRNN and write it as MIDI (and optionally a PNG piano roll)."""
    import time

    from data_prep.files import check_output, staged
    from data_prep.midi import grid_from_attrs, read_midi_roll, roll_to_midi
    from pyro_srnn.runs import resolve_checkpoint
    from pyro_srnn.sample import sample_batches
    from pyro_srnn.train import load_checkpoint, model_from_checkpoint, resolve_device

    if run_dir and checkpoint:
        raise UserError("give --run or --checkpoint, not both")
    output = Path(output)
    targets = [output] if count == 1 else [output.with_name(f"{output.stem}-{i + 1}{output.suffix}")
                                           for i in range(count)]
    outputs = targets + ([Path(png)] if png else [])
    if len(set(outputs)) < len(outputs):
        raise UserError(f"{png}: --png names one of the MIDI outputs")
    for path in outputs:
        check_output(path, force)
    ckpt_path = resolve_checkpoint(checkpoint or run_dir)
    ckpt = load_checkpoint(ckpt_path)
    grid = grid_from_attrs(**ckpt["grid"])
    primer = read_midi_roll(prime, grid, transpose=0)[:prime_steps] if prime else None
    srnn = model_from_checkpoint(ckpt, resolve_device(device))
    started = time.perf_counter()
    drawn = []
    with staged(outputs, force) as temporaries, progress_bar("pieces") as progress:
        task = progress.add_task("sampling", total=count)
        written = 0
        for rolls in sample_batches(srnn, steps, count, primer, seed):
            for roll in rolls:
                roll_to_midi(roll, temporaries[written], grid)
                written += 1
            drawn.extend(rolls[:MAX_DRAWN - len(drawn)])
            progress.advance(task, len(rolls))
        seconds = time.perf_counter() - started
        if png:
            from pyro_srnn.plot import draw_rolls

            draw_rolls(drawn, temporaries[-1], grid, primed=0 if primer is None else len(primer))
    for path in targets[:3]:
        out.print(f"wrote {path}")
    if count > 3:
        out.print(f"... and {count - 3} more, to {targets[-1]}")
    if png:
        out.print(f"wrote {png}" + (f" (the first {MAX_DRAWN} of {count} pieces)" if count > MAX_DRAWN else ""))
    out.print(f"{count} x {steps} frames from {ckpt_path} ({grid.name} frames) in {seconds:.2f} s, "
              f"{count * steps / seconds:.0f} frames/s")


MAX_DRAWN = 16  # pieces drawn in a --png picture; a taller figure is unreadable and slow to draw


# ----------------------------------------------------------------------------- sweep


@srnn.command()
@click.option("--dataset", default="piano", show_default=True, help="Reads data/<dataset>.h5.")
@click.option("--data", "data_file", type=click.Path(), help="A prepared HDF5 file (overrides --dataset).")
@click.option("--grid", required=True, help='Values per option of srnn train, e.g. "a=30,300 d=30,300 z=10,100 seq-len=50,100".')
@click.option("--epochs", type=click.IntRange(min=1), default=20, show_default=True)
@click.option("--jobs", type=click.IntRange(min=1), default=1, show_default=True, help="Runs in parallel on this machine.")
@click.option("--shard", help="i/n: train only configurations i, i+n, i+2n, ... (one shard per machine).")
@click.option("--out", "out_dir", type=click.Path(), help="Sweep folder (default: sweeps/<dataset>/).")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@friendly_errors
def sweep(dataset, data_file, grid, epochs, jobs, shard, out_dir, device):
    """Train every configuration of a grid (skipping finished ones), then write results.md and results.csv
    with validation and test ELBO per configuration, best first. Sweeps may share a folder: a run that
    another sweep is training is reported busy and left to it."""
    from data_prep.files import staged
    from pyro_srnn.sweep import collect_results, parse_grid, parse_shard, results_tables, run_sweep
    from pyro_srnn.train import resolve_device

    data_file = data_file or os.path.join("data", f"{dataset}.h5")
    if not Path(data_file).exists():
        raise UserError(f"{data_file}: no such data file; prepare it with `srnn prep --dataset {dataset}`")
    out_dir = Path(out_dir or os.path.join("sweeps", Path(data_file).stem))
    points = parse_grid(grid, epochs)
    part = parse_shard(shard)
    mine = len(points[part[0]::part[1]])
    console.print(f"{len(points)} configurations, {mine} in this shard, {epochs} epochs each, {jobs} at a time, "
                  f"into {out_dir}/")
    with progress_bar("runs") as progress:
        task = progress.add_task("sweep", total=mine)

        def event(kind, point):
            progress.console.print(f"{kind:8s} {' '.join(f'{k}={v}' for k, v in point.items())}")
            progress.advance(task)

        outcomes = run_sweep(data_file, grid, epochs, out_dir, jobs, part,
                             extra=("--device", device), on_event=event)
    failed = [p for p, outcome in outcomes if outcome == "failed"]
    rows = collect_results(out_dir, data_file, epochs, resolve_device(device))
    md, csv_text = results_tables(rows)
    with staged([out_dir / "results.md", out_dir / "results.csv"], force=True) as (md_tmp, csv_tmp):
        md_tmp.write_text(md)
        csv_tmp.write_text(csv_text)
    out.print(md)
    out.print(f"wrote {out_dir / 'results.md'} and {out_dir / 'results.csv'} ({len(rows)} finished runs)")
    if failed:
        raise UserError(f"{len(failed)} run(s) failed; see train.log in their run directories under {out_dir}")


# ----------------------------------------------------------------------------- bench


@srnn.command()
@click.option("--size", type=click.Choice(["paper", "small"]), default="paper", show_default=True,
              help="paper: d=a=300, z=100; small: d=a=30, z=10 (MLPs 500 wide in both).")
@click.option("--repeats", type=click.IntRange(min=1), default=5, show_default=True, help="Interleaved repeats.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="cpu", show_default=True)
@click.option("--eval-data", type=click.Path(exists=True), help="Also time evaluating this file's test split.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@friendly_errors
def bench(size, repeats, device, eval_data, as_json):
    """Speed of a training step (ours and a naive Pyro SRNN), evaluation and sampling, in one run."""
    from pyro_srnn.bench import evaluation_seconds, run_benchmark
    from pyro_srnn.train import resolve_device

    with console.status(f"benchmarking at {size} size ({repeats} interleaved repeats)"):
        r = run_benchmark(size, repeats, resolve_device(device))
        if eval_data:
            r["evaluation"] = evaluation_seconds(eval_data, size, device=resolve_device(device))
    if as_json:
        out.print_json(json.dumps(r))
        return
    table = numbers_table(f"{size} size, batch 16 x 100, torch {r['torch']}, {r['threads']} threads, {r['device']}",
                          ("step (median)", "seconds", "GFLOP/s", "of matmul peak"))
    for name, seconds in r["step_seconds"].items():
        table.add_row(name, f"{seconds:.3f}", f"{r['achieved_gflops'][name]:.1f}",
                      f"{100 * r['fraction_of_matmul_peak'][name]:.1f}%")
    out.print(table)
    parts = numbers_table("where a step's time goes (forward + backward, medians)", ("part", "seconds"))
    for name, seconds in r["breakdown_seconds"].items():
        parts.add_row(name, f"{seconds:.3f}")
    out.print(parts)
    out.print(f"one step: {r['step_gflop']:.1f} GFLOP; fp32 matmul (2048x2048): {r['matmul_gflops']:.0f} GFLOP/s")
    out.print(f"speed-up over the naive Pyro SRNN: trace {r['speedup_trace']:.2f}x, "
              f"analytic {r['speedup_analytic']:.2f}x")
    if "evaluation" in r:
        e = r["evaluation"]
        out.print(f"evaluating {e['data']} {e['split']} ({e['sequences']} sequences, {e['frames']} frames): "
                  f"{e['seconds']:.1f} s")
    out.print(f"evaluation {r['eval_frames_per_second']:.0f} frames/s, sampling {r['sample_frames_per_second']:.0f} "
              "frames/s" + (f", peak memory of a step {r['peak_step_memory_mb']:.0f} MB"
                            if "peak_step_memory_mb" in r else ""))


def main():
    srnn(prog_name="srnn")


if __name__ == "__main__":
    main()
