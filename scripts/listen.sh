#!/usr/bin/env bash
# docs/samples: three samples of a run at a sampling setting, as MIDI, short WAVs (16 kHz mono, a few hundred
# KB) and one picture beside three test pieces of the same length.
# Usage: [STEPS=40] scripts/listen.sh RUN_DIR NAME [T] [BURN_IN]   (writes docs/samples/NAME-{1,2,3}.{mid,wav} and NAME.png)
set -euo pipefail
run=$1 name=$2 t=${3:-1} burn=${4:-32} steps=${STEPS:-40}
SRNN=${SRNN:-.venv/bin/srnn}
PYTHON=${PYTHON:-.venv/bin/python}
out=docs/samples
"$SRNN" sample --run "$run" -o "$out/$name.mid" --n 3 --steps "$steps" --seed 0 --temperature "$t" --burn-in "$burn" --force
for i in 1 2 3; do
  "$SRNN" render "$out/$name-$i.mid" -o "$out/$name-$i.wav" --rate 16000 --mono --force
done
"$PYTHON" - "$run" "$out/$name" <<'PY'
import sys
from pathlib import Path
from pyro_srnn import load_run
from pyro_srnn.plot import draw_rolls
from data_prep.midi import read_midi_roll
run = load_run(sys.argv[1])
samples = [read_midi_roll(f"{sys.argv[2]}-{i}.mid", run.data.grid, keep_length=True) for i in (1, 2, 3)]
n = len(samples[0])
test = [s[:n] for s in run.sequences("test") if len(s) >= n][:3]
draw_rolls(samples + test, f"{sys.argv[2]}.png", run.data.grid,
           titles=[f"sample {i}" for i in (1, 2, 3)] + [f"test piece {i} (first {n} frames)" for i in (1, 2, 3)])
PY
ls -la "$out"
