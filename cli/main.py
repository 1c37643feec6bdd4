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

console = Console(stderr=True)
out = Console()

DATASETS = ("jsb", "nottingham", "muse", "piano", "bach", "merged")


class UserError(click.ClickException):
    """A problem the user can fix; shown as one line, exit code 1."""


def friendly_errors(fn):
    """Turn the domain errors of our packages into one-line messages instead of tracebacks."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from data_prep.h5 import DataFileError
        from data_prep.midi import MidiError
        from data_prep.sources import SourceError

        known = (DataFileError, MidiError, SourceError, FileExistsError, FileNotFoundError)
        try:
            from pyro_srnn.errors import SRNNError
            known = known + (SRNNError,)
        except ImportError:  # the model package is optional for data preparation
            pass
        try:
            return fn(*args, **kwargs)
        except known as exc:
            raise UserError(str(exc)) from None
        except KeyboardInterrupt:
            console.print("[red]interrupted[/red]; nothing partial was written")
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
        return Text(f"{task.speed or 0:>8.1f} {self.unit}/s", style="progress.data.speed")


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
@click.option("--out", "out_dir", type=click.Path(), default="data", show_default=True, help="Output folder.")
@click.option("--force", is_flag=True, help="Overwrite an existing output file.")
@friendly_errors
def prep(dataset, variant, source, midi_dir, name, frame, transpose, limit, out_dir, force):
    """Prepare a dataset as an HDF5 file of piano rolls (OUT/<dataset>.h5, or OUT/<dataset>-srnn.h5)."""
    from data_prep import prep as P

    if (dataset is None) == (midi_dir is None):
        raise UserError("give exactly one of --dataset or --midi")
    if midi_dir is not None and not name:
        raise UserError("--midi needs --name NAME for the output file")
    if dataset in ("bach", "merged") and variant != "boulanger":
        raise UserError(f"--dataset {dataset} exists in variant boulanger only")
    target = Path(out_dir) / (f"{name}.h5" if midi_dir else P.output_name(dataset, variant))
    if target.exists() and not force:
        raise UserError(f"{target}: exists; pass --force to overwrite it")
    with progress_bar() as progress:
        reporter = BarReporter(progress)
        if midi_dir:
            prepared = P.prepare_midi_folder(midi_dir, name, frame or "eighth", bool(transpose), limit, reporter)
        elif dataset == "bach":
            prepared = P.prepare_bach(limit, frame or "quarter", transpose is not False, reporter)
        elif dataset == "merged":
            prepared = P.prepare_merged(out_dir, limit, reporter)
        else:
            prepared = P.prepare_benchmark(dataset, variant, source, out_dir, frame, transpose is not False,
                                           limit, reporter)
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
    table = Table(title=f"{a['dataset']} ({a['variant']}, {a['frame_name']} frames)  {data.path}")
    for col in ("split", "sequences", "frames", "notes/frame", "length min-max"):
        table.add_column(col, justify="right")
    for split, s in data.summary().items():
        table.add_row(split, str(s["sequences"]), str(s["frames"]), f"{s['notes_per_frame']:.2f}",
                      f"{s['min_length']}-{s['max_length']}")
    out.print(table)


def main():
    srnn(prog_name="srnn")


if __name__ == "__main__":
    main()
