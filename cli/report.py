"""`srnn report`: one HTML page that shows a run, or several runs side by side."""
from __future__ import annotations

from pathlib import Path

import click

from .common import UserError, console, friendly_errors, out


@click.command()
@click.argument("targets", nargs=-1, required=True, type=click.Path())
@click.option("-o", "--output", type=click.Path(), help="HTML file (default: report.html in the run or sweep folder).")
@click.option("--evaluate", is_flag=True, help="Compute the test ELBO when the run has no test.json.")
@click.option("--no-audio", is_flag=True, help="Leave out the audio players (a smaller page).")
@click.option("--force", is_flag=True, help="Overwrite an existing report.")
@friendly_errors
def report(targets, output, evaluate, no_audio, force):
    """A self-contained page for TARGETS: one run directory (configuration, curves, test evaluation, samples
    to see and hear beside test pieces, sample statistics), or a sweep folder or several run directories
    (validation curves overlaid, a sortable table). Opens from disk: no server, no network."""
    from rich.text import Text

    from data_prep.files import check_output, reading, staged, writing
    from pyro_srnn.report import run_report, runs_report
    from pyro_srnn.runs import RunDir

    paths = [Path(t) for t in targets]
    for path in paths:
        if not path.is_dir():
            raise UserError(f"{path}: no such run directory or sweep folder")
    if len(paths) > 1:
        for path in paths:
            if not RunDir(path).holds_run():
                raise UserError(f"{path}: not a run directory (no config.json or last.pt); several targets must "
                                "all be runs")
    single = len(paths) == 1 and RunDir(paths[0]).holds_run()
    runs = paths if len(paths) > 1 or single else \
        sorted(p for p in paths[0].iterdir() if p.is_dir() and RunDir(p).holds_run())
    if not runs:
        raise UserError(f"{paths[0]}: holds no run directories")
    for run in runs:
        for item in run.iterdir():  # every file of a run it shows is an input the page may not replace
            if item.is_file():
                reading(item)
    output = Path(output or (paths[0] if len(paths) == 1 else Path(".")) / "report.html")
    check_output(output, force)  # before the work, not after it
    if single:
        with console.status(Text("sampling, rendering audio and drawing")):
            page = run_report(paths[0], evaluate=evaluate, audio=not no_audio)
    else:
        page = runs_report(runs)
    with staged([output], force) as (tmp,), writing(tmp):
        tmp.write_text(page)
    out.print(f"wrote {output} ({len(page) / 1e6:.1f} MB)")
