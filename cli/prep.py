"""`srnn prep`: sources to a prepared HDF5 file of piano rolls."""
from __future__ import annotations

import sys
from pathlib import Path

import click

from data_prep.limits import MAX_FRAMES, RULES, VARIANTS, output_name

from .common import DATASETS, BarReporter, UserError, console, friendly_errors, numbers_table, out, progress_bar, \
    styled
from .info import print_summary


@click.command()
@click.option("--dataset", type=click.Choice(DATASETS), help="A benchmark, the music21 Bach chorales, or "
              "the four benchmarks merged.")
@click.option("--variant", type=click.Choice(VARIANTS), default="boulanger", show_default=True,
              help="boulanger: beat frames transposed to C (most papers); srnn: 0.3 s frames (the SRNN paper).")
@click.option("--source", type=click.Path(), help="Source file or folder (pickle, .mat, npz, zip or MIDI folder).")
@click.option("--midi", "midi_dir", type=click.Path(), help="Prepare any folder of MIDI files instead.")
@click.option("--name", help="Dataset name for --midi (the output is OUT/NAME.h5).")
@click.option("--frame", help="Frames of MIDI sources: quarter, eighth, 16th (beats, tempo ignored) or seconds such as "
              "0.3s (tempo map applied). Default: eighth for --midi, the benchmark's own otherwise.")
@click.option("--frame-rule", type=click.Choice(RULES),
              help="overlap: a note holds its onset frame and every frame it covers by half or more, so no note is "
                   "lost (default for --midi); sample: frame k holds the notes sounding at its sampling point, "
                   "Boulanger's rule (default for the benchmarks).")
@click.option("--drums", type=click.Choice(["skip", "keep"]), default="skip", show_default=True,
              help="--midi: the percussion channel (General MIDI channel 10) is skipped and counted, or kept.")
@click.option("--programs", help="--midi: keep only channels playing these General MIDI programs, e.g. 0-7 (pianos) "
              "or 0-7,40-47.")
@click.option("--split", "split_rule", type=click.Choice(["auto", "all-test"]), default="auto", show_default=True,
              help="--midi: auto uses train/ valid/ test/ subfolders or an 80/10/10 split; all-test puts every "
                   "file in the test split, to score a few pieces.")
@click.option("--transpose/--no-transpose", default=None,
              help="Transpose MIDI sources to C major / C minor (default: on for benchmarks and bach, off for --midi).")
@click.option("--limit", type=click.IntRange(min=1), help="Keep the first N pieces of each split.")
@click.option("--max-frames", type=click.IntRange(min=1), default=MAX_FRAMES, show_default=True,
              help="Skip (with a warning) a MIDI piece longer than this many frames.")
@click.option("--out", "out_dir", type=click.Path(), default="data", show_default=True, help="Output folder.")
@click.option("--force", is_flag=True, help="Overwrite an existing output file.")
@click.pass_context
@friendly_errors
def prep(ctx, dataset, variant, source, midi_dir, name, frame, frame_rule, drums, programs, split_rule, transpose,
         limit, max_frames, out_dir, force):
    """Prepare a dataset as an HDF5 file of piano rolls (OUT/<dataset>.h5, or OUT/<dataset>-srnn.h5)."""
    from data_prep.files import check_output
    from data_prep.prep import prepare_bach, prepare_benchmark, prepare_merged, prepare_midi_folder

    if (dataset is None) == (midi_dir is None):
        raise UserError("give exactly one of --dataset or --midi")
    given = {k for k in ctx.params if ctx.get_parameter_source(k).name == "COMMANDLINE"}
    only_midi = {"name": "--name", "drums": "--drums", "programs": "--programs", "split_rule": "--split"}
    not_midi = {"variant": "--variant", "source": "--source"}
    for key, option in (only_midi if dataset else not_midi).items():
        if key in given:
            raise UserError(f"{option} does not apply to --{'dataset' if dataset else 'midi'}; "
                            f"{'it is for --midi folders' if dataset else 'see srnn prep --help'}")
    if midi_dir is not None and not name:
        raise UserError("--midi needs --name NAME for the output file")
    if dataset in ("bach", "merged") and variant != "boulanger":
        raise UserError(f"--dataset {dataset} exists in variant boulanger only")
    if dataset == "merged" and ({"frame", "frame_rule", "transpose", "max_frames"} & given):
        raise UserError("--dataset merged takes the four benchmarks as they are; --frame, --frame-rule, "
                        "--transpose and --max-frames do not apply")
    if variant == "srnn" and frame:
        raise UserError("--frame does not apply to variant srnn, whose frames are 0.3 s by definition")
    target = Path(out_dir) / (f"{name}.h5" if midi_dir else output_name(dataset, variant))
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    check_output(target, force)  # before the work, not after it
    with progress_bar() as progress:
        reporter = BarReporter(progress)
        if midi_dir:
            prepared = prepare_midi_folder(midi_dir, name, frame or "eighth", bool(transpose), limit, reporter,
                                           max_frames=max_frames, rule=frame_rule or "overlap",
                                           drums=drums == "keep", programs=parse_programs(programs),
                                           all_test=split_rule == "all-test")
        elif dataset == "bach":
            if frame_rule:
                raise UserError("--frame-rule does not apply to --dataset bach (exact score onsets, sampled at "
                                "frame centres)")
            prepared = prepare_bach(limit, frame or "quarter", transpose is not False, reporter,
                                    max_frames=max_frames)
        elif dataset == "merged":
            prepared = prepare_merged(out_dir, limit, reporter)
        else:
            prepared = prepare_benchmark(dataset, variant, source, out_dir, frame, transpose is not False,
                                         limit, reporter, max_frames=max_frames, rule=frame_rule)
    prepared.write(target, command="srnn " + " ".join(sys.argv[1:]), force=force)
    if prepared.skipped:
        console.print(styled((f"{len(prepared.skipped)} file(s) skipped", "yellow"), " (reasons above)"))
    if prepared.reading is not None:
        print_note_counts(prepared)
    from data_prep.h5 import PianoRollFile

    print_summary(PianoRollFile(target))
    console.print(styled("wrote ", (str(target), "bold")))


def parse_programs(text: str | None):
    """'0-7,40' -> {0, ..., 7, 40}: General MIDI programs, 0-127."""
    if text is None:
        return None
    programs = set()
    for part in text.split(","):
        low, _, high = part.strip().partition("-")
        if not low.isdigit() or (high and not high.isdigit()) or not 0 <= int(low) <= int(high or low) <= 127:
            raise UserError(f"--programs {text!r}: expected General MIDI programs 0-127 such as 0-7 or 0-7,40")
        programs.update(range(int(low), int(high or low) + 1))
    return programs


def print_note_counts(prepared):
    """Per split: the notes in the files, those the rolls keep, the share lost, and what was skipped."""
    grid = prepared.grid
    table = numbers_table(f"notes ({grid.name} frames, {grid.rule} rule)",
                          ("split", "notes in files", "kept in roll", "lost", "drum notes skipped",
                           "other programs skipped"))
    for split, c in prepared.reading.counts.items():
        table.add_row(split, str(c.notes), str(c.kept), f"{100 * c.lost_share:.1f}%", str(c.drums),
                      str(c.other_programs))
    out.print(table)
