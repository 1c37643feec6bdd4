"""`srnn render`: a MIDI file as a WAV you can listen to."""
from __future__ import annotations

from pathlib import Path

import click

from .common import UserError, friendly_errors, out


@click.command()
@click.argument("midi_file", type=click.Path())
@click.option("-o", "--output", required=True, type=click.Path(), help="WAV file to write (44.1 kHz, 16-bit stereo).")
@click.option("--program", type=click.IntRange(0, 127), default=0, show_default=True,
              help="General MIDI program every melodic channel plays (0: acoustic grand piano).")
@click.option("--file-programs", is_flag=True, help="Play the file's own programs instead of --program.")
@click.option("--rate", type=click.Choice(["44100", "22050", "16000"]), default="44100", show_default=True,
              help="Samples per second (lower: smaller files, duller sound).")
@click.option("--mono", is_flag=True, help="One channel instead of two (half the size).")
@click.option("--force", is_flag=True, help="Overwrite an existing output file.")
@friendly_errors
def render(midi_file, output, program, file_programs, rate, mono, force):
    """Render MIDI_FILE to a WAV with the General MIDI soundfont TimGM6mb, offline."""
    from data_prep.audio import render_midi, write_wav
    from data_prep.files import reading, staged

    if not Path(midi_file).is_file():
        raise UserError(f"{midi_file}: no such MIDI file")
    reading(midi_file)  # so that -o cannot name it
    with staged([output], force) as (tmp,):
        audio = render_midi(midi_file, None if file_programs else program, int(rate))
        write_wav(audio, tmp, int(rate), mono)
    out.print(f"wrote {output} ({len(audio) / int(rate):.1f} s)")
