"""`srnn sweep`: a grid or a search on Optuna, trained by worker processes, then tabulated."""
from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import click

from .common import UserError, chosen_data_file, console, data_options, existing_data_file, friendly_errors, out, \
    progress_bar, styled


@click.command()
@data_options("piano")
@click.option("--grid", help='Every combination of values, e.g. "a=30,300 d=30,300 z=10,100 seq-len=50,100"; keys '
              "are configuration fields with dashes (Optuna's grid sampler).")
@click.option("--search", help='Ranges to search, e.g. "lr=1e-4..3e-3:log z=4..128 hidden=250,500" (LOW..HIGH, :log '
              "for a log scale, V1,V2 for choices; Optuna's TPE sampler).")
@click.option("--trials", type=click.IntRange(min=1), default=16, show_default=True,
              help="With --search: finished (complete or pruned) trials to reach.")
@click.option("--epochs", type=click.IntRange(min=1), default=20, show_default=True)
@click.option("--jobs", type=click.IntRange(min=1), default=1, show_default=True,
              help="Worker processes on this machine, sharing its cores.")
@click.option("--prune/--no-prune", default=True, show_default=True,
              help="Stop trials whose validation ELBO is below the median of earlier trials at the same epoch.")
@click.option("--storage", help="Study database URL (default: sqlite in the sweep folder); e.g. "
              "postgresql://user@host/db to run one study from several machines.")
@click.option("--study", "study_name", help="Study name in the database (default: the sweep folder's name).")
@click.option("--out", "out_dir", type=click.Path(), help="Sweep folder for the run directories and results "
              "(default: sweeps/<data file name>/).")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.pass_context
@friendly_errors
def sweep(ctx, dataset, variant, data_file, grid, search, trials, epochs, jobs, prune, storage, study_name, out_dir, device):
    """Train a grid (--grid) or a search (--search) as one Optuna study, every trial an ordinary run directory,
    then write results.md and results.csv (validation and test ELBO per frame, state and parameters per
    trial, best first). Rerunning the same command continues the study: finished trials are kept and
    interrupted ones resume from their last.pt. Sweeps started with the same --storage and --study on
    several machines share the work."""
    from data_prep.h5 import PianoRollFile
    from pyro_srnn.sweep import Sweep, grid_points, open_study, parse_grid, parse_search, point_config, \
        search_corners, sqlite_file, worker_threads

    if bool(grid) == bool(search):
        raise UserError("give one of --grid and --search")
    configs = [point_config(p, epochs) for p in grid_points(parse_grid(grid, epochs))] if grid else \
        search_corners(parse_search(search), epochs)
    points = len(configs) if grid else None
    total = points or trials
    if jobs > total:
        raise UserError(f"--jobs {jobs}: the sweep has {total} trial(s), so at most {total} worker(s) have work")
    if storage:
        sqlite_file(storage)  # an in-memory database is refused before anything is made
    from pyro_srnn.memory import check_fits  # torch: after the checks that need none, so that they answer at once
    from pyro_srnn.train import resolve_device

    check_fits(configs, f"--jobs {jobs} with the sweep's largest configuration", processes=jobs,
               device=resolve_device(device))
    named = ctx.get_parameter_source("data_file").name != "COMMANDLINE"
    data_file = existing_data_file(chosen_data_file(ctx, dataset, variant, data_file), dataset if named else None,
                                   variant)
    out_dir = Path(out_dir or os.path.join("sweeps", Path(data_file).stem))
    spec = Sweep(data_file=str(data_file), out_dir=str(out_dir), epochs=epochs, grid=grid, search=search,
                 trials=trials, prune=prune, storage=storage, study_name=study_name,
                 device=str(resolve_device(device)), threads=worker_threads(jobs))
    study = open_study(spec, PianoRollFile(data_file).fingerprint())
    seen = {t.number: t.state for t in study.get_trials(deepcopy=False)}
    console.print(f"study {spec.name!r} ({spec.storage_url}): {'grid of ' + str(points) if grid else 'search of ' + str(trials)}"
                  f" trials, {epochs} epochs each, {jobs} worker(s), {sum(s.is_finished() for s in seen.values())} "
                  f"trial(s) already finished; runs in {out_dir}/")
    previous_term = signal.signal(signal.SIGTERM, _terminate)  # SIGTERM acts as Ctrl-C: workers stop with us
    with progress_bar("trials") as progress:
        task = progress.add_task("sweep", total=total)
        workers = []
        try:
            workers = _start_workers(spec, jobs)
            while True:
                alive = any(w.is_alive() for w in workers)
                _show_events(study, seen, progress, task)
                if not alive:
                    break
                time.sleep(1.0)
        except KeyboardInterrupt:
            for w in workers:
                w.kill()
            for w in workers:
                w.join()
            console.print(styled(("interrupted", "red"), ": rerun the same command to continue; interrupted trials "
                                 "resume from their last.pt"))
            sys.exit(130)
        finally:
            signal.signal(signal.SIGTERM, previous_term)
    broken = [w.exitcode for w in workers if w.exitcode]
    failed = _write_results(study, out_dir)
    if broken:
        raise UserError(f"{len(broken)} worker(s) stopped with an error (above); rerun the same command to continue")
    if failed:
        raise UserError(f"{failed} trial(s) failed; their errors are in {out_dir / 'results.md'}")


