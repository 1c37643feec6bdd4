"""The ``srnn`` command line: one module per command under cli/, over data_prep and pyro_srnn."""
from __future__ import annotations

import click

from .bench import bench
from .evaluate import evaluate
from .info import info
from .prep import prep
from .render import render
from .report import report
from .sample import sample
from .sweep import sweep
from .train import train


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="pyro-srnn")
def srnn():
    """Stochastic Recurrent Neural Networks (Fraccaro et al. 2016) for polyphonic music, in Pyro."""


for command in (prep, info, train, evaluate, sample, render, report, sweep, bench):
    srnn.add_command(command)


def main():
    srnn(prog_name="srnn")


if __name__ == "__main__":
    main()
