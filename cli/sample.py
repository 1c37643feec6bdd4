"""`srnn sample`: new music from a trained SRNN, as MIDI and a piano-roll picture."""
from __future__ import annotations

import time
from pathlib import Path

import click

from pyro_srnn.config import MAX_SAMPLE_FRAMES, MAX_SEED

from .common import UserError, friendly_errors, out, progress_bar, sampling_options

MAX_PIECES = 100_000  # pieces of one command: each is a file (or two) of its own


@click.command()
@click.option("-o", "--output", required=True, type=click.Path(), help="MIDI file to write (with --n K: out-1.mid ...).")
@click.option("--run", "run_dir", type=click.Path(), help="Run directory (default: the most recent under runs/).")
@click.option("--checkpoint", type=click.Path(), help="A checkpoint file instead of a run.")
@click.option("--steps", type=click.IntRange(1, MAX_SAMPLE_FRAMES), default=200, show_default=True,
              help="Frames to sample.")
@click.option("--n", "count", type=click.IntRange(1, MAX_PIECES), default=1, show_default=True,
              help="Number of pieces.")
@click.option("--prime", type=click.Path(), help="A MIDI file whose opening the samples continue.")
@click.option("--prime-steps", type=click.IntRange(1, MAX_SAMPLE_FRAMES), default=32, show_default=True,
              help="Frames of --prime to use.")
@click.option("--png", type=click.Path(), help="Also draw the piano roll(s) to this PNG file.")
@click.option("--wav", type=click.Path(), help="Also render the piece(s) to this WAV file (with --n K: out-1.wav ...), "
              "piano, 44.1 kHz (see srnn render).")
@sampling_options
@click.option("--seed", type=click.IntRange(0, MAX_SEED), default=0, show_default=True)
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option("--force", is_flag=True, help="Overwrite existing output files.")
@friendly_errors
def sample(output, run_dir, checkpoint, steps, count, prime, prime_steps, png, wav, temperature, z_scale, burn_in, seed,
           device, force):
    """Sample new music from a trained SRNN and write it as MIDI (and optionally a PNG piano roll)."""

    from data_prep.files import check_output, staged
    from data_prep.midi import grid_from_attrs, read_midi_roll, roll_to_midi
    from pyro_srnn.runs import resolve_checkpoint
    from pyro_srnn.sample import Controls, sample_batches
    from pyro_srnn.checkpoint import load_checkpoint, model_from_checkpoint
    from pyro_srnn.train import resolve_device

    if run_dir and checkpoint:
        raise UserError("give --run or --checkpoint, not both")
    targets = numbered(Path(output), count)
    sounds = numbered(Path(wav), count) if wav else []
    outputs = targets + sounds + ([Path(png)] if png else [])
    if len(set(outputs)) < len(outputs):
        raise UserError("-o, --wav and --png must name different files")
    if sounds:
        from data_prep.audio import render_midi, soundfont_path, write_wav

        soundfont_path()  # a missing soundfont is found before sampling, not after
    for path in outputs:
        check_output(path, force)
    controls = Controls(temperature, z_scale, burn_in)
    ckpt_path = resolve_checkpoint(checkpoint or run_dir)
    ckpt = load_checkpoint(ckpt_path)
    grid = grid_from_attrs(**ckpt["grid"])
    primer = read_midi_roll(prime, grid, transpose=0)[:prime_steps] if prime else None
    model = model_from_checkpoint(ckpt, resolve_device(device))
    drawn, seconds = [], 0.0  # seconds spent sampling, not writing or rendering
    with staged(outputs, force) as temporaries, progress_bar("frames") as progress:
        per_piece = steps + (0 if primer is not None else controls.burn_in)
        task = progress.add_task(f"sampling {count} x {steps} frames", total=count * per_piece)
        written = 0
        batches = sample_batches(model, steps, count, primer, seed, controls=controls,
                                 on_frames=lambda k: progress.advance(task, k))
        while True:
            started = time.perf_counter()
            rolls = next(batches, None)
            seconds += time.perf_counter() - started
            if rolls is None:
                break
            for roll in rolls:
                roll_to_midi(roll, temporaries[written], grid, bpm=ckpt.get("tempo_bpm") or 120.0)
                if sounds:
                    write_wav(render_midi(temporaries[written]), temporaries[count + written])
                written += 1
            drawn.extend(rolls[:MAX_DRAWN - len(drawn)])
        if png:
            from pyro_srnn.plot import draw_rolls

            draw_rolls(drawn, temporaries[-1], grid, primed=0 if primer is None else len(primer))
    for paths in (targets, sounds):
        for path in paths[:3]:
            out.print(f"wrote {path}")
        if len(paths) > 3:
            out.print(f"... and {len(paths) - 3} more, to {paths[-1]}")
    if png:
        out.print(f"wrote {png}" + (f" (the first {MAX_DRAWN} of {count} pieces)" if count > MAX_DRAWN else ""))
    out.print(f"{count} x {steps} frames from {ckpt_path} ({grid.name} frames) in {seconds:.2f} s, "
              f"{count * steps / seconds:.0f} frames/s")


def numbered(path: Path, count: int) -> list:
    """``path`` for one piece; path-1, path-2, ... (before the suffix) for several."""
    return [path] if count == 1 else [path.with_name(f"{path.stem}-{i + 1}{path.suffix}") for i in range(count)]


MAX_DRAWN = 16  # pieces drawn in a --png picture; a taller figure is unreadable and slow to draw
