"""Toolkit models through the whole pipeline: evaluated and attacked as deployed (BPDA through
a twin for integer runtimes), submitted with ``qrobench submit``, reloaded from the zoo, run
with ``qrobench run --onnx``. The toolkit models are made here, from a small CNN trained for
seconds, and reached through ``--factory test_deployed_eval:...`` like a user's own package.
"""

import json
import warnings

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import qrobench
from qrobench.cli import main
from qrobench.errors import QrobenchError
from qrobench.toolkits import DeployedModel, Materialised, prepare
from qrobench.zoo import Zoo

N = 40


class SmallCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(3, 16, 3, padding=1)
        self.c2 = nn.Conv2d(16, 32, 3, padding=1)
        self.fc = nn.Linear(32 * 8 * 8, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.c1(x)), 2)
        x = F.max_pool2d(F.relu(self.c2(x)), 2)
        return self.fc(x.flatten(1))


def _convert(model: nn.Module, calibration: torch.Tensor | None) -> nn.Module:
    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

    example = torch.rand(2, 3, 32, 32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prepared = prepare_fx(model.eval(), get_default_qconfig_mapping("x86"), (example,))
        if calibration is not None:
            with torch.no_grad():
                prepared(calibration)
        return convert_fx(prepared)


def int8_cnn() -> nn.Module:
    """The factory a user of torch.ao writes: the converted structure, filled by the state dict."""
    return _convert(SmallCNN(), None)


class BrevitasCNN(nn.Module):
    def __init__(self):
        super().__init__()
        from brevitas.nn import QuantConv2d, QuantLinear

        q = dict(weight_bit_width=4, weight_scaling_per_output_channel=True)
        self.c1 = QuantConv2d(3, 16, 3, padding=1, **q)
        self.c2 = QuantConv2d(16, 32, 3, padding=1, **q)
        self.fc = QuantLinear(32 * 8 * 8, 10, bias=True, **q)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.c1(x)), 2)
        x = F.max_pool2d(F.relu(self.c2(x)), 2)
        return self.fc(x.flatten(1))


def brevitas_cnn() -> nn.Module:
    return BrevitasCNN()


def _train(model: nn.Module, data_dir, steps: int = 40) -> nn.Module:
    from qrobench.data.cifar10 import load_cifar10_train

    torch.manual_seed(0)
    train = load_cifar10_train(data_dir)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    model.train()
    for i in range(steps):
        s = (i * 100) % 4000
        loss = F.cross_entropy(model(train.x[s:s + 100]), train.y[s:s + 100])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


@pytest.fixture(scope="module")
def float_cnn(data_dir):
    return _train(SmallCNN(), data_dir)


@pytest.fixture(scope="module")
def int8_model(float_cnn, test_points):
    model = SmallCNN()
    model.load_state_dict(float_cnn.state_dict())
    return _convert(model, test_points.x[100:200])


@pytest.fixture(scope="module")
def onnx_file(float_cnn, test_points, tmp_path_factory):
    pytest.importorskip("onnxruntime")
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    folder = tmp_path_factory.mktemp("onnx")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(float_cnn, (test_points.x[:2],), str(folder / "fp.onnx"), dynamo=False,
                          input_names=["x"], output_names=["y"], dynamic_axes={"x": {0: "n"}, "y": {0: "n"}})

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.batches = iter([{"x": test_points.x[i:i + 50].numpy()} for i in range(100, 200, 50)])

        def get_next(self):
            return next(self.batches, None)

    quantize_static(str(folder / "fp.onnx"), str(folder / "int8.onnx"), Reader(), quant_format=QuantFormat.QDQ,
                    per_channel=True, weight_type=QuantType.QInt8, activation_type=QuantType.QUInt8,
                    reduce_range=True)  # exact int8 kernels on CPUs with or without VNNI (docs/protocol.md §8.8)
    return folder / "int8.onnx"


def _data(test_points, n=N):
    from qrobench.data.cifar10 import EvalData

    return EvalData(test_points.x[:n], test_points.y[:n], test_points.source)


def _deployment_checks(result, deployed_logits_fn, test_points):
    d = result.deployment
    assert d["agreement"]["points"] == N and 0.9 <= d["agreement"]["rate"] <= 1.0
    assert d["agreement"]["max_abs_logit_diff"] >= 0
    for a in ("fgsm", "pgd20"):
        t = d["transfer"][a]
        assert 0 <= t["both_fooled"] <= t["twin_fooled"]
    # the clean accuracy is the runtime's own on the same points
    with torch.no_grad():
        own = (deployed_logits_fn(test_points.x[:N]).argmax(1) == test_points.y[:N]).float().mean().item()
    assert result.clean_acc == pytest.approx(own)


