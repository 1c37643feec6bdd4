#!/usr/bin/env bash
# RESULTS section 7: sample statistics against the test split at several sampling settings, for one run.
# Usage: scripts/music.sh RUN_DIR OUT_DIR   (writes OUT_DIR/music-T<T>-S<S>-B<B>.json, prints a markdown table)
set -euo pipefail
run=$1 out=$2
SRNN=${SRNN:-.venv/bin/srnn}
mkdir -p "$out"
for setting in "1 1 0" "1 1 32" "0.9 1 32" "0.8 1 32" "1 0.5 32" "0.9 0.5 32" "1.1 1 32" "1.05 1 32" "1.03 1 32" "1.05 1.5 32"; do
  read -r t s b <<< "$setting"
  file="$out/music-T$t-S$s-B$b.json"
  if [ ! -s "$file" ]; then
    "$SRNN" evaluate "$run" --music --n 32 --steps 400 --temperature "$t" --z-scale "$s" --burn-in "$b" --json \
      > "$file.tmp"
    mv "$file.tmp" "$file"
  fi
done
"${PYTHON:-.venv/bin/python}" - "$out" <<'PY'
import json, sys
from pathlib import Path
rows = []
for path in sorted(Path(sys.argv[1]).glob("music-*.json")):
    r = json.loads(path.read_text())
    s = {x["statistic"]: x for x in r["statistics"]}
    c = r["controls"]
    rows.append((c["temperature"], c["z_scale"], c["burn_in"], s["notes_per_frame"]["ratio"],
                 s["onsets_per_frame"]["ratio"], s["empty_frame_share"]["samples"], s["empty_frame_share"]["data"],
                 s["mean_note_length"]["ratio"], s["pitch_class_histogram"]["OA"], s["polyphony_histogram"]["OA"],
                 s["scale_consistency"]["ratio"]))
print("| T | S | burn-in | notes/frame ratio | onsets/frame ratio | empty frames (samples / data) | note length ratio "
      "| pitch-class OA | polyphony OA | scale consistency ratio |")
print("|---|---|---|---|---|---|---|---|---|---|")
for t, s, b, n, o, es, ed, l, pc, po, sc in sorted(rows, key=lambda r: (-r[0], -r[1], r[2])):
    print(f"| {t:g} | {s:g} | {b} | {n:.2f} | {o:.2f} | {es:.3f} / {ed:.3f} | {l:.2f} | {pc:.2f} | {po:.2f} | {sc:.2f} |")
PY