def _start_workers(spec, jobs: int):
    import multiprocessing

    context = multiprocessing.get_context("spawn")  # no forked copies of torch's threads or the database
    workers = [context.Process(target=_worker, args=(spec, os.getpid()), daemon=True) for _ in range(jobs)]
    for w in workers:
        w.start()
    return workers


def _terminate(signum, frame):
    raise KeyboardInterrupt


def _worker(spec, parent: int):
    """A worker process: Ctrl-C is the parent's to handle (it kills the workers, whose trials are then
    retried), the worker ends when its parent does, however the parent ended (kill -9 included), and a
    problem is one line on stderr."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _die_with_parent(parent)
    from pyro_srnn.errors import SRNNError, allocation_failure
    from pyro_srnn.sweep import work

    try:
        work(spec)
    except SRNNError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        sys.exit(1)
    except (MemoryError, RuntimeError) as exc:
        if not allocation_failure(exc):
            raise
        print(f"Error: {allocation_failure(exc)}", file=sys.stderr)
        sys.exit(1)


def _die_with_parent(parent: int):
    """End this process when ``parent`` ends. On Linux the kernel sends SIGKILL the moment it does
    (PR_SET_PDEATHSIG); elsewhere a thread looks every second. Checkpoints are written by rename, so a
    worker killed at any instant leaves its run resumable."""
    import threading

    try:
        import ctypes

        PR_SET_PDEATHSIG = 1
        kernel_watches = ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0
    except (OSError, AttributeError):  # not Linux
        kernel_watches = False
    if os.getppid() != parent:  # the parent died before the request was made
        os._exit(1)
    if kernel_watches:
        return

    def watch():
        while True:
            time.sleep(1.0)
            if os.getppid() != parent:
                os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


def _show_events(study, seen: dict, progress, task):
    """One line per trial that finished since the last look; the bar counts finished trials."""
    from optuna.trial import TrialState

    from pyro_srnn.sweep import trial_ended

    trials = study.get_trials(deepcopy=False)
    for t in trials:
        if not t.state.is_finished() or seen.get(t.number) == t.state or "duplicate_of" in t.user_attrs:
            continue
        seen[t.number] = t.state
        params = " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in t.params.items())
        a = t.user_attrs
        if t.state == TrialState.COMPLETE:
            what = f"finished {params}  valid {t.value:.4f}  test {a.get('test_elbo', float('nan')):.4f}"
        elif t.state == TrialState.PRUNED:
            what = f"pruned   {params}  at epoch {a.get('epochs', '?')}"
        else:
            what = f"failed   {params}  {a.get('error', '')}"
        progress.console.print(f"trial {t.number:3d} {what}")
    progress.update(task, completed=sum(map(trial_ended, trials)))


def _write_results(study, out_dir: Path):
    from data_prep.files import staged
    from pyro_srnn.sweep import results_tables, study_rows

    rows = study_rows(study, out_dir)
    md, csv_text = results_tables(rows)
    with staged([out_dir / "results.md", out_dir / "results.csv"], force=True) as (md_tmp, csv_tmp):
        md_tmp.write_text(md)
        csv_tmp.write_text(csv_text)
    out.print(md)
    failed = sum(r["state"].startswith("failed") for r in rows)
    out.print(f"wrote {out_dir / 'results.md'} and {out_dir / 'results.csv'} ({len(rows)} trials)")
    return failed
