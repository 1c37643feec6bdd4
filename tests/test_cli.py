"""Command-line conventions: --help everywhere, non-zero exit codes on errors, paper defaults from the config."""
import itertools

import pytest
from click.testing import CliRunner

from cli.main import srnn
from pyro_srnn.config import SRNNConfig

COMMANDS = ["prep", "info", "train", "evaluate", "sample", "render", "report", "sweep", "bench"]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command):
    result = CliRunner().invoke(srnn, [command, "--help"])
    assert result.exit_code == 0 and result.output.startswith("Usage: srnn " + command)


def test_train_defaults_are_the_papers():
    help_text = CliRunner().invoke(srnn, ["train", "--help"]).output
    paper = SRNNConfig()
    assert (paper.d, paper.a, paper.z, paper.hidden, paper.seq_len, paper.batch_size) == (300, 300, 100, 500, 100, 16)
    for option, value in (("--z", 100), ("--d", 300), ("--epochs", 50), ("--seq-len", 100)):
        lines = help_text.splitlines()
        first = next(i for i, line in enumerate(lines) if line.strip().startswith(option + " "))
        block = " ".join([lines[first]] + list(itertools.takewhile(lambda line: not line.strip().startswith("-"),
                                                                     lines[first + 1:])))
        assert f"default: {value}" in " ".join(block.split()), block


def test_errors_exit_non_zero_without_traceback(tmp_path):
    # CliRunner catches exceptions itself, so "Traceback" never shows in its output: what it caught must be
    # click's own exit (the real entry point is driven in a subprocess by tests/test_faults.py)
    for args in (["info", str(tmp_path / "none.h5")], ["prep"], ["evaluate", str(tmp_path / "none")]):
        result = CliRunner().invoke(srnn, args)
        assert result.exit_code != 0
        assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)


def test_the_rate_column_shows_the_rate_of_a_task_finished_in_one_update():
    from rich.progress import Progress

    from cli.common import RateColumn

    now = [0.0]
    progress = Progress(RateColumn("frames"), get_time=lambda: now[0])
    task = progress.add_task("test", total=4725)
    now[0] = 2.0
    progress.advance(task, 4725)
    assert progress.tasks[0].speed is None  # what rich alone would show as no rate
    assert RateColumn("frames").render(progress.tasks[0]).plain.strip() == "2362.5 frames/s"


def test_the_rate_column_leaves_out_what_came_before_rate_since():
    from rich.progress import Progress

    from cli.common import RateColumn

    now = [0.0]
    progress = Progress(RateColumn("frames"), get_time=lambda: now[0])
    task = progress.add_task("epoch 1", total=1000)
    now[0] = 17.0  # a first update slowed by start-up: 100 frames in 17 s
    progress.update(task, advance=100, rate_since=(100, now[0]))
    now[0] = 18.0
    progress.advance(task, 900)  # then 900 frames in 1 s
    assert RateColumn("frames").rate(progress.tasks[0]) == pytest.approx(900.0)
    assert progress.tasks[0].completed == 1000


def test_the_rate_column_shows_items_over_elapsed_time_for_uneven_updates():
    from rich.progress import Progress

    from cli.common import RateColumn

    now = [0.0]
    progress = Progress(RateColumn("frames"), get_time=lambda: now[0])
    task = progress.add_task("validation", total=4465)
    for at, frames in ((0.5, 3000), (0.9, 1000), (0.94, 465)):  # length-sorted batches: long ones first
        now[0] = at
        progress.advance(task, frames)
    shown = float(RateColumn("frames").render(progress.tasks[0]).plain.split()[0])
    assert shown == pytest.approx(4465 / 0.94, abs=0.1)
    assert progress.tasks[0].finished_speed != pytest.approx(shown, rel=0.05)  # what rich alone would show
