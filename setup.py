from setuptools import find_packages, setup

setup(
    name="pyro-srnn",
    version="0.1.0",
    description="Stochastic Recurrent Neural Networks (Fraccaro et al., NIPS 2016) for polyphonic music, in Pyro",
    packages=find_packages(include=["pyro_srnn", "pyro_srnn.*", "cli", "cli.*", "data_prep", "data_prep.*", "benchmarks"]),
    python_requires=">=3.10",
    install_requires=[
        "torch>=2.1",  # the Makefile pins torch==2.13.0, which installs from local disk here
        "pyro-ppl>=1.9",
        "numpy>=1.24",
        "click>=8.1",
        "h5py>=3.8",
        "rich>=13",
        "mido>=1.3",  # MIDI files
        "scipy>=1.10",  # reading the .mat conversion of the benchmarks
        "music21>=9",  # the offline Bach corpus
        "matplotlib>=3.7",  # piano-roll pictures
        "pretty-midi>=0.2.10",  # for the General MIDI soundfont it ships (TimGM6mb.sf2), used by srnn render
        "optuna>=4.4",  # srnn sweep: samplers, pruners and the study database shared between machines
    ],
    # The synthesiser, tinysoundfont, is installed by the Makefile with --no-deps: its one dependency, pyaudio,
    # is for live playback only and does not build without PortAudio.
    extras_require={"test": ["pytest>=7", "pytest-xdist>=3", "psycopg[binary]>=3.1", "html5lib>=1.1"], "tensorboard": ["tensorboard>=2.10"],
                    "postgres": ["psycopg[binary]>=3.1"]},  # sweeps whose study lives in a PostgreSQL server
    entry_points={"console_scripts": ["srnn=cli.main:main"]},
)
