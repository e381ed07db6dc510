"""torch.ao int8 models: codes read from the packed weights, the derived fake-quant twin
(BPDA through DeployedModel), and int8 state-dict checkpoints."""

from __future__ import annotations

import hashlib
import warnings

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from qrobench.errors import CheckpointError, QrobenchError
from qrobench.quant.measure import measure_weights
from qrobench.toolkits import torch_int8 as ti
from qrobench.toolkits.formats import model_format, read_codes

AO_READER = "torch.ao packed int8 weights (int_repr, per-channel scales and zero-points)"

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning",
                                        "ignore::UserWarning", "ignore::FutureWarning")


class SmallCNN(nn.Module):
    def __init__(self, width: int = 4):
        super().__init__()
        self.c1 = nn.Conv2d(3, width, 3, padding=1)
        self.c2 = nn.Conv2d(width, 8, 3, stride=2, padding=1)
        self.fc = nn.Linear(8 * 16 * 16, 10)

    def forward(self, x):
        return self.fc(F.relu(self.c2(F.relu(self.c1(x)))).flatten(1))


class TinyRes(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.bn0 = nn.BatchNorm2d(8)
        self.a = nn.Conv2d(8, 8, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(8)
        self.b = nn.Conv2d(8, 8, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(8)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(8, 10)

    def forward(self, x):
        y = F.relu(self.bn0(self.stem(x)))
        z = self.bn2(self.b(F.relu(self.bn1(self.a(y)))))
        return self.fc(self.pool(F.relu(y + z)).flatten(1))


def _seeded(cls, seed: int, **kw) -> nn.Module:
    torch.manual_seed(seed)
    m = cls(**kw).eval()
    for mod in m.modules():
        if isinstance(mod, nn.BatchNorm2d):
            mod.running_mean.uniform_(-0.2, 0.2)
            mod.running_var.uniform_(0.5, 2.0)
    return m


def _convert(model: nn.Module, calib: torch.Tensor, mapping=None) -> nn.Module:
    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prepared = prepare_fx(model, mapping or get_default_qconfig_mapping("x86"), (calib[:2],))
        with torch.no_grad():
            prepared(calib)
        return convert_fx(prepared)


def _small_mapping():
    """x86 per-channel convs; the linear per-tensor affine, so one layer has a zero-point."""
    from torch.ao.quantization import (
        HistogramObserver,
        MinMaxObserver,
        QConfig,
        get_default_qconfig_mapping,
    )

    affine = QConfig(activation=HistogramObserver.with_args(reduce_range=True),
                     weight=MinMaxObserver.with_args(dtype=torch.qint8,
                                                     qscheme=torch.per_tensor_affine))
    return get_default_qconfig_mapping("x86").set_module_name("fc", affine)


def _small(seed: int, calib: torch.Tensor, width: int = 4) -> nn.Module:
    m = _seeded(SmallCNN, seed, width=width)
    with torch.no_grad():
        m.c1.weight[:, 0] = 0  # input channel 0 of c1 entirely zero
        m.c2.weight[:4, :2] = 0
        m.fc.weight.uniform_(-0.01, 0.03)  # asymmetric: a non-zero zero-point
    return _convert(m, calib, _small_mapping())


@pytest.fixture(scope="module")
def points(test_points):
    return test_points.x[:64].float(), test_points.x[64:128].float()


@pytest.fixture(scope="module")
def small(points):
    return _small(0, points[1])


@pytest.fixture(scope="module")
def res(points):
    return _convert(_seeded(TinyRes, 1), points[1])


# -- reader and weight statistics --------------------------------------------------------

def test_reader_reads_packed_codes(small):
    assert ti.is_torch_int8(small) and not ti.is_pt2e(small)
    assert model_format(small) == "torch-ao"
    reader, layers = read_codes(small)
    assert reader.name == AO_READER
    assert [(c.name, c.kind) for c in layers] == [("c1", "conv"), ("c2", "conv"), ("fc", "linear")]
    mods = dict(small.named_modules())
    for c in layers:
        w = mods[c.name].weight()
        assert c.bits == 8
        assert torch.equal(c.codes, w.int_repr().long())
    c1, c2, fc = layers
    assert c1.axis == 0 and c1.scale.numel() == 4 and c2.scale.numel() == 8  # per channel
    assert torch.allclose(c1.scale, mods["c1"].weight().q_per_channel_scales().double())
    assert fc.axis is None and fc.scale.numel() == 1 and int(fc.zero_point) != 0
    # one layer by hand: codes at 8 bits + one fp32 per scale (+ zero-point codes if any ≠ 0)
    assert c1.packed_bits() == 8 * 4 * 3 * 3 * 3 + 32 * 4
    assert fc.packed_bits() == 8 * 10 * 2048 + 32 + 8


def test_measure_weights_from_codes(small):
    ws = measure_weights(small)
    assert ws.precision == "8bit" and ws.bits == 8.0 and ws.reader == AO_READER
    assert ws.layer_bits == {"c1": 8, "c2": 8, "fc": 8}
    codes = 108 + 288 + 20480
    scales = 4 + 8 + 1
    biases = 4 + 8 + 10  # inside the packed params, not module parameters
    assert ws.size_bytes == codes + 4 * scales + 1 + 4 * biases
    assert ws.n_params == codes + biases
    # a weight is zero where its code equals its zero-point
    mods = dict(small.named_modules())
    zeros = 0
    for name in ("c1", "c2", "fc"):
        w = mods[name].weight()
        zp = (w.q_per_channel_zero_points().view(-1, *[1] * (w.dim() - 1))
              if w.qscheme() == torch.per_channel_affine else w.q_zero_point())
        zeros += int((w.int_repr().long() == zp).sum())
    assert ws.sparsity == pytest.approx(zeros / codes)
    assert zeros >= 4 * 9 + 4 * 2 * 9  # at least the weights set to zero
    assert ws.zero_channels >= 1  # c1's input channel 0


# -- twin and DeployedModel -------------------------------------------------------------

@pytest.mark.parametrize("which", ["small", "res"])
def test_twin_agrees_and_gives_gradients(which, request, points):
    q = request.getfixturevalue(which)
    x = points[0]
    twin = ti.derive_twin(q)
    with torch.no_grad():
        ref, t = q(x), twin(x)
    assert (ref.argmax(1) == t.argmax(1)).float().mean() >= 0.95
    dm = ti.deploy(q)
    assert dm.execution["runtime"] == "torch-int8" and dm.execution["device"] == "cpu"
    assert dm.execution["engine"] == torch.backends.quantized.engine
    assert dm.twin_info["source"] == ti.TWIN_SOURCE
    with torch.no_grad():
        assert torch.equal(dm(x), ref)  # the decisions are the int8 kernels'
    xg = x[:8].clone().requires_grad_()
    out = dm(xg)
    assert torch.equal(out.detach(), ref[:8])
    F.cross_entropy(out, ref[:8].argmax(1).roll(1)).backward()
    assert torch.isfinite(xg.grad).all() and xg.grad.abs().sum() > 0


def test_int8_model_itself_has_no_input_gradient(small, points):
    xg = points[0][:2].clone().requires_grad_()
    with pytest.raises(RuntimeError):
        small(xg).sum().backward()


def test_eager_convert_traced_for_twin(points):
    import torch.ao.quantization as tq

    class Eager(nn.Module):
        def __init__(self):
            super().__init__()
            self.q, self.dq = tq.QuantStub(), tq.DeQuantStub()
            self.c = nn.Conv2d(3, 8, 3, padding=1)
            self.add = torch.ao.nn.quantized.FloatFunctional()
            self.pool, self.fc = nn.AdaptiveAvgPool2d(1), nn.Linear(8, 10)

        def forward(self, x):
            x = self.q(x)
            y = self.c(x)
            y = self.add.add_relu(y, y)
            return self.dq(self.fc(self.pool(y).flatten(1)))

    torch.manual_seed(2)
    m = Eager().eval()
    m.qconfig = tq.get_default_qconfig("x86")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        p = tq.prepare(m)
        p(points[1])
        q = tq.convert(p)
    twin = ti.derive_twin(q)
    with torch.no_grad():
        assert (q(points[0]).argmax(1) == twin(points[0]).argmax(1)).float().mean() >= 0.95


def test_unsupported_module_names_it_and_asks_for_a_twin():
    m = nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 10)).eval()
    dyn = torch.ao.quantization.quantize_dynamic(m, {nn.Linear}, dtype=torch.qint8)
    assert ti.is_torch_int8(dyn)
    with pytest.raises(QrobenchError, match=r"dynamic-quantized.*--twin"):
        ti.derive_twin(dyn)
    with pytest.raises(QrobenchError, match="no torch.ao int8"):
        ti.deploy(m)


# -- checkpoints ------------------------------------------------------------------------------

def test_state_round_trip(small, points, tmp_path):
    path = tmp_path / "int8.pt"
    digest = ti.save_state(small, path)
    assert digest == hashlib.sha256(path.read_bytes()).hexdigest()
    state = torch.load(path, map_location="cpu", weights_only=True)
    assert ti.is_torch_int8_state(state)
    assert not ti.is_torch_int8_state(SmallCNN().state_dict())
    other = _small(5, points[1] * 0.5)  # same structure, other codes and scales
    x = points[0][:16]
    with torch.no_grad():
        assert not torch.equal(other(x), small(x))
        ti.load_state(other, path)
        assert torch.equal(other(x), small(x))
    wider = _small(0, points[1], width=6)
    with pytest.raises(CheckpointError, match="mismatched"):
        ti.load_state(wider, path)
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="weights_only"):
        ti.load_state(other, bad)


