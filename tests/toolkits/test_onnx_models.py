"""ONNX Runtime models: codes read from the graph, logits exactly the session's, gradient from the
QDQ twin. The model is built inside the test (a tiny CNN, trained for a second so its logits
are not all alike, quantized with onnxruntime's quantize_static)."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn as nn

ort = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")
pytest.importorskip("onnx2torch")
from onnx import numpy_helper  # noqa: E402
from onnxruntime.quantization import (  # noqa: E402
    CalibrationDataReader,
    QuantFormat,
    QuantType,
    quantize_static,
)

from qrobench.errors import QrobenchError  # noqa: E402
from qrobench.quant.measure import measure_weights  # noqa: E402
from qrobench.toolkits import onnx_models as om  # noqa: E402
from qrobench.toolkits.deployed import DeployedModel  # noqa: E402

# the TorchScript exporter (dynamo=False) is what users of quantize_static still run
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
from qrobench.toolkits import read_codes  # noqa: E402


class TinyCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(3, 8, 3, padding=1)
        self.c2 = nn.Conv2d(8, 16, 3, stride=2, padding=1)
        self.fc = nn.Linear(16 * 16 * 16, 10)

    def forward(self, x):
        x = torch.relu(self.c1(x))
        x = torch.relu(self.c2(x))
        return self.fc(x.flatten(1))


class _Calibration(CalibrationDataReader):
    def __init__(self, x: torch.Tensor):
        self.batches = iter([{"x": b.numpy()} for b in x.split(4)])

    def get_next(self):
        return next(self.batches, None)


def _export(model, path, dynamic=True):
    kw = {"dynamic_axes": {"x": {0: "n"}, "logits": {0: "n"}}} if dynamic else {}
    torch.onnx.export(model, (torch.rand(2, 3, 32, 32),), str(path), dynamo=False, input_names=["x"],
                      output_names=["logits"], opset_version=17, **kw)


def _quantize(src, dst, calib, fmt=QuantFormat.QDQ):
    quantize_static(str(src), str(dst), _Calibration(calib), quant_format=fmt, per_channel=True,
                    weight_type=QuantType.QInt8, activation_type=QuantType.QUInt8,
                    reduce_range=True)  # exact int8 kernels on CPUs with or without VNNI (docs/protocol.md §8.8)


@pytest.fixture(scope="module")
def built(tmp_path_factory, test_points):
    torch.manual_seed(0)
    x, y = test_points.x[:128], test_points.y[:128]
    model = TinyCNN()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(40):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    model.eval()
    d = tmp_path_factory.mktemp("onnx")
    _export(model, d / "float.onnx")
    _quantize(d / "float.onnx", d / "qdq.onnx", x[:16])
    _quantize(d / "float.onnx", d / "qop.onnx", x[:16], QuantFormat.QOperator)
    _export(model, d / "fixed.onnx", dynamic=False)
    _quantize(d / "fixed.onnx", d / "fixed_qdq.onnx", x[:16].split(2)[0])
    return model, d


@pytest.fixture(scope="module")
def deployed(built):
    return om.load_onnx(built[1] / "qdq.onnx")


def _initializers(path):
    return {t.name: numpy_helper.to_array(t) for t in onnx.load(str(path)).graph.initializer}


def test_reader_reads_int8_per_channel_codes(built, deployed):
    model, d = built
    assert om.is_onnx_model(deployed) and isinstance(deployed, DeployedModel)
    reader, layers = read_codes(deployed)
    assert reader.format == "onnx" and reader.name.startswith("ONNX initializers")
    inits = _initializers(d / "qdq.onnx")
    torch_layers = [model.c1, model.c2, model.fc]
    assert [c.kind for c in layers] == ["conv", "conv", "linear"]
    for c, m, prefix in zip(layers, torch_layers, ["c1", "c2", "fc"], strict=True):
        assert c.bits == 8 and c.axis == 0 and c.symmetric
        assert c.scale.numel() == m.weight.shape[0]  # per output channel
        codes = inits[f"{prefix}.weight_quantized"]
        assert codes.dtype == np.int8
        assert torch.equal(c.codes, torch.from_numpy(codes.astype(np.int64)))
        np.testing.assert_allclose(c.dequantize().numpy(), m.weight.detach().numpy(),
                                   atol=float(c.scale.max()) / 2 + 1e-6)


def test_reader_reads_qoperator_codes(built):
    _, d = built
    layers = om.read_onnx_codes(om.OnnxRuntimeModule(d / "qop.onnx"))
    inits = _initializers(d / "qop.onnx")
    assert [c.kind for c in layers] == ["conv", "conv", "linear"]
    for c, prefix in zip(layers, ["c1", "c2", "fc"], strict=True):
        assert c.bits == 8 and c.axis == 0
        assert torch.equal(c.codes, torch.from_numpy(inits[f"{prefix}.weight_quantized"].astype(np.int64)))


def test_measure_weights_size_by_hand(built, deployed):
    model, d = built
    s = measure_weights(deployed)
    assert s.precision == "8bit" and s.bits == 8.0
    assert s.reader.startswith("ONNX initializers")
    layers = [model.c1, model.c2, model.fc]
    codes = sum(m.weight.numel() for m in layers)  # one byte each
    scales = sum(m.weight.shape[0] for m in layers)  # one fp32 per output channel, zero-points 0
    biases = sum(m.bias.numel() for m in layers)  # int32 codes + fp32 scale + int32 zero-point
    act_scales = sum(1 for a in _initializers(d / "qdq.onnx").values()
                     if a.dtype == np.float32 and a.ndim == 0)  # one per quantized activation
    assert act_scales >= 3
    assert s.size_bytes == codes + 4 * scales + 4 * (3 * biases + act_scales)
    assert s.n_params == codes + 3 * biases + act_scales


def test_clean_logits_are_the_sessions(built, deployed, test_points):
    _, d = built
    x = test_points.x[:32]
    sess = ort.InferenceSession(str(d / "qdq.onnx"), providers=["CPUExecutionProvider"])
    expected = sess.run(None, {"x": x.numpy()})[0]
    with torch.no_grad():
        got = deployed(x)
    assert got.dtype == torch.float32
    assert np.array_equal(got.numpy(), expected)
    assert deployed.execution == {"runtime": "onnxruntime", "version": ort.__version__,
                                  "provider": "CPUExecutionProvider", "device": "cpu"}
    assert deployed.twin_info["source"] == om.TWIN_SOURCE
    assert len(deployed.twin_info["onnx_sha256"]) == 64


def test_twin_agrees_and_gives_a_gradient(deployed, test_points):
    x = test_points.x[:64]
    with torch.no_grad():
        dep, twin = deployed(x), deployed.twin_logits(x)
    assert (dep.argmax(1) == twin.argmax(1)).float().mean() >= 0.95
    xr = x[:8].clone().requires_grad_(True)
    out = deployed(xr)
    assert torch.equal(out.detach(), dep[:8])  # the values stay the deployed model's
    nn.functional.cross_entropy(out, test_points.y[:8]).backward()
    assert torch.isfinite(xr.grad).all() and xr.grad.abs().sum() > 0


def test_fake_quantize_straight_through():
    q = om.FakeQuantizeLinear(torch.tensor(0.5), torch.tensor(10.0), 1, 0, 255)
    x = torch.tensor([0.26, -100.0, 0.75, 200.0], requires_grad=True)
    y = q(x)
    assert y.tolist() == [11.0, 0.0, 12.0, 255.0]  # 0.52 -> 1, clamp, 1.5 -> 2 (half to even)
    y.sum().backward()
    assert x.grad.tolist() == [2.0, 0.0, 2.0, 0.0]
    dq = om.DequantizeLinear(torch.tensor([1.0, 2.0]), torch.tensor([0.0, 1.0]), 1)
    assert dq(torch.ones(1, 2, 1)).flatten().tolist() == [1.0, 0.0]


def test_register_converters_is_idempotent():
    om.register_qdq_converters()
    om.register_qdq_converters()


def test_qoperator_twin_refused(built):
    with pytest.raises(QrobenchError, match="QDQ"):
        om.load_onnx(built[1] / "qop.onnx")


def test_fixed_batch(built, test_points):
    _, d = built
    with pytest.raises(QrobenchError, match="dynamic batch axis"):
        om.load_onnx(d / "fixed_qdq.onnx")
    twin = om.derive_twin(onnx.load(str(d / "fixed_qdq.onnx")))  # onnx2torch ignores the fixed size
    assert twin(test_points.x[:5]).shape == (5, 10)


def test_bad_files(tmp_path):
    with pytest.raises(QrobenchError, match="not found"):
        om.load_onnx(tmp_path / "missing.onnx")
    bad = tmp_path / "bad.onnx"
    bad.write_text("not an onnx model\n")
    with pytest.raises(QrobenchError, match="not an ONNX model"):
        om.load_onnx(bad)


def test_copy_reopens_the_session(deployed, test_points):
    m = copy.deepcopy(deployed.deployed)
    with torch.no_grad():
        assert torch.equal(m(test_points.x[:4]), deployed(test_points.x[:4]))
