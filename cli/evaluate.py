"""`srnn evaluate`: ELBO and IWAE bound per frame of full sequences."""
from __future__ import annotations

import json

import click

from pyro_srnn.config import FIRST_INPUTS, MAX_MUSIC_PIECES, MAX_PARTICLES, MAX_SAMPLE_FRAMES, MAX_SEED

from .common import BarReporter, UserError, chosen_data_file, console, data_options, existing_data_file, \
    friendly_errors, numbers_table, out, progress_bar, refuse_inapplicable, sampling_options, styled

SCORING_ONLY = {"iwae": "--iwae", "samples": "--samples", "kl_form": "--elbo", "first_input": "--first-input",
                "active_units": "--active-units"}
MUSIC_ONLY = {"count": "--n", "steps": "--steps", "temperature": "--temperature", "z_scale": "--z-scale",
              "burn_in": "--burn-in"}


@click.command()
@click.argument("target", required=False, type=click.Path())
@click.option("--split", type=click.Choice(["test", "valid", "train"]), default="test", show_default=True)
@click.option("--iwae", type=click.IntRange(0, MAX_PARTICLES), default=0, show_default=True,
              help="K > 0 adds the importance-weighted bound with K samples.")
@click.option("--samples", type=click.IntRange(1, MAX_PARTICLES), default=1, show_default=True,
              help="Average the ELBO over S draws.")
@click.option("--elbo", "kl_form", type=click.Choice(["analytic", "trace"]), default="analytic", show_default=True,
              help="KL term: analytic per step (the paper) or sampled.")