def test_torch_int8_is_attacked_through_its_twin(int8_model, test_points):
    r = qrobench.evaluate(int8_model, attacks=["fgsm", "pgd20", "square"], n=N, data=_data(test_points),
                          progress=False)
    assert r.deployment["format"] == "torch-ao" and r.deployment["execution"]["runtime"] == "torch-int8"
    assert r.precision == "8bit" and r.bits == 8.0 and "torch.ao" in r.weights["reader"]
    _deployment_checks(r, int8_model, test_points)
    # a white-box attack finds something: pgd20 ≤ clean, and the worst case ≤ every attack
    assert r.robust_acc["pgd20"] <= r.clean_acc and r.worst_case_acc <= min(r.robust_acc.values())


def test_a_model_without_input_gradient_is_refused_in_one_line(int8_model, test_points):
    class Opaque(nn.Module):  # no toolkit qrobench knows, and no gradient
        def __init__(self, inner):
            super().__init__()
            object.__setattr__(self, "inner", inner)

        def forward(self, x):
            with torch.no_grad():
                return int8_model(x)

    with pytest.raises(QrobenchError, match="no gradient.*--twin"):
        qrobench.evaluate(Opaque(int8_model), attacks=["pgd20"], n=10, data=_data(test_points, 10), progress=False)
    r = qrobench.evaluate(Opaque(int8_model), attacks=["square"], n=10, data=_data(test_points, 10), progress=False)
    assert r.deployment is None and 0 <= r.robust_acc["square"] <= r.clean_acc


def test_twin_is_only_for_models_without_gradient(float_cnn):
    with pytest.raises(QrobenchError, match="drop --twin"):
        prepare(float_cnn, twin=float_cnn)


def _card(tmp_path):
    p = tmp_path / "card.json"
    p.write_text(json.dumps({"recipe": "Adam, 40 steps (test)", "license": "MIT", "reference": "tests"}))
    return p


def _submit(capsys, out, name, *extra):
    code = main(["submit", "--name", name, "--n", str(N), "--attacks", "fgsm,pgd20", "--output-dir", str(out),
                 "--device", "cpu", "--quiet", "--min-clean-acc", "0", *extra])
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def test_submit_torch_int8_state_dict(int8_model, data_dir, tmp_path, capsys, monkeypatch, test_points):
    monkeypatch.setenv("QROBENCH_DATA", str(data_dir))
    ckpt = tmp_path / "int8.pt"
    torch.save(int8_model.state_dict(), ckpt)  # quantized tensors, packed params: weights_only=True reads it
    out = tmp_path / "repo"
    code, _, err = _submit(capsys, out, "int8-test", "--checkpoint", str(ckpt), "--factory",
                           "test_deployed_eval:int8_cnn", "--card", str(_card(tmp_path)))
    assert code == 0, err
    card = json.loads((out / "model_zoo" / "int8-test.json").read_text())
    result = json.loads((out / "results" / "zoo" / "int8-test.json").read_text())
    assert card["format"] == "torch-ao" and card["runtime"]["runtime"] == "torch-int8"
    assert card["precision"] == result["precision"] == "8bit" and result["bits"] == 8.0
    assert result["compression"] > 3.5 and "torch.ao int8 state dict" in card["extra"]["submission"]["loaded_as"]
    assert result["deployment"]["agreement"]["points"] == N
    model, _ = Zoo(out / "model_zoo").load("int8-test")  # stored as safetensors, rebuilt exactly
    assert isinstance(model, DeployedModel)
    with torch.no_grad():
        assert torch.equal(model(test_points.x[:8]), int8_model(test_points.x[:8]))


