#!/usr/bin/env bash
# The zoo's remaining background compute (issues #26 and #27), in order, as one chain of
# scripts/run_shards.sh jobs. Run two chains, one per core; a new session, even on a fresh
# machine, continues from what is committed:
#   mkdir -p ../logs && export QROBENCH_DATA=$(cd ../shared/data && pwd) DEADLINE=$(date -d '+160 min' +%s)
#   nohup scripts/zoo_queue.sh A > ../logs/zoo_queue_A.log 2>&1 &
#   sleep 20; nohup scripts/zoo_queue.sh B > ../logs/zoo_queue_B.log 2>&1 &
# B takes each job's shards from the last and a randomised model's seeds in reverse order, so
# the chains meet in the middle. DEADLINE (when the session ends, less the time its last checks
# need): a shard that would not finish by then is left for the next session, and the chain goes
# on to a shorter job, so the session's end does not kill work in flight (a shard is one batch).
# SHARD_MIN: a job's shard time until one of its shards has finished, from the measured costs in
# README "What each track costs" (one thread of an AVX-512 CPU); then the slowest finished one.
# Each job runs the code of the commit its model's committed pieces were measured with (a git
# worktree beside this checkout, made when missing), so that later edits cannot change its
# numbers and its pieces merge with those already in. Merge a model once its shards are in
# (README, "The zoo's background compute").
# `scripts/zoo_queue.sh status` runs nothing: it lists, job by job in the queue's order, the
# committed shards and those left (with a journal: a shard in flight or killed), and what is
# left in thread-hours, from the finished shards' times (slowest and median) or SHARD_MIN.
{  # the whole script is read before it runs, so editing it cannot change a running chain
set -uo pipefail
cd "$(dirname "$0")/.."
status=""
case ${1:-} in
  A) seeds="0 1 2" ;;
  B) export REVERSE=1; seeds="2 1 0" ;;
  status) status=$(mktemp); seeds="0 1 2" ;;
  *) echo "usage: [DEADLINE=<epoch s>] scripts/zoo_queue.sh A|B (the first or the second chain) | status" >&2; exit 2 ;;
esac
code() {  # a worktree of commit $1 beside this checkout
  local dir
  dir="$(cd .. && pwd)/qrobench-code-$1"
  [ -n "$status" ] && { echo "$dir"; return; }
  [ -d "$dir" ] || git worktree add -q --detach "$dir" "$1" >&2 || exit 2
  echo "$dir"
}
l2_aa=$(code 1bc6fa5) || exit 2  # the ResNet20 rows' L2 aa pieces
enres=$(code 564c595) || exit 2  # the EnResNets' pieces: one shared scoring draw per batch
casc=$(code 41b799b) || exit 2   # --cascade-from (its clean pass and scoring draw are 564c595's)
enresnets="enres20-fp enres20-4bit enres20-tnn enres20-bnn"
cheap=fgsm+pgd20+ifgsm20+cw+cw-paper+eot-pgd20+transfer
white=fgsm,pgd20,ifgsm20,cw,cw-paper,eot-pgd20  # the cheap battery's white-box attacks
job() {  # a failed job (e.g. --expect-clean refusing this CPU) stops only itself
  if [ -n "$status" ]; then  # status: note the job (model attack K threat seed SHARD_MIN continued)
    local continued=0; case " $* " in *" --cascade-from "*) continued=1 ;; esac
    echo "$1 $2 $3 ${THREAT:-linf} ${SEED:--} ${SHARD_MIN:--} $continued" >> "$status"
    return
  fi
  nice -n 15 scripts/run_shards.sh "$@" || echo "$(date -u +%FT%TZ) job failed: $*"
}

# 1. #26: L2 AutoAttack for the last deterministic row, then the EnResNets' L2 battery at
#    n = 1,000 (about 5 min a shard), one model's 3 seeds after another, so that each model's
#    row can be merged as soon as its last seed lands (both chains on one seed's shards at once)
QROBENCH_CODE=$l2_aa THREAT=l2 SHARD_MIN=12 job res20-tnn-tradeoff aa 10
for m in $enresnets; do
  for s in 0 1 2; do
    QROBENCH_CODE=$enres THREAT=l2 SEED=$s SHARD_MIN=8 job "$m" fgsm,pgd20,cw,eot-pgd20 4
  done
