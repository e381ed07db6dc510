#!/usr/bin/env bash
# A randomised model's whole L∞ battery on a lent accelerator, one (model, seed) per file
# (issue #27: the EnResNets' rows need aa-rand, which costs hours per seed on one CPU thread).
#
# Why whole batteries and not just aa-rand: a randomised model's clean pass draws its noise
# from the device's generator, so a CUDA run's clean predictions differ from a CPU run's and
# `qrobench merge` (rightly) refuses to join a CUDA aa-rand file to CPU shards of the other
# attacks. Each (model, seed) is therefore measured whole on one device, at batch 250.
#
# Usage, from the repository root of the device machine (the device tool's `run`):
#   scripts/device_battery.sh BUDGET_S MODEL:SEED [MODEL:SEED ...]
# Runs the pairs in order and starts none with under 60 s of BUDGET_S left; the running one is
# stopped at the budget, and its journal (finished batches) comes back beside the output, so a
# later call continues it: put the journal in a carried folder and name it in JOURNALS.
# Environment: OUT (required: the device tool's $OUT), N=1000, BATCH=250, DEVICE=cuda,
# ATTACKS (default: the zoo's randomised battery below), JOURNALS (a folder whose *.journal
# files are copied into $OUT first, so that their runs resume).
# Pyautoattack is not on the device image: carry its wheel (README, "On an accelerator").
# Back here: merge the seeds, `qrobench merge $files --output results/zoo/MODEL.json`, then
# `qrobench diagnose --model MODEL` and `qrobench leaderboard`.
set -uo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 2 ] || { echo "usage: scripts/device_battery.sh BUDGET_S MODEL:SEED [MODEL:SEED ...]" >&2; exit 2; }
: "${OUT:?set OUT to the folder the results go to (the device tool sets it)}"
budget=$1; shift
deadline=$(( $(date +%s) + budget ))
if [ -n "${JOURNALS:-}" ]; then cp -n "$JOURNALS"/*.journal "$OUT"/ 2>/dev/null; fi
attacks=${ATTACKS:-fgsm,pgd20,ifgsm20,cw,cw-paper,eot-pgd20,transfer,square,aa-rand}
py=${PYTHON:-python3}
status=0
for pair in "$@"; do
  model=${pair%%:*}; seed=${pair##*:}
  if [ "$model" = "$pair" ] || ! [[ $seed =~ ^[0-9]+$ ]]; then
    echo "$pair: expected MODEL:SEED, e.g. enres20-fp:0" >&2; exit 2
  fi
  out="$OUT/${model}__battery__seed${seed}.json"
  [ -f "$out" ] && { echo "$out exists: skipped"; continue; }
  left=$(( deadline - $(date +%s) ))
  if [ "$left" -lt 60 ]; then echo "budget spent: $pair not started"; status=3; break; fi
  resume=(); [ -f "$out.journal" ] && resume=(--resume)
  echo "$(date -u +%FT%TZ) start $pair (${left}s left)"
  timeout --signal=TERM --kill-after=20 "$left" "$py" -m qrobench.cli run --model "$model" \
    --attacks "$attacks" --repeats 1 --seed "$seed" --n "${N:-1000}" --batch-size "${BATCH:-250}" \
    --device "${DEVICE:-cuda}" --output "$out" --quiet "${resume[@]}"
  rc=$?
  if [ $rc -ne 0 ]; then
    echo "$(date -u +%FT%TZ) $pair stopped (exit $rc); its finished batches are in $out.journal"
    status=$rc; break
  fi
  echo "$(date -u +%FT%TZ) done $out"
done
exit $status
