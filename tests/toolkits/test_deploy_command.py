"""``qrobench deploy``: a float zoo model made into torch.ao int8, ONNX Runtime int8 and
Brevitas QAT zoo entries that load back as deployed and keep the float model's accuracy."""

import json
import shutil

import pytest
import torch

from qrobench.cli import main
from qrobench.toolkits import DeployedModel, Materialised
from qrobench.zoo import Zoo


@pytest.fixture
def zoo(tiny_zoo, tmp_path, data_dir, monkeypatch):
    monkeypatch.setenv("QROBENCH_DATA", str(data_dir))
    d = tmp_path / "zoo"
    shutil.copytree(tiny_zoo, d)
    return d


@pytest.mark.parametrize("toolkit,suffix", [("torch-ao", "safetensors"), ("onnx", "onnx")])
def test_post_training_int8_entries(zoo, toolkit, suffix, test_points, capsys):
    if toolkit == "onnx":
        pytest.importorskip("onnxruntime")
    name = f"res8-int8-{toolkit}"
    # onnx: 7-bit weights, so that onnxruntime's kernels are exact on CPUs without VNNI too (8-bit
    # weights saturate there and the agreement below would depend on the CPU)
    extra = ["--reduce-range"] if toolkit == "onnx" else []
    assert main(["deploy", name, "--from", "res8-fp", "--toolkit", toolkit, "--calibration-n", "200",
                 "--zoo-dir", str(zoo), "--quiet", *extra]) == 0
    card = json.loads((zoo / f"{name}.json").read_text())
    assert card["format"] == toolkit and card["file"] == f"{name}.{suffix}" and card["precision"] == "8bit"
    assert ("reduce_range" in card["quantizer"]) == (toolkit == "onnx")
    assert card["training"]["init_from"] == "res8-fp" and card["training"]["command"].startswith("qrobench deploy")
    z = Zoo(zoo)
    model, _ = z.load(name)
    source, _ = z.load("res8-fp")
    assert isinstance(model, DeployedModel)
    x, y = test_points.x[:200], test_points.y[:200]
    with torch.no_grad():
        q, f, t = model(x).argmax(1), source(x).argmax(1), model.twin_logits(x).argmax(1)
    # int8 of a float network: nearly the same decisions, and the twin nearly the deployed one's
    assert (q == f).float().mean() >= 0.9 and (t == q).float().mean() >= 0.95
    assert abs((q == y).float().mean() - (f == y).float().mean()) <= 0.05
    # an existing entry is not overwritten
    assert main(["deploy", name, "--from", "res8-fp", "--toolkit", toolkit, "--zoo-dir", str(zoo), "--quiet"]) == 2
    assert "exists" in capsys.readouterr().err


def test_brevitas_qat_entry(zoo, tmp_path):
    pytest.importorskip("brevitas")
    assert main(["deploy", "res8-4bit-brevitas", "--from", "res8-fp", "--toolkit", "brevitas", "--epochs", "1",
                 "--train-n", "200", "--val-n", "50", "--work-dir", str(tmp_path / "runs"), "--zoo-dir", str(zoo),
                 "--quiet"]) == 0
    card = json.loads((zoo / "res8-4bit-brevitas.json").read_text())
    assert card["format"] == "brevitas" and card["precision"] == "4bit"
    assert card["arch_args"]["weight_bits"] == 4 and len(card["training"]["epoch_log"]) == 2
    model, _ = Zoo(zoo).load("res8-4bit-brevitas")
    assert isinstance(model, Materialised)


def test_deploy_refuses_a_quantized_source(zoo, capsys):
    assert main(["deploy", "x", "--from", "en8-tnn", "--toolkit", "torch-ao", "--zoo-dir", str(zoo), "--quiet"]) == 2
    assert "float, single-member" in capsys.readouterr().err