@data_options(default_dataset=None)
@click.option("--midi", type=click.Path(), help="Score these MIDI pieces instead (a file or a folder), read as the "
              "run's data was read (frame grid, rule, transposition); prints each piece's ELBO per frame.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option("--seed", type=click.IntRange(0, MAX_SEED), default=0, show_default=True)
@click.option("--first-input", type=click.Choice(FIRST_INPUTS), default="zero", show_default=True,
              help="u_1 of each sequence: 0 (the model's definition), x_1, or the frame before the sequence "
              "where the data holds it (the SRNN npz test split; the reference code's test ELBO).")
@click.option("--music", is_flag=True, help="Instead of the ELBO: sample --n pieces of --steps frames and compare "
              "their statistics (polyphony, onsets, note lengths, pitches, silence, scale) with the split's.")
@click.option("--n", "count", type=click.IntRange(1, MAX_MUSIC_PIECES), default=32, show_default=True,
              help="--music: pieces.")
@click.option("--steps", type=click.IntRange(1, MAX_SAMPLE_FRAMES), default=400, show_default=True,
              help="--music: frames each.")
@sampling_options
@click.option("--active-units", is_flag=True, help="Count latent dimensions whose posterior mean varies (> 0.01).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@click.pass_context
@friendly_errors
def evaluate(ctx, target, split, iwae, samples, kl_form, dataset, variant, data_file, midi, device, seed, first_input, music, count, steps,
             temperature, z_scale, burn_in, active_units, as_json):
    """ELBO (and IWAE bound) per frame of the full sequences of a split or of MIDI pieces (--midi), or sample
    statistics against the data (--music), for TARGET: a run directory or checkpoint (default: the most
    recent run under runs/)."""
    import time

    import torch

    from pyro_srnn.api import load_run
    from pyro_srnn.errors import SRNNError
    from pyro_srnn.evaluate import first_inputs, score_sequences

    if music:
        refuse_inapplicable(ctx, SCORING_ONLY, "to --music, which samples instead of scoring")
    else:
        refuse_inapplicable(ctx, MUSIC_ONLY, "without --music (they set how --music samples)")
    data_file = chosen_data_file(ctx, dataset, variant, data_file)  # None: the data the run trained on
    if dataset is not None:
        existing_data_file(data_file, dataset, variant)
    run = load_run(target, device, data_file)  # the data checked against the run's fingerprint
    checkpoint, model, data = run.checkpoint, run.model, run.data
    dev = next(model.parameters()).device
    if data is None:
        where = run.record.get("data")
        raise UserError(f"{checkpoint}: " + (f"its data file {where} is missing; prepare it again or pass --data "
                                             "FILE" if where else "it does not name the data it was trained on; "
                                             "pass --data FILE"))
    if midi:
        from data_prep.prep import read_pieces, reading_of

        with progress_bar() as progress:
            pieces = read_pieces(midi, data.grid, reading_of(data.attrs), reporter=BarReporter(progress))
        if pieces.skipped:
            console.print(styled((f"{len(pieces.skipped)} file(s) skipped", "yellow"), " (reasons above)"))
        split, chosen = "MIDI", pieces.splits["test"]
    else:
        chosen = data.split(split)
    sequences = chosen.sequences()
    if not sequences:
        raise UserError(f"{midi or data.path}: the {split} split holds no sequences to score")
    if music:
        return music_report(model, sequences, f"{data.dataset} {split}", count, steps, seed,
                            (temperature, z_scale, burn_in), as_json)
    try:
        starts = first_inputs(chosen, first_input)
    except SRNNError as exc:
        raise UserError(f"{midi or data.path}: {split} split: {exc}") from None
    torch.manual_seed(seed)
    started = time.perf_counter()
    with progress_bar("frames") as progress:
        passes = samples + iwae
        task = progress.add_task(f"{split} ({len(sequences)} sequences)", total=passes * sum(map(len, sequences)))
        scores = score_sequences(model, sequences, kl_form=kl_form, samples=samples, iwae=iwae, device=dev,
                                 on_batch=lambda frames: progress.advance(task, frames * passes),
                                 first_inputs=starts, active_units=active_units)
    seconds = time.perf_counter() - started
    result = {"checkpoint": str(checkpoint), "data": data.path, "split": split, "sequences": len(sequences),
              "frames": int(scores.lengths.sum()), "kl": kl_form, "samples": samples, "seconds": seconds,
              "elbo": scores.per_frame(), "reconstruction": scores.per_frame(scores.reconstruction),
              "kl_term": scores.per_frame(scores.kl)}
    result["first_input"] = first_input
    result["exact_likelihood"] = model.exact  # the RNN: its ELBO (and any IWAE bound) is log p(x)
    if iwae:
        result["iwae"] = {"k": iwae, **scores.per_frame(scores.iwae)}
    if midi:
        result["midi"] = midi
        result["pieces"] = [{"name": name, "frames": int(n), "elbo_per_frame": float(e / n),
                             **({"iwae_per_frame": float(b / n)} if iwae else {})}
                            for name, n, e, b in zip(chosen.names, scores.lengths, scores.elbo,
                                                     scores.iwae if iwae else scores.elbo)]
    if active_units:
        result["active_units"] = scores.active_units()
        result["active_units_residual"] = scores.active_units(residual=True)
        result["latent_dims"] = model.config.z
    if as_json:
        out.print_json(json.dumps(result))
        return
    table = numbers_table(f"{data.dataset} {split}: {checkpoint}",
                          ("nats per frame", "per sequence (paper)", "± s.e.", "total frames"))
    rows = [("ELBO", result["elbo"]), ("  reconstruction", result["reconstruction"]), ("  KL", result["kl_term"])]
    if model.exact:  # no latent layer: the ELBO is the log-likelihood itself
        rows = [("log-likelihood (exact)", result["elbo"])]
    if iwae:
        rows.append((f"IWAE bound, K={iwae}", result["iwae"]))
    for label, r in rows:
        stderr = "n/a" if r["per_sequence_stderr"] is None else f"{r['per_sequence_stderr']:.4f}"
        table.add_row(label, f"{r['per_sequence']:.4f}", stderr, f"{r['total_frames']:.4f}")
    out.print(table)
    if midi:
        pieces_table = numbers_table(f"pieces scored by {checkpoint}", ("piece", "frames", "ELBO per frame")
                                     + (("IWAE per frame",) if iwae else ()))
        for piece in result["pieces"]:
            pieces_table.add_row(piece["name"], str(piece["frames"]), f"{piece['elbo_per_frame']:.4f}",
                                 *((f"{piece['iwae_per_frame']:.4f}",) if iwae else ()))
        out.print(pieces_table)
    out.print(f"{len(sequences)} sequences, {result['frames']} frames, {seconds:.1f} s"
              + (f"; active latent units {result['active_units']} of {model.config.z} "
                 f"({result['active_units_residual']} beyond the prior mean)" if active_units else ""))


def music_report(model, sequences, what: str, count: int, steps: int, seed: int, controls, as_json: bool):
    """Samples against data on what a musician hears: one table, or the same as JSON."""
    from pyro_srnn.sample import Controls, sample_statistics

    controls = Controls(*controls)
    with progress_bar("frames") as progress:
        task = progress.add_task(f"sampling {count} x {steps} frames", total=count * (steps + controls.burn_in))
        rows = sample_statistics(model, sequences, count, steps, seed, controls,
                                 on_frames=lambda k: progress.advance(task, k))
    result = {"data": what, "pieces": count, "steps": steps, "seed": seed, "controls": controls.__dict__,
              "statistics": [{"statistic": name, "data": a, "samples": b, kind: value}
                             for name, a, b, kind, value in rows]}
    if as_json:
        out.print_json(json.dumps(result))
        return
    table = numbers_table(f"{count} samples x {steps} frames against {what} (T={controls.temperature:g}, "
                          f"S={controls.z_scale:g}, burn-in {controls.burn_in})",
                          ("statistic", "data", "samples", "ratio", "overlap (OA)"))
    for name, a, b, kind, value in rows:
        label = name.replace("_", " ") + (" (mean)" if kind == "OA" else "")
        table.add_row(label, f"{a:.3f}", f"{b:.3f}", f"{value:.2f}" if kind == "ratio" else "",
                      f"{value:.2f}" if kind == "OA" else "")
    out.print(table)
