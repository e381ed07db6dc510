"""The command line: the main job end to end, and one-line errors for bad input."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from qrobench.cli import main
from qrobench.engine.results import read_result
from qrobench.zoo import file_sha256


@pytest.fixture(scope="module")
def zoo(tiny_zoo):
    return tiny_zoo


def _run(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_run_writes_a_complete_result(zoo, data_dir, tmp_path, capsys):
    out = tmp_path / "r.json"
    code, stdout, _ = _run(capsys, "run", "--model", "res8-fp", "--attacks", "fgsm,pgd20", "--n", "40",
                           "--zoo-dir", str(zoo), "--data-dir", str(data_dir), "--eps", "2/255",
                           "--output", str(out), "--quiet")
    assert code == 0
    r = json.loads(out.read_text())
    assert r["model"] == "res8-fp" and r["n"] == 40 and r["eps"] == pytest.approx(2 / 255)
    assert r["card_sha256"] == file_sha256(zoo / "res8-fp.safetensors")
    assert set(r["robust_acc"]) == {"fgsm", "pgd20"} and r["data_source"].startswith("npz:")
    assert "worst case" in stdout and "pgd20" in stdout
    assert r["command"].startswith("qrobench run --model res8-fp")


def test_stochastic_model_gets_repeats_by_default(zoo, data_dir, tmp_path, capsys):
    out = tmp_path / "r.json"
    code, stdout, _ = _run(capsys, "run", "--model", "en8-tnn", "--attacks", "fgsm", "--n", "20",
                           "--zoo-dir", str(zoo), "--data-dir", str(data_dir), "--output", str(out), "--quiet")
    assert code == 0
    r = json.loads(out.read_text())
    assert r["repeats"] == 3 and r["stochastic"] and "±" in stdout
    assert r["precision"] == "tnn" and 0.3 < r["sparsity"] < 0.6


def test_list_shows_the_zoo(zoo, capsys):
    code, stdout, _ = _run(capsys, "list", "--zoo-dir", str(zoo))
    assert code == 0 and "res8-fp" in stdout and "en8-tnn" in stdout


def test_list_recipe_column_is_derived_from_the_card_training_block():
    from qrobench.reports.console import recipe_summary
    from qrobench.zoo.card import ModelCard

    base = dict(name="m", architecture="a", arch_args={}, ensemble=2, noise_coef=0.1, precision="tnn",
                quantizer="q", recipe="a long free-text description " * 5, dataset="cifar10", sha256="0",
                file="m.safetensors", license="MIT", reference="r")
    ft = ModelCard(**base, training={"recipe": {"name": "budget-nfgsm-ft", "epochs": 4},
                                     "loss": "trade-off: 8*CE(adv) + 1*CE(clean)", "init_from": "enres20-fp"})
    assert recipe_summary(ft) == "budget-nfgsm-ft, 4 ep, trade-off: 8*CE(adv) + 1*CE(clean), from enres20-fp"
    adv = ModelCard(**base, training={"recipe": {"name": "budget-nfgsm", "epochs": 15}, "loss": "CE(adv)"})
    assert recipe_summary(adv) == "budget-nfgsm, 15 ep"
    outside = ModelCard(**base)  # no training block: the card's own text, cut to one column
    assert len(recipe_summary(outside)) == 60 and recipe_summary(outside).endswith("...")


def test_default_output_goes_under_results_runs(zoo, data_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, _, _ = _run(capsys, "run", "--model", "res8-fp", "--attacks", "fgsm", "--n", "10",
                      "--zoo-dir", str(zoo), "--data-dir", str(data_dir), "--quiet")
    assert code == 0
    files = list((tmp_path / "results" / "runs").glob("res8-fp__*.json"))
    assert len(files) == 1


BAD_INPUTS = [
    (["--model", "nope"], "unknown model 'nope'; valid models: en8-tnn, res8-fp"),
    (["--model", "res8-fp", "--attacks", "pgd7"], "unknown attack 'pgd7'; valid attacks:"),
    (["--model", "res8-fp", "--attacks", "fgsm,fgsm"], "attacks (--attacks) lists fgsm twice"),
    (["--model", "res8-fp", "--n", "0"], "n (--n) must be a positive"),
    (["--model", "res8-fp", "--threat-model", "l7"], "unknown threat model 'l7'"),
    (["--model", "res8-fp", "--threat-model", "corruptions", "--attacks", "fgsm"], "runs no input attacks"),
    (["--model", "res8-fp", "--threat-model", "l2", "--attacks", "pgd20,ifgsm20"],
     "attacks (--attacks): ifgsm20 do(es) not search the L2 ball of threat model 'l2'; 'qrobench attacks' lists"),
    (["--model", "res8-fp", "--dataset", "mnist"], "unknown data set 'mnist'"),
    (["--model", "res8-fp", "--n", "20000"], "exceeds the 10000 test points"),
    (["--model", "res8-fp", "--data-dir", "/nonexistent/data"], "does not exist"),
    (["--model", "res8-fp", "--eps", "8/0"], "argument --eps: ε must be a number"),
    (["--model", "res8-fp", "--eps", "8"], "argument --eps: ε must be in (0, 1]"),
    (["--model", "res8-fp", "--device", "gpu"], "argument --device: --device must be auto, cpu or cuda"),
]


@pytest.mark.parametrize("args,message", BAD_INPUTS)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(zoo, data_dir, tmp_path, capsys, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    results = tmp_path / "results" / "runs"
    results.mkdir(parents=True)
    keep = results / "old.json"
    keep.write_text('{"kept": true}')
    argv = ["run", *args, "--zoo-dir", str(zoo), "--quiet"]
    if "--data-dir" not in args:
        argv += ["--data-dir", str(data_dir)]
    parse_error = message.startswith("argument ")  # refused by the shared option parsers
    with pytest.raises(SystemExit) if parse_error else _nullctx() as exc:
        code, _, err = _run(capsys, *argv)
    if exc is not None:
        code, err = exc.value.code, capsys.readouterr().err
    assert code == 2
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
    assert sorted(p.name for p in results.iterdir()) == ["old.json"]
    assert keep.read_text() == '{"kept": true}'


class _nullctx:
    def __enter__(self):
        return None

    def __exit__(self, *a):
        return False


def _tampered_zoo(zoo, tmp_path, how):
    d = tmp_path / "zoo"
    d.mkdir()
    for f in zoo.iterdir():
        (d / f.name).write_bytes(f.read_bytes())
    card = json.loads((d / "res8-fp.json").read_text())
    if how == "hash":
        with open(d / "res8-fp.safetensors", "ab") as f:
            f.write(b"\0")
    elif how == "fields":
        del card["sha256"]
    elif how == "pickle":
        torch.save({"w": torch.zeros(2)}, d / "res8-fp.pt")
        card["file"] = "res8-fp.pt"
        card["sha256"] = file_sha256(d / "res8-fp.pt")
    (d / "res8-fp.json").write_text(json.dumps(card))
    return d


@pytest.mark.parametrize("how,message", [("hash", "sha256"), ("fields", "missing field(s) sha256"),
                                         ("pickle", "pickle")])
def test_bad_zoo_entries_are_refused_in_one_line(zoo, data_dir, tmp_path, how, message):
    d = _tampered_zoo(zoo, tmp_path, how)
    env = {**os.environ, "QROBENCH_DATA": str(data_dir)}
    p = subprocess.run([sys.executable, "-m", "qrobench.cli", "run", "--model", "res8-fp", "--n", "5",
                        "--zoo-dir", str(d), "--attacks", "fgsm", "--quiet"],
                       capture_output=True, text=True, env=env, cwd=tmp_path)
    assert p.returncode == 2
    assert message in p.stderr and "Traceback" not in p.stderr
    assert p.stderr.strip().count("\n") == 0
    assert not (Path(tmp_path) / "results").exists()


def test_attacks_command_lists_settings(capsys):
    code, stdout, _ = _run(capsys, "attacks")
    assert code == 0 and "pgd20" in stdout and "2/255" in stdout and "square" in stdout
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:-1]] for line in stdout.splitlines()
            if line.startswith("| ")}
    assert rows["pgd20"][1] == "Linf, L2" and rows["ifgsm20"][1] == "Linf" and rows["aa"][1] == "Linf, L2"
    code, stdout, _ = _run(capsys, "attacks", "--threat-model", "l2")
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:-1]] for line in stdout.splitlines()
            if line.startswith("| ")}
    assert code == 0 and "L2 ball, eps 0.5" in stdout
    assert "step_size=0.0625" in rows["pgd20"][2] and "step_size=0.0416667" in rows["cw"][2]
    assert rows["ifgsm20"][2] == "(not in the L2 ball)"


def test_run_l2_end_to_end(zoo, data_dir, tmp_path, capsys):
    out = tmp_path / "l2.json"
    code, stdout, err = _run(capsys, "run", "--model", "res8-fp", "--threat-model", "l2", "--attacks", "fgsm,pgd20,cw",
                             "--n", "20", "--zoo-dir", str(zoo), "--data-dir", str(data_dir), "--output", str(out),
                             "--quiet")
    assert code == 0, err
    r = json.loads(out.read_text())
    assert (r["threat_model"], r["norm"], r["eps"], r["n"]) == ("l2", "L2", 0.5, 20)
    settings = r["attacks"]
    assert {a: (s["norm"], s["eps"]) for a, s in settings.items()} == {a: ("L2", 0.5) for a in ("fgsm", "pgd20", "cw")}
    assert settings["pgd20"]["step_size"] == pytest.approx(0.0625) and settings["cw"]["step_size"] == pytest.approx(0.5 / 12)
    assert 0 <= r["worst_case_acc"] <= min(r["robust_acc"].values()) <= r["clean_acc"]
    assert "--threat-model l2" in r["command"]


def test_diagnose_prints_the_checks_and_stores_them_in_the_result(zoo, data_dir, tmp_path, capsys):
    results = tmp_path / "results"
    out = results / "zoo" / "res8-fp.json"
    code, _, err = _run(capsys, "run", "--model", "res8-fp", "--attacks", "fgsm,pgd20", "--n", "40",
                        "--zoo-dir", str(zoo), "--data-dir", str(data_dir), "--output", str(out), "--quiet")
    assert code == 0, err
    code, stdout, err = _run(capsys, "diagnose", "--model", "res8-fp", "--zoo-dir", str(zoo), "--results-dir",
                             str(results), "--data-dir", str(data_dir), "--probe-points", "30")
    assert code == 0, err
    rows = {line.split("|")[1].strip(): line.split("|")[2].strip() for line in stdout.splitlines()
            if line.startswith("| ") and "check" not in line}
    assert rows["fgsm-beats-pgd"] == "pass" and rows["black-box-beats-white-box"] == "n/a"  # no black-box run
    assert rows["large-eps-not-broken"] == "pass" and rows["noisy-early-stop"] == "n/a" and len(rows) == 18
    assert rows["separate-score-draws"] == "n/a"  # deterministic
    assert rows["twin-mismatch"] == "n/a" and rows["tied-logits"] == "pass"  # float logits do not tie
    # the probe needs a point that survived every attack among the first 30; whether the tiny
    # model (its weights depend on the CPU) has one is checked against the stored outcomes
    survivors = read_result(out).worst_case_masks()[0][:30].any()
    assert rows["incomplete-optimisation"] in (("pass", "FLAG") if survivors else ("n/a",))
    stored = json.loads(out.read_text())["diagnostics"]
    assert [f["check"] for f in stored["findings"]] == list(rows) and stored["probe"]["points"] == 30
    assert stored["flags"] == [k for k, v in rows.items() if v == "FLAG"]
    assert stored["command"].startswith("qrobench diagnose --model res8-fp")
    code, _, err = _run(capsys, "diagnose", "--model", "en8-tnn", "--zoo-dir", str(zoo), "--results-dir",
                        str(results), "--data-dir", str(data_dir))
    assert code == 2 and "no result for 'en8-tnn'" in err and err.count("\n") == 1


def test_compare_runs_a_paired_test_on_two_result_files(zoo, data_dir, tmp_path, capsys):
    files = []
    # fgsm alone against fgsm + pgd20 on the same points and seed: fgsm is deterministic, so the
    # second file's worst case is the first's with pgd20's breaks added, point by point; this
    # holds on any CPU, whatever the trained weights are
    for name, atk in (("fgsm", "fgsm"), ("pgd", "fgsm,pgd20")):
        files.append(str(tmp_path / f"{name}.json"))
        code, _, err = _run(capsys, "run", "--model", "res8-fp", "--attacks", atk, "--n", "60", "--eps", "2/255",
                            "--zoo-dir", str(zoo), "--data-dir", str(data_dir), "--output", files[-1], "--quiet")
        assert code == 0, err
    code, out, err = _run(capsys, "compare", *files)
    assert code == 0, err
    fgsm, pgd = (json.loads(open(f).read())["worst_case_acc"] for f in files)
    # like with like: over the attacks both measured (fgsm), not each file's own battery, so the
    # second file's pgd20 breaks do not count as a difference
    assert out.startswith(f"over the attacks both measured: fgsm (left out: {files[1]} also measured pgd20)")
    assert out.count(f"{100 * fgsm:6.2f} %") == 2 and "paired test p = 1 (not significant" in out
    assert re.search(r"does better: (\d+), worse: (\d+)", out).groups() == ("0", "0")
    code, out, err = _run(capsys, "compare", *files, "--attacks", "fgsm,pgd20")
    assert code == 2 and "lacks pgd20" in err
