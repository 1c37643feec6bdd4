#!/usr/bin/env bash
# The GPU figures in docs/SPEED.md, in one pass on a CUDA machine (under 8 minutes): the CUDA tests (the captured
# step against the eager step among them), `srnn bench` on cuda at both sizes (eager and captured steps side by
# side, both ELBOs), a paper-size run training with --capture (frames per second), then 1, 4, 8 and 16
# captured runs sharing the GPU at once, until DEADLINE seconds have passed.
# Usage: OUT=folder [PY=python3] [DEADLINE=460] scripts/gpu_check.sh     (needs data/jsb.h5 and data/piano.h5
# prepared; every step writes its own files under $OUT, so a cut-off run keeps what it did). Python packages
# missing there (optuna is needed only by `srnn sweep`, not here) travel as wheels: see the device tool's notes.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-python3}; OUT=${OUT:-out/gpu}; DEADLINE=${DEADLINE:-460}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2} PYTHONUNBUFFERED=1
mkdir -p "$OUT"; OUT=$(realpath "$OUT")
left() { echo $(( DEADLINE - SECONDS )); }
step() { echo "== $1 (t=${SECONDS}s)"; }

step gpu; nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$OUT/gpu.txt"
"$PY" -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())" | tee -a "$OUT/gpu.txt"
step tests; timeout 120 "$PY" -m pytest -q -rf tests/test_cuda.py > "$OUT/tests.txt" 2>&1; tail -4 "$OUT/tests.txt"
for size in paper small; do
  step "bench $size"
  timeout 100 "$PY" -m cli.main bench --size "$size" --device cuda --repeats 5 --json \
    > "$OUT/bench-$size-cuda.json" 2> "$OUT/bench-$size-cuda.err"; tail -3 "$OUT/bench-$size-cuda.err"
done
step "train paper size, piano, 2 epochs, captured"
timeout 90 "$PY" -m cli.main train --data data/piano.h5 --d 300 --a 300 --z 100 --epochs 2 --elbo analytic \
  --device cuda --capture --run-dir /tmp/gpu-train > /tmp/gpu-train.log 2>&1; tail -5 /tmp/gpu-train.log
cp /tmp/gpu-train/metrics.jsonl "$OUT/train-paper-captured-metrics.jsonl" 2>/dev/null
# Many captured runs at once: each a paper-size JSB run; frames per second summed over the runs' first epochs
for n in 1 4 8 16; do
  [ "$(left)" -lt 40 ] && { step "no time left for $n concurrent runs"; break; }
  step "$n concurrent captured runs"
  for i in $(seq "$n"); do
    timeout 35 "$PY" -m cli.main train --data data/jsb.h5 --epochs 50 --elbo analytic --device cuda --capture \
      --seed "$i" --run-dir "/tmp/many-$n-$i" > "/tmp/many-$n-$i.log" 2>&1 &
  done
  wait
  "$PY" - "$n" <<'EOF' | tee -a "$OUT/concurrent.txt"
import json, sys
from pathlib import Path
n = int(sys.argv[1])
rates = []
for i in range(1, n + 1):
    lines = Path(f"/tmp/many-{n}-{i}/metrics.jsonl").read_text().splitlines() if Path(f"/tmp/many-{n}-{i}/metrics.jsonl").exists() else []
    epochs = [json.loads(line) for line in lines if line.strip()]
    rates += [max(e["frames_per_second"] for e in epochs[1:] or epochs)] if epochs else []
print(f"{n} runs: {len(rates)} reported, {sum(rates):,.0f} frames/s together, "
      f"{(sum(rates) / len(rates)) if rates else 0:,.0f} each")
EOF
done
step done
