"""What every command shares: the consoles, one-line errors, progress bars and summary tables."""
from __future__ import annotations

import functools
import os
import sys
from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn, \
    TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

from data_prep.limits import VARIANTS, output_name
from pyro_srnn.config import MAX_SAMPLE_FRAMES, SAMPLING_BURN_IN, SAMPLING_LIMITS, SRNNConfig

DEFAULT = SRNNConfig()  # the paper's hyperparameters: the one source of every default below

# The terminal is one medium with one escaping rule: rich never reads markup or emoji codes in what it prints
# (file, folder, dataset and frame names reach tables, titles and lines verbatim), our own colours are styles
# (:func:`styled`), and rich drops control characters itself. rich wraps at 80 columns when output is not a
# terminal (logs, CI); tables are wider than that.
console = Console(stderr=True, width=None if sys.stderr.isatty() else 120, markup=False, emoji=False)
out = Console(width=None if sys.stdout.isatty() else 120, markup=False, emoji=False)


def styled(*parts) -> Text:
    """A line of plain strings and (string, style) pairs, e.g. styled(("skipped", "yellow"), " ", reason): the
    strings are shown as they are, whatever brackets they hold."""
    return Text.assemble(*parts)


def printable(text: str) -> str:
    """``text`` on one line: control characters (a newline in a file name) written as escapes."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(text))

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
        super().__init__(printable(message))
        self.exit_code = exit_code


def friendly_errors(fn):
    """Turn the domain errors of our packages into one-line messages instead of tracebacks."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from data_prep.audio import AudioError
        from data_prep.files import OutputError, command_inputs
        from data_prep.h5 import DataFileError
        from data_prep.midi import MidiError
        from data_prep.sources import SourceError
        from pyro_srnn.errors import RunBusy, SRNNError

        try:
            with command_inputs():
                return fn(*args, **kwargs)
        except RunBusy as exc:
            raise UserError(str(exc), exit_code=RunBusy.EXIT_CODE) from None
        except (DataFileError, MidiError, SourceError, SRNNError, OutputError, AudioError) as exc:
            raise UserError(str(exc)) from None
        except OSError as exc:  # a full disk, a read-only folder, a file that vanished: the system's own words
            where = f"{exc.filename}: " if exc.filename else ""
            raise UserError(f"{where}{exc.strerror or exc}") from None
        except (MemoryError, RuntimeError) as exc:
            from pyro_srnn.errors import allocation_failure

            if not allocation_failure(exc):
                raise
            raise UserError(allocation_failure(exc)) from None
        except KeyboardInterrupt:
            console.print(styled(("interrupted", "red"), ": no partial output was left; a training run continues "
                                 "from its last checkpoint with --resume"))
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
            self.progress.console.print(styled(("skipped", "yellow"), " ", error))
        self.progress.advance(self.task)


class RateColumn(ProgressColumn):
    """Items per second of a task since it started, in the task's own unit."""

    def __init__(self, unit):
        super().__init__()
        self.unit = unit

    @staticmethod
    def rate(task) -> float:
        """Completed over elapsed, or from a task's ``rate_since`` field on. rich's own speed is an estimate from
        the updates of a recent window, which leaves out the first update's items and so misreads a task of a
        few uneven updates (a validation of length-sorted batches)."""
        if "rate_since" in task.fields:  # (completed, time): count from there, past one-time start-up costs
            done, since = task.fields["rate_since"]
            seconds = (task.stop_time or task.get_time()) - since
            return (task.completed - done) / seconds if seconds > 0 else 0.0
        return task.completed / task.elapsed if task.elapsed else 0.0

    def render(self, task):
        return Text(f"{self.rate(task):>8.1f} {self.unit}/s", style="progress.data.speed")


def progress_bar(unit="files", *extra_columns) -> Progress:
    """A bar with count, rate, elapsed time and ETA."""
    return Progress(TextColumn("{task.description}", markup=False), BarColumn(), MofNCompleteColumn(), RateColumn(unit),
                    TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(), *extra_columns,
                    console=console)


def refuse_inapplicable(ctx, options: dict, why: str):
    """Refuse options given on the command line that the chosen mode does not use. ``options`` maps parameter
    names to how they are spelt (``{"iwae": "--iwae"}``); ``why`` ends the sentence."""
    given = [spelling for name, spelling in options.items() if given_on_command_line(ctx, name)]
    if given:
        raise UserError(f"{', '.join(given)} {'does' if len(given) == 1 else 'do'} not apply {why}")


