#!/usr/bin/env bash
# The GPU figures in the README, in one pass on a CUDA machine (a few minutes): the CUDA tests, `srnn bench`
# on cuda at both sizes, paper-size training throughput on one GPU, then the JSB architecture grid
# (RESULTS section 4) with several runs sharing the GPU until DEADLINE seconds have passed.
# Usage: OUT=folder [PY=python3] [DEADLINE=480] [JOBS=8] scripts/gpu_check.sh     (needs data/jsb-srnn.h5 and
# data/piano.h5 prepared; every step writes its own files under $OUT, so a cut-off run keeps what it did)
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-python3}; OUT=${OUT:-out/gpu}; DEADLINE=${DEADLINE:-480}; JOBS=${JOBS:-8}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2} PYTHONUNBUFFERED=1
mkdir -p "$OUT"; OUT=$(realpath "$OUT")
left() { echo $(( DEADLINE - SECONDS )); }
step() { echo "== $1 (t=${SECONDS}s)"; }

step gpu; nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$OUT/gpu.txt"
"$PY" -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())" | tee -a "$OUT/gpu.txt"
step tests; timeout 120 "$PY" -m pytest -q -rf tests/test_cuda.py > "$OUT/tests.txt" 2>&1; tail -4 "$OUT/tests.txt"
for size in paper small; do
  step "bench $size"
  timeout 150 "$PY" -m cli.main bench --size "$size" --device cuda --eval-data data/piano.h5 --json \
    > "$OUT/bench-$size-cuda.json" 2> "$OUT/bench-$size-cuda.err"; tail -3 "$OUT/bench-$size-cuda.err"
done
step "train paper size, piano, 1 epoch"
timeout 120 "$PY" -m cli.main train --data data/piano.h5 --d 300 --a 300 --z 100 --epochs 1 --device cuda \
  --run-dir /tmp/gpu-train > /tmp/gpu-train.log 2>&1; tail -4 /tmp/gpu-train.log
cp /tmp/gpu-train/metrics.jsonl "$OUT/train-paper-cuda-metrics.jsonl" 2>/dev/null
[ "$(left)" -lt 60 ] && { step "done (no time left for the grid)"; exit 0; }
step "grid (jsb, $JOBS jobs, $(left) s left)"
timeout "$(( $(left) > 30 ? $(left) : 30 ))" "$PY" -m cli.main sweep --data data/jsb-srnn.h5 --epochs 20 \
  --grid "a=30,300 d=30,300 z=10,100 seq-len=50,100" --jobs "$JOBS" --device cuda --out /tmp/grid-jsb \
  > "$OUT/grid.log" 2>&1
echo "sweep exit $?"
(cd /tmp && tar czf "$OUT/grid-jsb.tgz" --exclude='*.pt' --exclude='.lock' grid-jsb)
step done
