"""`srnn info`: what a prepared data file holds."""
from __future__ import annotations

import json

import click

from .common import friendly_errors, numbers_table, out


@click.command()
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
        print_summary(data)


def print_summary(data):
    a = data.attrs
    tempo = f", median tempo {data.tempo_bpm:.0f} bpm" if data.tempo_bpm else ""
    table = numbers_table(f"{a['dataset']} ({a['variant']}, {a['frame_name']} frames, {data.grid.rule} rule{tempo})  "
                          f"{data.path}",
                          ("split", "sequences", "frames", "notes/frame", "length min-max"))
    for split, s in data.summary().items():
        table.add_row(split, str(s["sequences"]), str(s["frames"]), f"{s['notes_per_frame']:.2f}",
                      f"{s['min_length']}-{s['max_length']}")
    out.print(table)
