"""``qrobench run --model res20-fp --attacks pgd20,cw --n 1000`` beside the same battery done with
torchattacks (torchattacks_battery.py), both as whole processes: start-up, model and data
loading, clean pass, both attacks on the clean-correct points only, and the output file.
Twice: as the zoo measures (``fp32``), and with ``--grad-precision bf16`` (the attacks'
gradient passes under bfloat16 autocast, every success still decided in fp32), whose speed
depends on the CPU's bf16 support (AMX, AVX-512 BF16).

Pairs are interleaved (each round runs torchattacks, untimed by pytest-benchmark but timed
here, then qrobench) so that the load of a shared machine falls on both alike; the summary
prints the median over pairs of the per-pair ratio. Takes minutes: marked ``slow`` (``tox -e
bench`` runs it; ``pytest benchmarks -m "not slow"`` leaves it out).
"""

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest

GROUP = "pgd20 + cw, res20-fp, 1000 points (whole processes)"
# the measure: n = 1000, 3 pairs; the variables shrink it for a smoke run only
N = int(os.environ.get("QROBENCH_BENCH_N", 1000))
PAIRS = int(os.environ.get("QROBENCH_BENCH_PAIRS", 3))
QROBENCH = ["run", "--model", "res20-fp", "--attacks", "pgd20,cw", "--n", str(N), "--device", "cpu", "--quiet"]
TORCHATTACKS = Path(__file__).with_name("torchattacks_battery.py")


def _env():
    return {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}  # both pick their own threads


def _process(args, out: Path) -> dict:
    out.unlink(missing_ok=True)
    subprocess.run([sys.executable, *args, "--output", str(out)], check=True, env=_env(),
                   stdout=subprocess.DEVNULL)
    return json.loads(out.read_text())


@pytest.mark.slow
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_whole_process_battery(benchmark, tmp_path, precision):
    pytest.importorskip("torchattacks")
    benchmark.group = GROUP
    ours, theirs = tmp_path / "qrobench.json", tmp_path / "torchattacks.json"
    other_s, other = [], {}

    def torchattacks_first():  # pedantic's setup: runs before each timed qrobench round
        t0 = time.perf_counter()
        other.update(_process([str(TORCHATTACKS), "--n", str(N)], theirs))
        other_s.append(time.perf_counter() - t0)

    args = ["-m", "qrobench.cli", *QROBENCH, "--grad-precision", precision]
    r = benchmark.pedantic(lambda: _process(args, ours),
                           setup=torchattacks_first, rounds=PAIRS, iterations=1)
    own_s = list(benchmark.stats.stats.data)
    info = benchmark.extra_info
    info["robust_acc_pct"] = 100 * r["worst_case_acc"]
    info["torchattacks_robust_acc_pct"] = 100 * other["robust_acc"]
    info["torchattacks_s"] = other_s
    info["qrobench_s"] = own_s
    info["n"] = N
    info["grad_precision"] = precision
    info["median_pair_ratio"] = statistics.median(t / q for t, q in zip(other_s, own_s, strict=True))
    assert r["n"] == N and abs(r["clean_acc"] - other["clean_acc"]) < 1e-9
    # qrobench keeps each point's first misclassified iterate, torchattacks the last: never weaker
    assert r["worst_case_acc"] <= other["robust_acc"] + 3 / N
