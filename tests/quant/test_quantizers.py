"""Property tests for the quantizers (docs/protocol.md §4), Brevitas style."""

import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from qrobench.models import create_model
from qrobench.quant import binary, fourbit, quantized_layers, set_quant_mode, ternary
from qrobench.quant.layers import QuantConv2d

weights = arrays(
    "float32", st.integers(8, 300),
    elements=st.floats(-2, 2, width=32, allow_nan=False, allow_infinity=False),
).filter(lambda a: (abs(a) > 1e-6).any()).map(torch.from_numpy)


@settings(max_examples=60, deadline=None)
@given(weights)
def test_binary_two_values_plus_minus_mean_abs(w):
    q = binary(w)
    vals = torch.unique(q.dequantize())
    a = w.abs().mean()
    assert len(vals) <= 2 and set(torch.unique(q.codes).tolist()) <= {-1, 1}
    assert torch.allclose(vals.abs(), a.expand_as(vals), rtol=1e-5)
    assert torch.equal(q.codes >= 0, w >= 0)


@settings(max_examples=60, deadline=None)
@given(weights)
def test_ternary_three_values_threshold_and_scale(w):
    for conv in ("ref", "twn"):
        q = ternary(w, conv)
        assert set(torch.unique(q.codes).tolist()) <= {-1, 0, 1}
        delta = 0.7 * w.abs().mean()
        kept = w.abs() >= delta
        assert torch.equal(q.codes != 0, kept)
        denom = w.numel() if conv == "ref" else kept.sum()
        assert torch.allclose(q.scale, (w.abs() * kept).sum() / denom, rtol=1e-5)
        assert len(torch.unique(q.dequantize())) <= 3


@settings(max_examples=60, deadline=None)
@given(weights)
def test_fourbit_fifteen_symmetric_levels_least_squares_scale(w):
    q = fourbit(w)
    codes = q.codes.to(torch.int64)
    assert codes.abs().max() <= 7 and len(torch.unique(codes)) <= 15
    delta = w.abs().max() / 15
    k = torch.clamp(torch.round(w.abs() / (2 * delta)), max=7)
    assert torch.equal(codes.abs(), k.to(torch.int64))
    assert torch.all((w.abs() <= delta * (1 - 1e-6)) <= (codes == 0))  # small weights become 0
    assert torch.allclose(q.scale, (w.abs() * k).sum() / (k * k).sum(), rtol=1e-5)
    # symmetric: quantizing -w gives exactly the negated codes
    assert torch.equal(fourbit(-w).codes, -q.codes)


@settings(max_examples=30, deadline=None)
@given(weights)
def test_least_squares_scale_minimises_error_over_scales(w):
    q = fourbit(w)
    err = ((q.dequantize() - w) ** 2).sum()
    for f in (0.9, 1.1):
        assert err <= ((q.codes.float() * q.scale * f - w) ** 2).sum() + 1e-6


def test_deployed_layer_does_not_requantize(monkeypatch):
    conv = QuantConv2d(4, 4, 3, padding=1, bias=False, precision="tnn")
    conv.deploy()
    calls = []
    monkeypatch.setattr(QuantConv2d, "quantize", lambda self: calls.append(1))
    conv(torch.rand(2, 4, 8, 8))
    assert calls == []
    assert len(torch.unique(conv.weight)) <= 3


def test_relax_and_hard_modes_apply_the_binaryrelax_formula():
    torch.manual_seed(0)
    conv = QuantConv2d(3, 4, 3, bias=False, precision="bnn")
    w = conv.weight.detach().clone()
    q = binary(w).dequantize()
    conv.mode, conv.relax_lambda = "relax", 3.0
    assert torch.allclose(conv.effective_weight(), (3.0 * q + w) / 4.0, atol=1e-6)
    conv.mode = "hard"
    assert torch.allclose(conv.effective_weight(), q)
    # straight-through: the gradient reaches the float master weights unchanged
    conv.effective_weight().sum().backward()
    assert torch.equal(conv.weight.grad, torch.ones_like(w))


def test_deploying_a_model_quantizes_every_eligible_layer():
    for prec, levels in (("bnn", 2), ("tnn", 3), ("4bit", 15)):
        m = create_model("preact_resnet20", precision=prec)
        set_quant_mode(m, "deployed")
        for _, layer in quantized_layers(m):
            assert len(torch.unique(layer.weight)) <= levels
        assert len(torch.unique(m.layer2[0].shortcut.weight)) > 15  # shortcut stays float