def sampling_options(fn):
    """--temperature, --z-scale and --burn-in: departures from ancestral sampling (pyro_srnn.sample.Controls),
    in the ranges Controls accepts."""
    low_t, high_t = SAMPLING_LIMITS["temperature"]
    high_s = SAMPLING_LIMITS["z_scale"][1]
    options = [
        click.option("--temperature", type=click.FloatRange(low_t, high_t), default=1.0, show_default=True,
                     help="Divide the emission's logits by T (below 1: fewer, surer notes)."),
        click.option("--z-scale", type=click.FloatRange(0, high_s), default=1.0, show_default=True,
                     help="Multiply the prior's standard deviation of z_t by S (0: its mean)."),
        click.option("--burn-in", type=click.IntRange(0, MAX_SAMPLE_FRAMES), default=SAMPLING_BURN_IN,
                     show_default=True,
                     help="Generate N frames from the zero state and drop them before the piece starts (from the "
                          "zero state alone the model opens with a burst of notes; 0: sample as defined)."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def data_options(default_dataset: str | None = "piano"):
    """--dataset, --variant and --data: a prepared file by name (data/<dataset>.h5 for the Boulanger rolls,
    data/<dataset>-srnn.h5 for the SRNN variant, as srnn prep names them) or by path."""
    def decorate(fn):
        options = [
            click.option("--dataset", default=default_dataset, show_default=default_dataset is not None,
                         help="Reads data/<dataset>.h5, or with --variant srnn data/<dataset>-srnn.h5 (see srnn prep)."),
            click.option("--variant", type=click.Choice(VARIANTS), default="boulanger", show_default=True,
                         help="Which preparation of --dataset to read."),
            click.option("--data", "data_file", type=click.Path(),
                         help="A prepared HDF5 file (instead of --dataset)" +
                              (";" if default_dataset else " default: the one the run trained on.")),
        ]
        for option in reversed(options):
            fn = option(fn)
        return fn
    return decorate


def refuse_other_models(ctx, model: str, given: dict):
    """An option given on the command line that only another model reads is a mistake (--residual for a
    TSBN): one line naming it, whatever its value."""
    from pyro_srnn.config import MODEL_FIELDS

    for other, names in MODEL_FIELDS.items():
        if other == model:
            continue
        for name in names:
            if name in given:
                option = next(p for p in ctx.command.params if p.name == name)
                raise UserError(f"{'/'.join(option.opts + option.secondary_opts)} is an option of the "
                                f"{other.upper()}, not of the {model.upper()} (--model {model})")


def given_on_command_line(ctx, name: str) -> bool:
    source = ctx.get_parameter_source(name)
    return source is not None and source.name == "COMMANDLINE"


def chosen_data_file(ctx, dataset: str | None, variant: str, data_file: str | None) -> str | None:
    """The file data_options name: --data as given, or --dataset's file in --variant (None: neither given
    where --dataset has no default)."""
    if data_file is not None:
        if given_on_command_line(ctx, "dataset") or given_on_command_line(ctx, "variant"):
            raise UserError("--data names the file itself: give --dataset (and --variant) or --data, not both")
        return data_file
    if dataset is None:
        if given_on_command_line(ctx, "variant"):
            raise UserError("--variant applies to --dataset")
        return None
    return named_data_file(dataset, variant)


def named_data_file(dataset: str, variant: str) -> str:
    """Where srnn prep writes a dataset in a variant: data/<dataset>.h5 or data/<dataset>-srnn.h5."""
    return os.path.join("data", output_name(dataset, variant))


def prep_command_for(dataset: str, variant: str = "boulanger") -> str:
    """The `srnn prep` command that makes the named dataset's file in that variant."""
    if dataset not in DATASETS:
        return f"srnn prep --midi FOLDER --name {dataset}"
    return f"srnn prep --dataset {dataset}" + (f" --variant {variant}" if variant != "boulanger" else "")


def existing_data_file(path, dataset: str | None, variant: str = "boulanger") -> str:
    """``path`` if it exists; otherwise a one-line error naming the prep command that makes it."""
    if not Path(path).exists():
        how = f"; prepare it with `{prep_command_for(dataset, variant)}`" if dataset else ""
        raise UserError(f"{path}: no such data file{how}")
    return str(path)
