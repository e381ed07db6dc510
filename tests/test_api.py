"""The Python API mirrors the CLI (RobustBench style)."""

import json

import qrobench
from qrobench.cli import main
from qrobench.train.export import export_to_zoo


def test_load_model_and_evaluate_match_the_json(tmp_path, tiny_trained, data_dir, capsys, monkeypatch):
    export_to_zoo(tiny_trained, "res8-fp", "preact_resnet", {"depth": 8}, "fp", "natural", {}, tmp_path)
    monkeypatch.setenv("QROBENCH_DATA", str(data_dir))
    assert qrobench.list_models(tmp_path) == ["res8-fp"]
    model = qrobench.load_model("res8-fp", zoo_dir=tmp_path)
    assert not model.training
    r = qrobench.evaluate(model, attacks=["fgsm"], n=30, seed=0, eps=2 / 255, progress=False)
    out = tmp_path / "r.json"
    assert main(["run", "--model", "res8-fp", "--attacks", "fgsm", "--n", "30", "--eps", "2/255",
                 "--zoo-dir", str(tmp_path), "--output", str(out), "--quiet"]) == 0
    capsys.readouterr()
    j = json.loads(out.read_text())
    assert set(r.to_dict()) == set(j)  # the API returns the record the CLI writes
    for k in ("model", "card_sha256", "clean_acc", "robust_acc", "worst_case_acc", "sparsity", "size_bytes"):
        assert r[k] == j[k] == getattr(r, k), k
    assert r.command.startswith("qrobench.evaluate('res8-fp'") and j["command"].startswith("qrobench run")
