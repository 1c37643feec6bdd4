"""`srnn prep`: sources to a prepared HDF5 file of piano rolls."""
from __future__ import annotations

import sys
from pathlib import Path

import click

from data_prep.midi import MAX_FRAMES

from .common import DATASETS, BarReporter, UserError, console, friendly_errors, progress_bar
from .info import print_summary


@click.command()
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
    from data_prep.prep import output_name, prepare_bach, prepare_benchmark, prepare_merged, prepare_midi_folder
    from data_prep.files import check_output

    if (dataset is None) == (midi_dir is None):
        raise UserError("give exactly one of --dataset or --midi")
    if midi_dir is not None and not name:
        raise UserError("--midi needs --name NAME for the output file")
    if dataset in ("bach", "merged") and variant != "boulanger":
        raise UserError(f"--dataset {dataset} exists in variant boulanger only")
    target = Path(out_dir) / (f"{name}.h5" if midi_dir else output_name(dataset, variant))
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    check_output(target, force)  # before the work, not after it
    with progress_bar() as progress:
        reporter = BarReporter(progress)
        if midi_dir:
            prepared = prepare_midi_folder(midi_dir, name, frame or "eighth", bool(transpose), limit, reporter,
                                             max_frames=max_frames)
        elif dataset == "bach":
            prepared = prepare_bach(limit, frame or "quarter", transpose is not False, reporter,
                                      max_frames=max_frames)
        elif dataset == "merged":
            prepared = prepare_merged(out_dir, limit, reporter)
        else:
            prepared = prepare_benchmark(dataset, variant, source, out_dir, frame, transpose is not False,
                                           limit, reporter, max_frames=max_frames)
    prepared.write(target, command="srnn " + " ".join(sys.argv[1:]), force=force)
    if prepared.skipped:
        console.print(f"[yellow]{len(prepared.skipped)} file(s) skipped[/yellow] (reasons above)")
    from data_prep.h5 import PianoRollFile

    print_summary(PianoRollFile(target))
    console.print(f"wrote [bold]{target}[/bold]")
