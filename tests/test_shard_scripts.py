"""The zoo's background-compute scripts end to end, on the tiny zoo in a scratch git repository:
scripts/run_shards.sh commits each shard, scripts/merge_pieces.sh joins them into the row."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def scratch(tmp_path, tiny_zoo, data_dir):
    if shutil.which("git") is None:
        pytest.skip("git not installed")
    root = tmp_path / "repo"
    (root / "scripts").mkdir(parents=True)
    for s in ("run_shards.sh", "merge_pieces.sh", "shard_time.py"):
        shutil.copy(REPO / "scripts" / s, root / "scripts" / s)
    env = dict(os.environ, QROBENCH_CODE=str(REPO), QROBENCH_ZOO=str(tiny_zoo), QROBENCH_DATA=str(data_dir),
               PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
               GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@t", GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@t")
    env.pop("THREAT", None)
    git = lambda *a: subprocess.run(["git", *a], cwd=root, env=env, check=True, capture_output=True, text=True)  # noqa: E731
    git("init", "-q")
    git("add", "scripts")
    git("commit", "-q", "-m", "scripts")
    return root, env, git


def _sh(root, env, *args, **extra):
    p = subprocess.run(["bash", *args], cwd=root, env=dict(env, **extra), capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stdout + p.stderr
    return p.stdout


def _run(root, env, *args):
    subprocess.run([sys.executable, "-m", "qrobench.cli", "run", "--model", "res8-fp", "--n", "40", "--batch-size",
                    "20", "--quiet", *args], cwd=REPO, env=env, check=True, capture_output=True, text=True, timeout=600)


def test_l2_shards_commit_and_merge_with_the_cheap_file_into_the_threat_row(scratch, tmp_path):
    root, env, git = scratch
    l2 = root / "results" / "threats" / "l2"
    l2.mkdir(parents=True)
    # the cheap battery, as one run of its own (as results/threats/l2/* were measured)
    _run(root, env, "--threat-model", "l2", "--attacks", "fgsm", "--output", str(l2 / "res8-fp.json"))
    cheap_command = json.loads((l2 / "res8-fp.json").read_text())["command"]

    _sh(root, env, "scripts/run_shards.sh", "res8-fp", "pgd20", "2", THREAT="l2", N="40")
    pieces = root / "results" / "pieces" / "res8-fp" / "l2"
    shards = sorted(p.name for p in pieces.glob("*__shard*"))
    assert shards == ["res8-fp__l2__pgd20__shard0of2.json", "res8-fp__l2__pgd20__shard1of2.json"]
    log = git("log", "--format=%s").stdout
    assert "res8-fp l2 pgd20: shard 0 of 2" in log and "res8-fp l2 pgd20: shard 1 of 2" in log
    for s in shards:  # each shard committed on its own
        assert git("ls-files", f"results/pieces/res8-fp/l2/{s}").stdout.strip()
    assert all("--threat-model l2" in json.loads((pieces / s).read_text())["command"] for s in shards)

    out = _sh(root, env, "scripts/merge_pieces.sh", "res8-fp", THREAT="l2")
    assert "qrobench diagnose" in out
    row = json.loads((l2 / "res8-fp.json").read_text())
    assert row["norm"] == "L2" and list(row["attacks"]) == ["fgsm", "pgd20"]
    # the cheap run joined the pieces under its attacks' name, its own command kept
    kept = json.loads((pieces / "res8-fp__l2__fgsm.json").read_text())
    assert kept["command"] == cheap_command
    assert not (root / "results" / "zoo").exists()  # the L∞ row is not touched

    # the merged shards equal one process over all the points
    whole = tmp_path / "whole.json"
    _run(root, env, "--threat-model", "l2", "--attacks", "pgd20", "--output", str(whole))
    one = json.loads(whole.read_text())
    assert row["robust_acc"]["pgd20"] == one["robust_acc"]["pgd20"]
    assert row["clean_acc"] == one["clean_acc"]
    assert row["worst_case_acc"] <= min(row["robust_acc"].values()) + 1e-12

    # merging again changes nothing and copies nothing more
    before = sorted(p.name for p in pieces.iterdir())
    _sh(root, env, "scripts/merge_pieces.sh", "res8-fp", THREAT="l2")
    assert sorted(p.name for p in pieces.iterdir()) == before
    again = json.loads((l2 / "res8-fp.json").read_text())
    assert again["robust_acc"] == row["robust_acc"] and again["worst_case_acc"] == row["worst_case_acc"]


def test_a_shard_another_runner_holds_is_left_to_it_not_waited_for(scratch):
    root, env, git = scratch
    held = "results/pieces/res8-fp/res8-fp__fgsm__shard1of2.json"
    # a stand-in for the other chain's process on shard 1: only its command line matters
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)", "--output", held])
    try:
        out = _sh(root, env, "scripts/run_shards.sh", "res8-fp", "fgsm", "2", N="40")
    finally:
        other.kill()
        other.wait()
    assert f"skip {held}: another runner has it" in out
    assert (root / "results/pieces/res8-fp/res8-fp__fgsm__shard0of2.json").is_file()
    assert not (root / held).exists()  # not run twice, and this chain did not sit waiting for it
    assert "res8-fp fgsm: shard 0 of 2" in git("log", "--format=%s").stdout


def test_a_shard_that_would_outlast_the_deadline_is_not_started(scratch):
    root, env, git = scratch
    import time

    pieces = root / "results/pieces/res8-fp"
    # nothing measured yet: SHARD_MIN is the estimate; 5 min do not fit in the 2.5 min left
    out = _sh(root, env, "scripts/run_shards.sh", "res8-fp", "fgsm", "2", N="40",
              DEADLINE=str(int(time.time()) + 150), SHARD_MIN="5")
    assert out.count("not started") == 2 and "a shard takes about 5 min and 2 min are left" in out
    assert not pieces.exists() or not list(pieces.glob("*shard*")), "a shard ran past its deadline"

    _sh(root, env, "scripts/run_shards.sh", "res8-fp", "fgsm", "2", N="40")  # no DEADLINE: as before
    assert len(list(pieces.glob("res8-fp__fgsm__shard*of2.json"))) == 2
    # once a shard of this attack has finished, its time is the estimate, not SHARD_MIN
    shard0 = pieces / "res8-fp__fgsm__shard0of2.json"
    record = json.loads(shard0.read_text())
    record["total_time_s"] = 3000.0
    shard0.write_text(json.dumps(record))
    out = _sh(root, env, "scripts/run_shards.sh", "res8-fp", "fgsm", "4", N="40",
              DEADLINE=str(int(time.time()) + 1200), SHARD_MIN="1")
    assert out.count("not started") == 4 and "about 50 min" in out
    assert not list(pieces.glob("*shard*of4*"))


def test_the_zoo_queue_pins_commits_a_clone_holds():
    """zoo_queue.sh runs each job on a worktree of a fixed commit: a fresh clone must have it."""
    import re

    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    pinned = re.findall(r"\$\(code ([0-9a-f]{7,40})\)", (REPO / "scripts" / "zoo_queue.sh").read_text())
    assert len(pinned) >= 2
    for sha in pinned:
        p = subprocess.run(["git", "cat-file", "-e", f"{sha}^{{commit}}"], cwd=REPO, capture_output=True)
        assert p.returncode == 0, f"scripts/zoo_queue.sh pins {sha}, which this checkout does not hold"
    p = subprocess.run(["bash", str(REPO / "scripts" / "zoo_queue.sh"), "C"], capture_output=True, text=True)
    assert p.returncode == 2 and "usage" in p.stderr


def test_continued_shards_merge_into_the_row_with_the_battery_they_continued(scratch):
    """The queue's --cascade-from jobs: shards of a randomised model's slow attack continued from
    the per-seed file of its cheap battery, merged by merge_pieces.sh into one row."""
    root, env, git = scratch
    for s in ("0", "1"):
        _sh(root, env, "scripts/run_shards.sh", "en8-tnn", "fgsm", "2", N="40", SEED=s)
    _sh(root, env, "scripts/merge_pieces.sh", "en8-tnn", "--no-zoo", SEEDS="2")
    for s in ("0", "1"):
        _sh(root, env, "scripts/run_shards.sh", "en8-tnn", "pgd20", "2", "--cascade-from",
            f"results/pieces/en8-tnn/en8-tnn__fgsm__seed{s}.json", "--cascade-attacks", "fgsm", N="40", SEED=s)
    shard = json.loads((root / "results" / "pieces" / "en8-tnn" / "en8-tnn__pgd20__seed1__shard1of2.json").read_text())
    assert shard["cascade_from"] == {"pgd20": ["fgsm"]} and "--cascade-from" in shard["command"]
    assert "en8-tnn pgd20 seed 1 (--cascade-from): shard 1 of 2" in git("log", "--format=%s").stdout
    _sh(root, env, "scripts/merge_pieces.sh", "en8-tnn", SEEDS="2")
    row = json.loads((root / "results" / "zoo" / "en8-tnn.json").read_text())
    assert list(row["attacks"]) == ["fgsm", "pgd20"]
    assert row["cascade_from"] == {"pgd20": ["fgsm"]} and "cascade-from" in row["flags"]
    assert [s["seed"] for s in row["per_seed"]] == [0, 1] and row["n"] == 40
    # pgd20's outcome counts fgsm's breaks: per seed it is the row's worst case
    assert all(s["robust_acc"]["pgd20"] == s["worst_case_acc"] for s in row["per_seed"])


def test_the_zoo_queue_status_counts_committed_shards_and_the_time_left(tmp_path):
    """`zoo_queue.sh status` runs nothing and makes no worktree; it counts only committed shards
    (what a new session continues from), shows journals, and estimates a shard's time as
    run_shards.sh does: the slowest finished shard of that attack, else the job's SHARD_MIN."""
    import re

    if shutil.which("git") is None:
        pytest.skip("git not installed")
    root = tmp_path / "repo"
    (root / "scripts").mkdir(parents=True)
    for s in ("zoo_queue.sh", "shard_time.py"):
        shutil.copy(REPO / "scripts" / s, root / "scripts" / s)
    env = dict(os.environ, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@t", GIT_COMMITTER_NAME="t",
               GIT_COMMITTER_EMAIL="t@t")
    git = lambda *a: subprocess.run(["git", *a], cwd=root, env=env, check=True, capture_output=True)  # noqa: E731
    git("init", "-q")
    pieces = root / "results/pieces/enres20-fp"
    pieces.mkdir(parents=True)
    for i, minutes in enumerate((60, 80, 100, 70)):
        (pieces / f"enres20-fp__aa-rand__seed0__shard{i}of4.json").write_text(json.dumps({"total_time_s": minutes * 60}))
    git("add", "scripts", *(f"results/pieces/enres20-fp/enres20-fp__aa-rand__seed0__shard{i}of4.json" for i in (0, 1, 2)))
    git("commit", "-q", "-m", "three shards")  # shard 3 is on disk, not committed
    (pieces / "enres20-fp__aa-rand__seed1__shard2of4.json.journal").write_text("")
    device = root / "results/pieces/enres20-bnn/cuda"  # an accelerator's whole batteries, apart
    device.mkdir(parents=True)
    (device / "enres20-bnn__battery__seed0.json").write_text("{}")
    (device / "enres20-bnn__battery__seed2.json.journal").write_text("")

    p = subprocess.run(["bash", "scripts/zoo_queue.sh", "status"], cwd=root, env=env, capture_output=True, text=True,
                       timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr
    assert not list(tmp_path.glob("qrobench-code-*")), "status made a worktree"
    assert not (root / "results/pieces/enres20-fp/enres20-fp__aa-rand__seed2__shard0of4.json").exists()
    lines = p.stdout.splitlines()
    assert [line for line in lines if line.startswith("device:")] == [
        "device: enres20-bnn whole battery, seeds finished: 0; journaled (to resume on an accelerator): 2 "
        '(results/pieces/enres20-bnn/cuda, README "On a lent accelerator")']
    rows = {re.split(r"\s{2,}", line)[0]: re.split(r"\s{2,}", line)[1:] for line in lines[1:-1]
            if not line.startswith("device:")}
    assert "enres20-bnn aa-rand seed 0 (continued)" in rows  # the CPU queue keeps it until the device row is in
    # slowest 100 min, median 75 of the four finished ones (committed or not: both are measurements)
    assert rows["enres20-fp aa-rand seed 0"] == ["3/4", "3", "—", "100 / 75"]
    assert rows["enres20-fp aa-rand seed 1"] == ["0/4", "0 1 2 3", "2", "100 / 75"]
    assert rows["enres20-4bit aa-rand seed 0 (continued)"] == ["0/4", "0 1 2 3", "—", "60 (SHARD_MIN)"]
    assert rows["enres20-fp square seed 2"][-1] == "25 (SHARD_MIN)"
    # the total is the table's: shards left × each job's slowest estimate
    left = sum(len(r[1].split()) for r in rows.values() if r[1] != "—")
    hours = sum(len(r[1].split()) * float(r[3].split()[0]) for r in rows.values() if r[1] != "—") / 60
    m = re.search(r"left: (\d+) shards, about ([\d.]+) thread-hours", p.stdout.splitlines()[-1])
    assert m and int(m.group(1)) == left and float(m.group(2)) == pytest.approx(hours, abs=0.05)


def test_a_shard_takes_as_long_as_the_slowest_finished_one_else_shard_min(tmp_path):
    """scripts/shard_time.py, the rule run_shards.sh (DEADLINE) and `zoo_queue.sh status` share:
    the slowest finished shard of the attack in that folder, any seed or K; unreadable files
    and other attacks do not count; before any has finished, SHARD_MIN; else nothing."""
    sys.path.insert(0, str(REPO / "scripts"))
    try:
        from shard_time import shard_seconds
    finally:
        sys.path.pop(0)
    for name, seconds in (("m__square__seed0__shard0of4", 1500), ("m__square__seed2__shard3of4", 1700),
                          ("m__square__shard1of2", 1600), ("m__aa-rand__seed0__shard0of4", 9000)):
        (tmp_path / f"{name}.json").write_text(json.dumps({"total_time_s": seconds}))
    (tmp_path / "m__square__seed1__shard0of4.json").write_text("{}")  # no time: skipped
    assert shard_seconds(tmp_path, "m__square__", "22") == 1700
    assert shard_seconds(tmp_path, "m__cw__", "22") == 22 * 60
    assert shard_seconds(tmp_path, "m__cw__", "") is None
    cli = lambda *a: subprocess.run([sys.executable, str(REPO / "scripts/shard_time.py"), str(tmp_path), *a],  # noqa: E731
                                    capture_output=True, text=True, check=True).stdout.strip()
    assert cli("m__aa-rand__", "60") == "9000" and cli("m__cw__", "7.5") == "450" and cli("m__cw__") == ""
