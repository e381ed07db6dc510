#!/usr/bin/env bash
# pgd20 + cw with fp32 and with bf16 gradient passes (--grad-precision bf16) on the same points
# and seed, per zoo model: robust accuracy, attack time and the paired comparison (qrobench
# compare). What docs/protocol.md §6.5 quotes for the bf16 mode. One thread by default, so the
# two runs of a model meet the same load.
#   scripts/grad_precision_check.sh [N] [MODEL ...]     (default: 1000 points, the five ResNet20s below)
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-1000}; shift || true
models=("$@"); [ ${#models[@]} -gt 0 ] || models=(res20-fp res20-4bit res20-tnn res20-bnn res20-mixed-ft)
out=$(mktemp -d)
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
echo "| model | fp32: pgd20 / cw / worst case % | bf16: pgd20 / cw / worst case % | attack time fp32 → bf16 | paired, bf16 run vs fp32 run (better: points only the fp32 attacks broke) |"
echo "|---|---|---|---|---|"
for m in "${models[@]}"; do
  for p in fp32 bf16; do
    qrobench run --model "$m" --attacks pgd20,cw --n "$n" --grad-precision "$p" --device cpu --quiet \
      --output "$out/$m-$p.json" > "$out/log" 2>&1 || { cat "$out/log" >&2; exit 1; }
  done
  paired=$(qrobench compare "$out/$m-bf16.json" "$out/$m-fp32.json" 2>/dev/null | tail -1)
  python3 - "$out/$m-fp32.json" "$out/$m-bf16.json" "$m" "$paired" <<'PY'
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
cells = lambda d: " / ".join(f"{100 * d['robust_acc'][k]:.1f}" for k in ("pgd20", "cw")) + f" / {100 * d['worst_case_acc']:.1f}"
t = lambda d: sum(d["wall_time_s"].values())
paired = sys.argv[4].replace(f"points where {sys.argv[3]} does ", "")
print(f"| {sys.argv[3]} | {cells(a)} | {cells(b)} | {t(a):.1f} s → {t(b):.1f} s ({t(a) / t(b):.2f}×) | {paired} |")
PY
done
rm -rf "$out"
