#!/usr/bin/env bash
# Background compute for the zoo (issue #27): one attack of one model, in whole-batch shards,
# one thread, each finished shard committed on its own so that a later session continues from
# what is committed (a killed shard continues from its journal with --resume).
#
# Usage: scripts/run_shards.sh MODEL ATTACK K [extra 'qrobench run' options...]
#   N=1000 (points), SEED (one seed of a randomised model's three: the file name gains
#   __seedS; unset: seed 0, no suffix), DEVICE=cpu (cuda on an accelerator) and
#   QROBENCH_CODE=<checkout> (run the code of another checkout, e.g. a `git worktree` of a
#   fixed commit, so that editing this tree cannot change a running job), REVERSE=1 (take the
#   shards from the last to the first, so that a second chain on the same model meets the
#   first in the middle instead of queueing behind it), THREAT=linf (another threat model with
#   an attack battery, e.g. THREAT=l2: `--threat-model l2`, its pieces in a folder of their own),
#   DEADLINE=<epoch seconds> (when this machine's session ends, e.g. $(date -d '+160 min' +%s):
#   start no shard that would not finish by then and go on, so that the chain spends the time
#   left on its shorter jobs; a shard is one batch, so a shard the session's end kills loses all
#   of its current attack's work) with SHARD_MIN=<minutes> (a shard's time until one of this
#   attack's shards in this folder has finished: then the longest of those counts).
# Shards land in results/pieces/MODEL/MODEL__ATTACK__shardIofK.json (another threat model's in
# results/pieces/MODEL/THREAT/MODEL__THREAT__ATTACK__shardIofK.json); scripts/merge_pieces.sh
# MODEL merges them into the zoo row (THREAT=l2 scripts/merge_pieces.sh MODEL: into
# results/threats/l2/MODEL.json). A randomised model's pieces must share one batch size
# (N/K) and device, or they cannot be merged: the script refuses a K or DEVICE that differs.
{  # the whole script is read before it runs, so editing it cannot change a running chain
set -uo pipefail
cd "$(dirname "$0")/.."
model=$1; attack=$2; k=$3; shift 3
n=${N:-1000}
bs=$(( n / k ))
threat=${THREAT:-linf}
dir="results/pieces/$model" prefix=$model row="results/zoo/$model.json" threat_opt=()
if [ "$threat" != linf ]; then
  dir="results/pieces/$model/$threat" prefix="${model}__$threat" row="results/threats/$threat/$model.json"
  threat_opt=(--threat-model "$threat")
fi
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
export QROBENCH_DATA=${QROBENCH_DATA:-$(cd ../shared/data && pwd)}
run=(qrobench)
if [ -n "${QROBENCH_CODE:-}" ]; then
  export PYTHONPATH="$QROBENCH_CODE${PYTHONPATH:+:$PYTHONPATH}"
  run=(python -P -m qrobench.cli)  # -P: not this folder first on sys.path, so QROBENCH_CODE's code runs
fi
continued=""; case " $* " in *" --cascade-from "*) continued=" (--cascade-from)" ;; esac
commit() {  # commit one finished shard, retrying while another git command holds the index
  git ls-files --error-unmatch "$1" >/dev/null 2>&1 && return 0
  git add "$1"
  for _ in 1 2 3 4 5 6 7 8 9 10; do
    git commit -q -m "$model ${threat_opt[*]:+$threat }$attack${SEED:+ seed $SEED}${continued}: shard $2 of $k (n = $n, batch $bs, ${DEVICE:-cpu}, 1 thread)" -- "$1" && return 0
    sleep 7
  done
}
mkdir -p "$dir"
# A randomised model's clean pass draws its noise per batch on the run's device, so pieces of
# other batch sizes or devices would never merge with these (docs/protocol.md §6): refuse now,
# not after hours of compute.
# The zoo row the pieces will join, where it holds this seed's clean outcomes at this batch size
# and device: every shard is run with --expect-clean against it, so a machine that computes other
# clean predictions (an int8 runtime on another CPU kind, docs/protocol.md) stops before attacking.
expect=$(python3 - "$dir" "$bs" "${DEVICE:-cpu}" "$row" "${SEED:-0}" <<'PY'
import json, sys
from pathlib import Path
folder, bs, device, row, seed = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3], Path(sys.argv[4]), int(sys.argv[5])
for f in sorted(folder.glob("*.json")):  # this threat model's pieces only (a folder each)
    d = json.loads(f.read_text())
    if not d.get("stochastic"):
        continue
    if d.get("batch_size") != bs or d.get("device") != device:
        sys.exit(f"{f.name} measured this randomised model at batch {d.get('batch_size')} on {d.get('device')}; "
                 f"these shards would run at batch {bs} on {device} and could not be merged with it. Choose K so "
                 f"that N/K = {d.get('batch_size')} (and DEVICE={d.get('device')}), or move the old pieces aside.")
if row.is_file():
    d = json.loads(row.read_text())
    same_pass = not d.get("stochastic") or (d.get("batch_size") == bs and d.get("device") == device)
    if same_pass and any(r.get("seed") == seed and (r.get("outcomes") or {}).get("clean") for r in d.get("per_seed", [])):
        print(row)
PY
) || exit 2
expect_opt=(); [ -n "$expect" ] && expect_opt=(--expect-clean "$expect")
# how long one shard takes: the longest of this attack's finished shards here (any seed or K),
# else SHARD_MIN; empty when neither is known (then every shard starts, as without DEADLINE)
shard_s=""
if [ -n "${DEADLINE:-}" ]; then
  shard_s=$(python3 scripts/shard_time.py "$dir" "${prefix}__${attack//,/+}__" "${SHARD_MIN:-}") || exit 2
fi
order=$(seq 0 $((k - 1))); [ -n "${REVERSE:-}" ] && order=$(seq $((k - 1)) -1 0)
for i in $order; do
  out="$dir/${prefix}__${attack//,/+}${SEED:+__seed$SEED}__shard${i}of${k}.json"
  # another runner has it (the path as a literal: a battery's file name holds '+', a regex
  # operator): leave it to that runner, which commits it when it lands, and go on, so that this
  # chain's next job is not kept waiting a shard's time on an idle core
  if pgrep -f -- "--output $(printf '%s' "$out" | sed 's/[][\.*^$+?(){}|]/\\&/g')" >/dev/null; then
    echo "$(date -u +%FT%TZ) skip $out: another runner has it"; continue
  fi
  if [ -f "$out" ]; then commit "$out" "$i"; continue; fi
  if [ -n "$shard_s" ] && [ $(( $(date +%s) + shard_s )) -gt "$DEADLINE" ]; then
    echo "$(date -u +%FT%TZ) not started $out: a shard takes about $(( shard_s / 60 )) min and" \
         "$(( (DEADLINE - $(date +%s)) / 60 )) min are left before DEADLINE"
    continue
  fi
  resume=(); [ -f "$out.journal" ] && resume=(--resume)
  echo "$(date -u +%FT%TZ) start $out"
  "${run[@]}" run --model "$model" --attacks "$attack" --repeats 1 --n "$n" --batch-size "$bs" \
    --shard "$i/$k" --device "${DEVICE:-cpu}" --seed "${SEED:-0}" --output "$out" --quiet "${resume[@]}" \
    "${threat_opt[@]}" \
    "${expect_opt[@]}" "$@" || exit 1
  echo "$(date -u +%FT%TZ) done $out"
  commit "$out" "$i"
done
exit
}