def test_submit_and_run_onnx(onnx_file, data_dir, tmp_path, capsys, monkeypatch, test_points):
    import onnxruntime as ort

    monkeypatch.setenv("QROBENCH_DATA", str(data_dir))
    session = ort.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])

    def runtime(x):
        return torch.from_numpy(session.run(None, {"x": x.numpy()})[0])

    out = tmp_path / "repo"
    code, _, err = _submit(capsys, out, "onnx-test", "--onnx", str(onnx_file), "--card", str(_card(tmp_path)))
    assert code == 0, err
    card = json.loads((out / "model_zoo" / "onnx-test.json").read_text())
    assert card["format"] == "onnx" and card["runtime"]["runtime"] == "onnxruntime" and card["file"] == "onnx-test.onnx"
    assert not list((out / "model_zoo").glob(".*"))  # no staging folder left behind
    r = qrobench.engine.results.read_result(out / "results" / "zoo" / "onnx-test.json")
    assert r.precision == "8bit" and r.bits == 8.0
    _deployment_checks(r, runtime, test_points)

    # qrobench run --onnx: the same file outside the zoo
    res = tmp_path / "run.json"
    code = main(["run", "--onnx", str(onnx_file), "--attacks", "fgsm", "--n", str(N), "--output", str(res),
                 "--quiet"])
    assert code == 0
    again = json.loads(res.read_text())
    assert again["clean_acc"] == r.clean_acc and again["deployment"]["execution"]["runtime"] == "onnxruntime"


def test_submit_brevitas_per_channel_4bit(data_dir, tmp_path, capsys, monkeypatch, test_points):
    pytest.importorskip("brevitas")
    monkeypatch.setenv("QROBENCH_DATA", str(data_dir))
    model = _train(BrevitasCNN(), data_dir, steps=20)
    from safetensors.torch import save_file

    ckpt = tmp_path / "brevitas.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(ckpt))
    out = tmp_path / "repo"
    code, _, err = _submit(capsys, out, "brevitas-test", "--checkpoint", str(ckpt), "--factory",
                           "test_deployed_eval:brevitas_cnn", "--card", str(_card(tmp_path)))
    assert code == 0, err
    card = json.loads((out / "model_zoo" / "brevitas-test.json").read_text())
    result = json.loads((out / "results" / "zoo" / "brevitas-test.json").read_text())
    assert card["precision"] == result["precision"] == "4bit" and result["bits"] == 4.0
    assert card["format"] == "brevitas" and "materialised" in card["runtime"]
    # packed: 4-bit codes and one fp32 scale per output channel, float biases
    codes = sum(m.weight.numel() for m in (model.c1, model.c2, model.fc))
    scales = 16 + 32 + 10
    biases = sum(m.bias.numel() for m in (model.c1, model.c2, model.fc))
    assert result["size_bytes"] == codes // 2 + 4 * scales + 4 * biases
    eq = result["deployment"]["equivalence"]
    assert eq["passed"] and eq["points"] == N and eq["max_abs_logit_diff"] <= eq["tolerance"]
    loaded, _ = Zoo(out / "model_zoo").load("brevitas-test")
    assert isinstance(loaded, Materialised)


def test_shards_of_a_deployed_run_merge_into_its_counts(int8_model, test_points):
    from qrobench.engine import evaluate, make_config
    from qrobench.engine.merge import merge_shards
    from qrobench.engine.shards import Shard

    data = _data(test_points)
    whole = evaluate(int8_model, make_config(["fgsm", "pgd20"], n=N, batch_size=20, progress=False), data=data)
    parts = [evaluate(int8_model, make_config(["fgsm", "pgd20"], n=N, batch_size=20, progress=False,
                                              shard=Shard(i, 2)), data=data) for i in range(2)]
    merged = merge_shards([(f"s{i}", p) for i, p in enumerate(parts)], command="test")
    assert merged.deployment["agreement"] == whole.deployment["agreement"]
    assert merged.deployment["transfer"] == whole.deployment["transfer"]
    assert merged.deployment["agreement"]["points"] == N == sum(p.deployment["agreement"]["points"] for p in parts)


def test_layer_table_reads_the_codes(int8_model):
    from qrobench.quant.measure import layer_table

    rows = layer_table(int8_model)
    assert [r["layer"] for r in rows] == ["c1", "c2", "fc"] and {r["bits"] for r in rows} == {8}
    w = int8_model.c1.weight()
    zp = w.q_per_channel_zero_points().reshape(-1, 1, 1, 1)
    assert rows[0]["zeros"] == int((w.int_repr().long() == zp).sum()) and rows[0]["scales"].startswith("per-channel")


def test_autoattack_and_cw_run_through_the_twin(int8_model, onnx_file, test_points):
    from qrobench.toolkits.onnx_models import load_onnx

    for model in (int8_model, load_onnx(onnx_file)):
        r = qrobench.evaluate(model, attacks=["cw", "aa"], n=6, data=_data(test_points, 6), progress=False)
        assert set(r.deployment["transfer"]) <= {"cw", "aa"} and r.deployment["agreement"]["points"] == 6
        assert r.worst_case_acc <= r.robust_acc["aa"] <= r.clean_acc