# -- PT2E graphs ------------------------------------------------------------------------------

def _pt2e_like() -> torch.fx.GraphModule:
    """The shape of a convert_pt2e graph, built without torchao: int8 weight constants feeding
    quantized_decomposed dequantize nodes, activations quantized then dequantized."""
    import torch.ao.quantization.fx._decomposed  # noqa: F401  (registers quantized_decomposed)

    qd = torch.ops.quantized_decomposed
    g = torch.Generator().manual_seed(3)
    root = nn.Module()
    root.register_buffer("w0", torch.randint(-127, 128, (4, 3, 3, 3), generator=g,
                                             dtype=torch.int8))
    root.register_buffer("s0", torch.rand(4, generator=g) * 0.01 + 0.005)
    root.register_buffer("z0", torch.zeros(4, dtype=torch.long))
    root.register_buffer("w1", torch.randint(-127, 128, (10, 4), generator=g, dtype=torch.int8))
    root.b0, root.b1 = nn.Parameter(torch.zeros(4)), nn.Parameter(torch.zeros(10))
    root.leftover = nn.Parameter(torch.zeros(1000))  # not read by the graph

    graph = torch.fx.Graph()
    at = {k: graph.get_attr(k) for k in ("w0", "s0", "z0", "w1", "b0", "b1")}

    def qdq(v, scale):
        q = graph.call_function(qd.quantize_per_tensor.default,
                                (v, scale, 0, 0, 255, torch.uint8))
        return graph.call_function(qd.dequantize_per_tensor.default,
                                   (q, scale, 0, 0, 255, torch.uint8))

    x = qdq(graph.placeholder("x"), 1 / 255)
    w0 = graph.call_function(qd.dequantize_per_channel.default,
                             (at["w0"], at["s0"], at["z0"], 0, -128, 127, torch.int8))
    y = graph.call_function(torch.ops.aten.conv2d.default, (x, w0, at["b0"], [1, 1], [1, 1]))
    y = qdq(graph.call_function(torch.ops.aten.relu.default, (y,)), 0.02)
    y = graph.call_function(torch.ops.aten.mean.dim, (y, [2, 3]))
    w1 = graph.call_function(qd.dequantize_per_tensor.default,
                             (at["w1"], 0.01, 3, -128, 127, torch.int8))
    graph.output(graph.call_function(torch.ops.aten.linear.default, (y, w1, at["b1"])))
    return torch.fx.GraphModule(root, graph)


