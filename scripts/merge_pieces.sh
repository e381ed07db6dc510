#!/usr/bin/env bash
# Join a zoo model's committed pieces (scripts/run_shards.sh) into its row, with the same
# `qrobench merge` commands a person would type, printed as they run:
#   1. each attack's (and seed's) complete set of shards → results/pieces/M/M__ATTACK[__seedS].json
#   2. a randomised model's seeds of one attack → results/pieces/M/M__ATTACK.json
#   3. every attack file (and M__basic.json) → results/zoo/M.json, then `qrobench diagnose`.
# Incomplete shard sets (and a randomised model's attacks with fewer than SEEDS=3 seeds) are
# reported and left out; nothing already merged is rewritten unless one of its sources is newer. Usage: scripts/merge_pieces.sh MODEL [--no-zoo]  (then: qrobench leaderboard)
set -euo pipefail
cd "$(dirname "$0")/.."
model=${1:?usage: scripts/merge_pieces.sh MODEL [--no-zoo]}
dir="results/pieces/$model"
[ -d "$dir" ] || { echo "no pieces for $model in $dir" >&2; exit 2; }
run() { echo "+ $*"; "$@"; }
# up_to_date OUT SOURCES...: OUT exists and was merged after every source was written (the
# records' own timestamps, not file times, which a fresh clone resets)
up_to_date() {
  [ -f "$1" ] && python3 - "$@" <<'PY'
import json, sys
stamp = lambda p: json.load(open(p))["timestamp"]
out, *sources = sys.argv[1:]
sys.exit(0 if all(stamp(s) <= stamp(out) for s in sources) else 1)
PY
}

# 1. shards → one file per (attack, seed)
for first in "$dir"/"$model"__*__shard0of*.json; do
  [ -e "$first" ] || continue
  stem=${first%__shard0of*.json}; k=${first##*__shard0of}; k=${k%.json}
  files=(); missing=()
  for ((i = 0; i < k; i++)); do
    f="${stem}__shard${i}of${k}.json"
    if [ -f "$f" ]; then files+=("$f"); else missing+=("$i"); fi
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "$(basename "$stem"): shards ${missing[*]} of $k missing; not merged"; continue
  fi
  out="${stem}.json"
  if up_to_date "$out" "${files[@]}"; then continue; fi
  run qrobench merge "${files[@]}" --output "$out"
done

# 2. seeds → one file per attack (randomised models)
for first in "$dir"/"$model"__*__seed0.json; do
  [ -e "$first" ] || continue
  stem=${first%__seed0.json}
  seeds=()
  for f in "$stem"__seed*.json; do [[ $f =~ __seed[0-9]+\.json$ ]] && seeds+=("$f"); done
  out="${stem}.json"
  if up_to_date "$out" "${seeds[@]}"; then continue; fi
  if [ ${#seeds[@]} -lt "${SEEDS:-3}" ]; then
    echo "$(basename "$stem"): ${#seeds[@]} of ${SEEDS:-3} seeds; not merged"; continue
  fi
  run qrobench merge "${seeds[@]}" --output "$out"
done

[ "${2:-}" = "--no-zoo" ] && exit 0
# 3. attacks → the zoo row (files without a shard or seed suffix)
# in the battery's order: the basic battery first, AutoAttack last
parts=()
for pattern in basic '*+*' fgsm pgd20 cw square eot-pgd20 '*' aa aa-rand; do
  for f in "$dir"/"$model"__$pattern.json; do
    [ -e "$f" ] || continue
    case "$f" in *__shard*of*.json | *__seed[0-9]*.json) continue ;; esac
    case " ${parts[*]} " in *" $f "*) continue ;; esac
    case "$pattern:$f" in "*:"*__aa.json | "*:"*__aa-rand.json) continue ;; esac
    parts+=("$f")
  done
done
if [ ${#parts[@]} -eq 0 ]; then echo "$model: nothing to merge into results/zoo/$model.json"; exit 0; fi
if [ ${#parts[@]} -eq 1 ]; then
  run cp "${parts[0]}" "results/zoo/$model.json"
else
  run qrobench merge "${parts[@]}" --output "results/zoo/$model.json"
fi
run qrobench diagnose --model "$model"
