"""Keys sounding in the first frames of samples, with and without a burn-in, against the test pieces' openings
(RESULTS section 7). Usage: .venv/bin/python scripts/first_frames.py RUN_DIR"""
import sys

import numpy as np

from pyro_srnn import load_run
from pyro_srnn.sample import Controls, sample_rolls

run = load_run(sys.argv[1])
test = run.sequences("test")
openings = np.array([s[:4].sum(1) for s in test if len(s) >= 4]).mean(0)
print("test pieces: keys on in frames 0-3", np.round(openings, 2), "on average",
      round(float(np.concatenate(test).sum(1).mean()), 2))
for burn_in in (0, 8, 16, 32):
    per_frame = sample_rolls(run.model, 100, 64, seed=1, controls=Controls(burn_in=burn_in)).sum(2).mean(0)
    print(f"64 samples, burn-in {burn_in:2d}: keys on in frames 0-5", np.round(per_frame[:6], 2),
          "frames 20-99", round(float(per_frame[20:].mean()), 2))
