"""Evaluation that scales: --shard + merge, kill -9 and --resume, and torchrun ranks (gloo)."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from qrobench.cli import main
from qrobench.engine.journal import journal_path


def _args(zoo, data_dir, model, attacks, n, bs, *extra):
    return ["run", "--model", model, "--attacks", attacks, "--n", str(n), "--batch-size", str(bs),
            "--eps", "4/255", "--zoo-dir", str(zoo), "--data-dir", str(data_dir), "--quiet", *extra]


def _numbers(path):
    r = json.loads(path.read_text())
    assert 0 < r["worst_case_acc"] < r["clean_acc"]  # the attacks broke some points but not all
    return (r["n"], r["clean_acc"], r["robust_acc"], r["worst_case_acc"],
            [(s["seed"], s["outcomes"]) for s in r["per_seed"]])


@pytest.fixture(scope="module")
def one_process(tiny_zoo, data_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("one") / "whole.json"
    assert main(_args(tiny_zoo, data_dir, "res8-fp", "fgsm,pgd20", 40, 8, "--output", str(out))) == 0
    return out


def test_shard_files_merge_into_the_one_process_file(tiny_zoo, data_dir, tmp_path, one_process, capsys):
    parts = []
    for i in range(3):
        p = tmp_path / f"s{i}.json"
        assert main(_args(tiny_zoo, data_dir, "res8-fp", "fgsm,pgd20", 40, 8, "--shard", f"{i}/3",
                          "--output", str(p))) == 0
        parts.append(str(p))
    assert json.loads((tmp_path / "s1.json").read_text())["shard"] == {"index": 1, "count": 3, "n": 40}
    assert main(["merge", *parts, "--output", str(tmp_path / "merged.json")]) == 0
    assert _numbers(tmp_path / "merged.json") == _numbers(one_process)
    assert not list(tmp_path.glob("*.journal"))  # finished runs leave no journal behind
    capsys.readouterr()
    assert main(_args(tiny_zoo, data_dir, "res8-fp", "fgsm", 40, 8, "--shard", "6/7")) == 2  # 5 batches only
    assert "too few for 7 shards; use a smaller --batch-size" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # argparse: exit 2 with the message
        main(_args(tiny_zoo, data_dir, "res8-fp", "fgsm", 40, 8, "--shard", "5/5"))
    assert "counts from 0" in capsys.readouterr().err


def test_kill_9_mid_run_then_resume_gives_the_uninterrupted_numbers(tiny_zoo, data_dir, tmp_path):
    argv = _args(tiny_zoo, data_dir, "res8-fp", "eot-pgd20", 48, 4)
    ref = tmp_path / "ref.json"
    assert main([*argv, "--output", str(ref)]) == 0
    out = tmp_path / "killed.json"
    journal = journal_path(out)
    proc = subprocess.Popen([sys.executable, "-m", "qrobench.cli", *argv, "--output", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline:  # wait until some but not all attack batches are journaled
        if journal.exists() and journal.read_text().count('"part": "eot-pgd20"') >= 3:
            break
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not out.exists() and journal.exists()
    done = journal.read_text().count('"part": "eot-pgd20"')
    assert 3 <= done < 12, "the run was not killed mid-way"
    lines = journal.read_text().splitlines(keepends=True)  # the killed process's batches took 100 s each
    entries = [json.loads(x) for x in lines[1:] if x.endswith("\n")]
    journal.write_text(lines[0] + "".join(json.dumps({**e, "time": 100.0}) + "\n" for e in entries))
    with open(journal, "a") as f:  # a torn last line, as if killed mid-write
        f.write('{"seed": 0, "part": "eot-pg')
    assert main([*argv, "--output", str(out)]) == 2  # without --resume the journal is not overwritten
    assert journal.exists()
    assert main([*argv[:4], "fgsm", *argv[5:], "--output", str(out), "--resume"]) == 2  # another run's journal
    assert main([*argv, "--output", str(out), "--resume"]) == 0
    assert _numbers(out) == _numbers(ref) and not journal.exists()
    # the record's cost counts the batches the killed process finished, not only the resuming process
    assert 100.0 * len(entries) <= json.loads(out.read_text())["total_time_s"] < 100.0 * len(entries) + 120


def test_two_gloo_ranks_write_the_one_process_result(tiny_zoo, data_dir, tmp_path, one_process):
    out = tmp_path / "ranks.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, "-m", "qrobench.cli",
                        *_args(tiny_zoo, data_dir, "res8-fp", "fgsm,pgd20", 40, 8, "--workers", "2",
                               "--output", str(out))], env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert _numbers(out) == _numbers(one_process)
    d = json.loads(out.read_text())
    assert [m["file"] for m in d["merged_from"]] == ["rank 0", "rank 1"]
    assert "--workers 2" in d["command"] and "shard" not in d
    assert not list(tmp_path.glob("*.journal"))


def test_points_is_the_torchrun_safe_spelling_of_n():
    from qrobench.cli import build_parser

    assert build_parser().parse_args(["run", "--model", "m", "--points", "7"]).n == 7
