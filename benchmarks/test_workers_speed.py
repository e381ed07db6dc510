"""One process beside ``--workers 2`` (two torchrun ranks over gloo), whole commands timed as a
user runs them: start-up, rendezvous, gather and the result file included.

On a 2-core CPU the two ranks get one thread each where the one process gets both, so the
ratio says whether splitting the points beats intra-op threading there; on a GPU machine the
same command puts one rank per device. Both must write the same numbers.
"""

import json
import os
import subprocess
import sys

import pytest

GROUP = "qrobench run pgd20, res20-fp, 512 points (whole command)"
ARGS = ["run", "--model", "res20-fp", "--attacks", "pgd20", "--points", "512", "--batch-size", "128",
        "--device", "cpu", "--quiet"]


def _run(out, workers):
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}  # each launcher picks its own
    extra = ["--workers", str(workers)] if workers > 1 else []
    subprocess.run([sys.executable, "-m", "qrobench.cli", *ARGS, "--output", str(out), *extra],
                   check=True, env=env)
    return json.loads(out.read_text())


@pytest.mark.parametrize("workers", [1, 2])
def test_run_workers(benchmark, tmp_path, workers):
    benchmark.group = GROUP
    out = tmp_path / f"w{workers}.json"
    r = benchmark.pedantic(lambda: (out.unlink(missing_ok=True), _run(out, workers))[1], rounds=2, iterations=1)
    benchmark.extra_info["robust_acc_pct"] = 100 * r["robust_acc"]["pgd20"]
    assert r["n"] == 512 and 0.2 < r["robust_acc"]["pgd20"] < r["clean_acc"]
