#!/usr/bin/env bash
# Join a zoo model's committed pieces (scripts/run_shards.sh) into its row, with the same
# `qrobench merge` commands a person would type, printed as they run:
#   1. each attack's (and seed's) complete set of shards → results/pieces/M/M__ATTACK[__seedS].json
#   2. a randomised model's seeds of one attack → results/pieces/M/M__ATTACK.json
#   3. every attack file (and M__basic.json) → results/zoo/M.json, then `qrobench diagnose`.
# Incomplete shard sets (and a randomised model's attacks with fewer than SEEDS=3 seeds) are
# reported and left out; nothing already merged is rewritten unless one of its sources is newer. Usage: scripts/merge_pieces.sh MODEL [--no-zoo]  (then: qrobench leaderboard)
# THREAT=l2 (another threat model with an attack battery): the pieces in results/pieces/MODEL/l2/
# go into results/threats/l2/MODEL.json instead; that file, where it was one run of its own (the
# cheap battery), first joins the pieces as MODEL__l2__ATTACKS.json, so that every merge starts
# from the pieces and the run's own command stays on record.
set -euo pipefail
cd "$(dirname "$0")/.."
model=${1:?usage: [THREAT=l2] scripts/merge_pieces.sh MODEL [--no-zoo]}
threat=${THREAT:-linf}
dir="results/pieces/$model" prefix=$model target="results/zoo/$model.json"
if [ "$threat" != linf ]; then
  dir="results/pieces/$model/$threat" prefix="${model}__$threat" target="results/threats/$threat/$model.json"
fi
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
for first in "$dir"/"$prefix"__*__shard0of*.json; do
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
for first in "$dir"/"$prefix"__*__seed0.json; do
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
if [ "$threat" != linf ] && [ -f "$target" ]; then
  own=$(python3 - "$target" "$dir/$prefix" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
if not d.get("merged_from"):  # one run of its own: it becomes a piece, named by its attacks
    print(sys.argv[2] + "__" + "+".join(d["attacks"]) + ".json")
PY
)
  if [ -n "$own" ] && [ ! -e "$own" ]; then run cp "$target" "$own"; fi
fi
parts=()
for pattern in basic '*+*' fgsm pgd20 cw square eot-pgd20 '*' aa aa-rand; do
  for f in "$dir"/"$prefix"__$pattern.json; do
    [ -e "$f" ] || continue
    case "$f" in *__shard*of*.json | *__seed[0-9]*.json) continue ;; esac
    case " ${parts[*]} " in *" $f "*) continue ;; esac
    case "$pattern:$f" in "*:"*__aa.json | "*:"*__aa-rand.json) continue ;; esac
    parts+=("$f")
  done
done
if [ ${#parts[@]} -eq 0 ]; then echo "$model: nothing to merge into $target"; exit 0; fi
if [ ${#parts[@]} -eq 1 ]; then
  run cp "${parts[0]}" "$target"
else
  run qrobench merge "${parts[@]}" --output "$target"
fi
run qrobench diagnose --model "$model" --result "$target"