def test_pt2e_graph_reader_and_twin(points):
    gm = _pt2e_like()
    assert ti.is_pt2e(gm) and model_format(gm) == "pt2e"
    reader, layers = read_codes(gm)
    assert reader.format == "pt2e"
    conv, fc = layers
    assert (conv.kind, conv.axis, conv.bits) == ("conv", 0, 8)
    assert torch.equal(conv.codes, gm.w0.long()) and conv.scale.numel() == 4
    assert (fc.kind, fc.axis, int(fc.zero_point)) == ("linear", None, 3)
    ws = measure_weights(gm)
    assert ws.precision == "8bit" and ws.n_params == 108 + 40 + 4 + 10  # leftover not counted
    x = points[0][:8]
    xg = x.clone().requires_grad_()
    gm(xg).sum().backward()  # runs (the biases need grad), but rounding stops the input's
    assert xg.grad is None or not xg.grad.any()
    dm = ti.deploy(gm)
    with torch.no_grad():
        assert torch.equal(dm(x), gm(x))
        assert torch.allclose(dm.twin(x), gm(x), atol=1e-5)
    xg = x.clone().requires_grad_()
    dm(xg).sum().backward()
    assert torch.isfinite(xg.grad).all() and xg.grad.abs().sum() > 0


def test_pt2e_torchao_convert(points):
    pt2e = pytest.importorskip("torchao.quantization.pt2e.quantize_pt2e")
    xiq = pytest.importorskip("torchao.quantization.pt2e.quantizer.x86_inductor_quantizer")
    m = _seeded(TinyRes, 4)
    x, calib = points
    exported = torch.export.export(m, (calib[:2],),
                                   dynamic_shapes=({0: torch.export.Dim("batch")},)).module()
    quantizer = xiq.X86InductorQuantizer().set_global(
        xiq.get_default_x86_inductor_quantization_config())
    prepared = pt2e.prepare_pt2e(exported, quantizer)
    prepared(calib)
    q = pt2e.convert_pt2e(prepared)
    _, layers = read_codes(q)
    assert [c.name for c in layers] == ["stem", "a", "b", "fc"]
    assert all(c.bits == 8 and c.axis == 0 for c in layers)
    dm = ti.deploy(q)
    with torch.no_grad():
        assert (dm.twin(x).argmax(1) == q(x).argmax(1)).float().mean() >= 0.95
    xg = x[:4].clone().requires_grad_()
    dm(xg).sum().backward()
    assert torch.isfinite(xg.grad).all() and xg.grad.abs().sum() > 0