done
# 2. #27: aa-rand, then square, for the EnResNets, one model after another. enres20-fp keeps the
#    full battery its first aa-rand shards were measured with (about 85 min an aa-rand shard,
#    26 min a square one); the other three continue from their cheap battery's white-box attacks
#    (--cascade-from: about half the points, so about half the time; README, "The zoo's
#    background compute"). With DEADLINE, a chain runs the shards that fit and moves on to
#    shorter jobs for the rest of its time.
for s in $seeds; do QROBENCH_CODE=$enres SEED=$s SHARD_MIN=90 job enres20-fp aa-rand 4; done
for s in $seeds; do QROBENCH_CODE=$enres SEED=$s SHARD_MIN=25 job enres20-fp square 4; done
for m in enres20-4bit enres20-tnn enres20-bnn; do
  for a in aa-rand square; do
    for s in $seeds; do
      QROBENCH_CODE=$casc SEED=$s SHARD_MIN=$([ $a = aa-rand ] && echo 60 || echo 22) job "$m" $a 4 \
        --cascade-from "results/pieces/$m/${m}__${cheap}__seed$s.json" --cascade-attacks "$white"
    done
  done
done
if [ -n "$status" ]; then
  python3 - "$status" <<'PY'
# the same file names and shard-time rule as scripts/run_shards.sh
import statistics, subprocess, sys
from pathlib import Path
sys.path.insert(0, "scripts")
from shard_time import finished_seconds

committed = set(subprocess.run(["git", "ls-files", "results/pieces"], capture_output=True, text=True,
                               check=True).stdout.split())
rows, models, left_max, left_med, left_n = [], {}, 0.0, 0.0, 0
for line in Path(sys.argv[1]).read_text().split("\n"):
    if not line:
        continue
    model, attack, k, threat, seed, shard_min, continued = line.split()
    models[model] = None
    k, stem_attack = int(k), attack.replace(",", "+")
    folder, prefix = Path("results/pieces") / model, model
    if threat != "linf":
        folder, prefix = folder / threat, f"{model}__{threat}"
    times = [s / 60 for s in finished_seconds(folder, f"{prefix}__{stem_attack}__")]
    est_max = max(times) if times else (float(shard_min) if shard_min != "-" else None)
    est_med = statistics.median(times) if times else est_max
    name = f"{prefix}__{stem_attack}" + (f"__seed{seed}" if seed != "-" else "")
    done, todo, journal = [], [], []
    for i in range(k):
        out = folder / f"{name}__shard{i}of{k}.json"
        if str(out) in committed:
            done.append(i)
        else:
            todo.append(i)
            if Path(f"{out}.journal").exists():
                journal.append(i)
    if todo and est_max is not None:
        left_max += len(todo) * est_max
        left_med += len(todo) * est_med
    left_n += len(todo)
    job = f"{model} {'' if threat == 'linf' else threat + ' '}{attack}" + (f" seed {seed}" if seed != "-" else "")
    job += " (continued)" if continued == "1" else ""
    shard = ("—" if est_max is None else
             f"{est_max:.0f}" + (f" / {est_med:.0f}" if times else " (SHARD_MIN)"))
    rows.append((job, f"{len(done)}/{k}", " ".join(map(str, todo)) or "—",
                 " ".join(map(str, journal)) or "—", shard))
head = ("job", "committed", "left", "journal", "shard min (slowest / median)")
widths = [max(len(r[c]) for r in rows + [head]) for c in range(len(head))]
for r in [head] + rows:
    print("  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip())
# whole batteries measured on an accelerator (scripts/device_battery.sh), kept apart from the CPU pieces
for model in models:
    cuda = Path("results/pieces") / model / "cuda"
    seeds = lambda suffix: sorted(f.name[:-len(suffix)].rsplit("seed", 1)[1]  # noqa: E731
                                  for f in cuda.glob(f"{model}__battery__seed*{suffix}"))
    done, held = seeds(".json"), seeds(".json.journal")
    if done or held:
        print(f"device: {model} whole battery, seeds finished: {' '.join(done) or '—'}; journaled (to resume "
              f"on an accelerator): {' '.join(held) or '—'} ({cuda}, README \"On a lent accelerator\")")
print(f"left: {left_n} shards, about {left_max / 60:.1f} thread-hours at the slowest finished shard times "
      f"({left_med / 60:.1f} at the median); shards not yet measured count at SHARD_MIN")
PY
  rc=$?; rm -f "$status"; exit $rc
fi
echo "$(date -u +%FT%TZ) chain $1: queue done"
exit
}
