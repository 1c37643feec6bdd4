"""`srnn bench`: the speed of a training step, evaluation and sampling, in one run."""
from __future__ import annotations

import json

import click

from benchmarks.sizes import BATCH, SIZES, STEPS, describe

from .common import console, friendly_errors, numbers_table, out


@click.command()
@click.option("--size", type=click.Choice(list(SIZES)), default="paper", show_default=True,
              help="; ".join(f"{name}: {describe(name)}" for name in SIZES) + ".")
@click.option("--repeats", type=click.IntRange(min=1), default=5, show_default=True, help="Interleaved repeats.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="cpu", show_default=True)
@click.option("--eval-data", type=click.Path(exists=True), help="Also time evaluating this file's test split.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@friendly_errors
def bench(size, repeats, device, eval_data, as_json):
    """Speed of a training step (ours, ours step by step as before the fused recurrence, hand-coded without
    Pyro, a naive Pyro SRNN, and on CUDA ours captured as a graph), evaluation and sampling, in one run."""
    from benchmarks.speed import evaluation_seconds, run_benchmark
    from pyro_srnn.train import resolve_device

    with console.status(f"benchmarking at {size} size ({repeats} interleaved repeats)"):
        r = run_benchmark(size, repeats, resolve_device(device))
        if eval_data:
            r["evaluation"] = evaluation_seconds(eval_data, size, device=resolve_device(device))
    if as_json:
        out.print_json(json.dumps(r))
        return
    table = numbers_table(f"{size} size, batch {BATCH} x {STEPS}, torch {r['torch']}, {r['threads']} threads, {r['device']}",
                          ("step (median)", "seconds", "GFLOP/s", "of matmul peak", "slowest / median"))
    for name, seconds in r["step_seconds"].items():
        table.add_row(name, f"{seconds:.3f}", f"{r['achieved_gflops'][name]:.1f}",
                      f"{100 * r['fraction_of_matmul_peak'][name]:.1f}%", f"{r['slowest_over_median'][name]:.2f}")
    out.print(table)
    variants = numbers_table("other models, the analytic step in the same run", ("model", "seconds", "x SRNN"))
    for name, seconds in r["variant_step_seconds"].items():
        variants.add_row(name, f"{seconds:.3f}", f"{r['variant_step_ratio'][name]:.2f}")
    out.print(variants)
    parts = numbers_table("where a step's time goes (forward + backward, medians)", ("part", "seconds"))
    for name, seconds in r["breakdown_seconds"].items():
        parts.add_row(name, f"{seconds:.3f}")
    out.print(parts)
    out.print(f"one step: {r['step_gflop']:.1f} GFLOP; fp32 matmul (2048x2048): {r['matmul_gflops']:.0f} GFLOP/s")
    out.print(f"speed-up of the fused step over the step-by-step one: trace {r['fused_speedup_trace']:.2f}x, "
              f"analytic {r['fused_speedup_analytic']:.2f}x")
    out.print(f"speed-up over the naive Pyro SRNN: trace {r['speedup_trace']:.2f}x, "
              f"analytic {r['speedup_analytic']:.2f}x")
    if "capture_speedup_trace" in r:
        out.print(f"speed-up of the captured step (CUDA graph) over ours: trace {r['capture_speedup_trace']:.2f}x, "
                  f"analytic {r['capture_speedup_analytic']:.2f}x")
    if "evaluation" in r:
        e = r["evaluation"]
        out.print(f"evaluating {e['data']} {e['split']} ({e['sequences']} sequences, {e['frames']} frames): "
                  f"{e['seconds']:.1f} s")
    out.print(f"evaluation {r['eval_frames_per_second']:.0f} frames/s, sampling {r['sample_frames_per_second']:.0f} "
              "frames/s" + (f", peak memory of a step {r['peak_step_memory_mb']:.0f} MB"
                            if "peak_step_memory_mb" in r else ""))
    n = r["nade_sample"]
    out.print(f"sampling {n['pieces']} x {n['frames']} frames from an SRNN-NADE (key by key): {n['seconds']:.1f} s")
