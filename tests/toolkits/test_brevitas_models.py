"""Brevitas models are measured from the codes quant_weight() deploys, not from their float
latent weights, and their materialised copy computes the same logits."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn

pytest.importorskip("brevitas")
import brevitas.nn as qnn  # noqa: E402
from brevitas.core.scaling import ScalingImplType  # noqa: E402
from brevitas.quant import (  # noqa: E402
    Int8ActPerTensorFloat,
    Int32Bias,
    ShiftedUint8WeightPerTensorFloat,
    SignedBinaryWeightPerTensorConst,
    SignedTernaryWeightPerTensorConst,
)
from safetensors.torch import load_file, save_file  # noqa: E402

from qrobench.quant.measure import measure_weights  # noqa: E402
from qrobench.toolkits.brevitas_models import READER, is_brevitas, materialise, read  # noqa: E402
from qrobench.toolkits.deployed import Materialised  # noqa: E402


def _grid_weights(layer: nn.Module, seed: int, zero_frac: float = 0.3) -> torch.Tensor:
    """Integer codes k in [-7, 7] (some forced to 0, ±7 in every channel) written as k * 0.1,
    so a 4-bit narrow-range abs-max quantizer has scale 0.1 and codes exactly k."""
    g = torch.Generator().manual_seed(seed)
    k = torch.randint(-7, 8, layer.weight.shape, generator=g)
    k[torch.rand(k.shape, generator=g) < zero_frac] = 0
    flat = k.view(k.shape[0], -1)
    flat[:, 0], flat[:, 1] = 7, -7
    with torch.no_grad():
        layer.weight.copy_(k * 0.1)
    return k


def _net(per_channel: bool, final: str = "quant", learned: bool = False, seed: int = 0) -> nn.Sequential:
    """conv(3→4, bias) · QuantReLU · conv(4→4, no bias) · pool · linear(4→10, bias)."""
    torch.manual_seed(seed)
    kw = dict(weight_bit_width=4, weight_scaling_per_output_channel=per_channel)
    if learned:
        kw["weight_scaling_impl_type"] = ScalingImplType.PARAMETER_FROM_STATS
    head = qnn.QuantLinear(4, 10, bias=True, **kw) if final == "quant" else nn.Linear(4, 10)
    net = nn.Sequential(qnn.QuantConv2d(3, 4, 3, padding=1, **kw), qnn.QuantReLU(bit_width=4),
                        qnn.QuantConv2d(4, 4, 3, bias=False, **kw), nn.AdaptiveAvgPool2d(1), nn.Flatten(), head)
    for i, m in enumerate(q for q in net if hasattr(q, "quant_weight")):
        _grid_weights(m, seed + i)
    net.train()
    net(torch.rand(8, 3, 8, 8))  # the activation quantizer collects its scale
    return net.eval()


def _x(n: int = 6) -> torch.Tensor:
    return torch.rand(n, 3, 8, 8, generator=torch.Generator().manual_seed(1))


def _packed(codes: int, bits: int, scales: int) -> int:
    return math.ceil(codes * bits / 8) + 4 * scales


@pytest.mark.parametrize("per_channel", [False, True])
def test_all_4bit_net_is_measured_from_its_codes(per_channel):
    net = _net(per_channel)
    s = measure_weights(net)
    assert s.precision == "4bit" and s.bits == 4.0
    assert s.reader == READER and s.eligible.startswith("every Brevitas")
    assert s.layer_bits == {"0": 4, "2": 4, "5": 4}
    n_scales = (4, 4, 10) if per_channel else (1, 1, 1)
    relu_params = sum(p.numel() for p in net[1].parameters())  # its learned activation scale
    floats = 4 + 10 + relu_params  # conv and linear biases
    expected = (_packed(4 * 3 * 9, 4, n_scales[0]) + _packed(4 * 4 * 9, 4, n_scales[1])
                + _packed(10 * 4, 4, n_scales[2]) + 4 * floats)
    assert s.size_bytes == expected
    assert s.n_params == 4 * 3 * 9 + 4 * 4 * 9 + 40 + floats
    layers = read(net)
    assert [c.granularity() for c in layers] == (["per-channel (axis 0)"] * 3 if per_channel else ["per-tensor"] * 3)
    assert all(c.symmetric and c.bits == 4 and c.param_id == id(net[i].weight)
               for c, i in zip(layers, (0, 2, 5), strict=True))


def test_float_head_and_learned_scales_are_not_counted_twice():
    s = measure_weights(_net(True, final="float"))
    assert s.precision == "4bit" and s.layer_bits == {"0": 4, "2": 4}
    floats = 4 + 1 + 4 * 10 + 10  # conv bias, activation scale, float linear
    assert s.size_bytes == _packed(108, 4, 4) + _packed(144, 4, 4) + 4 * floats
    # a learned per-channel scale (a parameter of the weight quantizer) is the scale in the codes
    learned = _net(True, final="float", learned=True)
    assert any("scaling_impl.value" in n for n, _ in learned[0].named_parameters())
    assert measure_weights(learned).size_bytes == s.size_bytes


def test_layer_with_weight_quantization_disabled_stays_float():
    net = nn.Sequential(qnn.QuantConv2d(3, 4, 3, weight_bit_width=4), qnn.QuantConv2d(4, 4, 3, weight_quant=None),
                        nn.Flatten(), nn.Linear(4 * 4 * 4, 10)).eval()
    s = measure_weights(net)
    assert s.layer_bits == {"0": 4}
    floats = 4 + (4 * 4 * 9 + 4) + (64 * 10 + 10)
    assert s.size_bytes == _packed(108, 4, 1) + 4 * floats


def test_sparsity_counts_codes_at_the_zero_point():
    net = _net(True)
    k = [_grid_weights(m, 10 + i, zero_frac=0.5) for i, m in enumerate((net[0], net[2], net[5]))]
    zeros = sum(int((t == 0).sum()) for t in k)
    total = sum(t.numel() for t in k)
    s = measure_weights(net)
    assert zeros > 0 and s.sparsity == pytest.approx(zeros / total)
    # an unsigned layer: zero where the code equals its (non-zero) zero-point
    conv = qnn.QuantConv2d(2, 3, 3, weight_quant=ShiftedUint8WeightPerTensorFloat, weight_bit_width=4, bias=False)
    k = torch.randint(0, 16, conv.weight.shape, generator=torch.Generator().manual_seed(3))
    k.view(-1)[:2] = torch.tensor([0, 15])
    with torch.no_grad():
        conv.weight.copy_((k - 8) * 0.1)
    (c,) = read(conv)
    assert int(c.zero_point) == 8 and not c.symmetric and torch.equal(c.codes, k)
    s = measure_weights(conv)
    assert s.sparsity == pytest.approx(float((k == 8).float().mean()))
    assert s.size_bytes == _packed(54, 4, 1) + 1  # + one 4-bit zero-point, rounded up to a byte


@pytest.mark.parametrize("quant, token, bits", [
    (dict(weight_quant=SignedBinaryWeightPerTensorConst), "bnn", 1),
    (dict(weight_quant=SignedTernaryWeightPerTensorConst), "tnn", 2),
    (dict(weight_bit_width=2), "tnn", 2),  # narrow-range signed 2 bits: codes -1, 0, 1
])
def test_binary_and_ternary_tokens_follow_the_codes(quant, token, bits):
    net = nn.Sequential(qnn.QuantConv2d(3, 4, 3, **quant), nn.Flatten(), nn.Linear(64, 10)).eval()
    (c,) = read(net)
    assert c.bits == bits and c.precision_token() == token
    s = measure_weights(net)
    assert s.precision == token and s.bits == bits


def _close(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max())


@pytest.mark.parametrize("per_channel", [False, True])
def test_materialised_forward_matches_brevitas(per_channel):
    net = _net(per_channel)
    mat = materialise(net)
    assert isinstance(mat, Materialised) and mat.reference is net and is_brevitas(mat)
    assert mat.how == "2 QuantConv2d and 1 QuantLinear replaced by float layers holding quant_weight().value"
    assert type(mat.fast[0]) is nn.Conv2d and type(mat.fast[5]) is nn.Linear
    assert isinstance(mat.fast[1], qnn.QuantReLU)  # activation quantizers stay
    x = _x().requires_grad_(True)
    out = mat(x)
    with torch.no_grad():
        assert _close(out, net(x)) <= 1e-5
    (g,) = torch.autograd.grad(out.sum(), x)
    assert torch.isfinite(g).all() and g.abs().sum() > 0
    assert measure_weights(mat) == measure_weights(net)
    assert materialise(mat) is mat
    assert type(net[0]) is qnn.QuantConv2d  # the reference is untouched


def test_layers_quantizing_input_output_or_bias_keep_it():
    torch.manual_seed(0)
    net = nn.Sequential(
        qnn.QuantIdentity(return_quant_tensor=True),
        qnn.QuantConv2d(3, 4, 3, weight_bit_width=4, bias_quant=Int32Bias, return_quant_tensor=True),
        qnn.QuantReLU(), nn.Flatten(),
        qnn.QuantLinear(4 * 6 * 6, 10, weight_bit_width=4, input_quant=Int8ActPerTensorFloat,
                        output_quant=Int8ActPerTensorFloat))
    net.train()
    net(_x())
    net.eval()
    mat = materialise(net)
    assert "1 QuantConv2d and 1 QuantLinear kept" in mat.how
    assert type(mat.fast[1]) is qnn.QuantConv2d
    assert type(mat.fast[1].weight_quant.tensor_quant).__name__ == "_FrozenTensorQuant"
    with torch.no_grad():
        assert _close(mat(_x()), net(_x())) <= 1e-5
    assert measure_weights(mat) == measure_weights(net)


def test_not_brevitas():
    assert not is_brevitas(nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU()))
    assert is_brevitas(nn.Sequential(nn.Conv2d(3, 4, 3), qnn.QuantReLU()))
    assert measure_weights(nn.Sequential(nn.Conv2d(3, 4, 3), qnn.QuantReLU())).reader != READER


@pytest.mark.parametrize("learned", [False, True])
def test_safetensors_round_trip_reproduces_logits(tmp_path, learned):
    net = _net(True, learned=learned)
    with torch.no_grad():
        for p in net.parameters():  # move the learned scales away from their initial values
            p.mul_(1.1)
    path = tmp_path / "brevitas.safetensors"
    save_file({k: v.detach().contiguous() for k, v in net.state_dict().items()}, str(path))
    fresh = _net(True, learned=learned, seed=5)
    fresh.load_state_dict(load_file(str(path)), strict=True)
    fresh.eval()
    with torch.no_grad():
        assert _close(fresh(_x()), net(_x())) == 0.0
    assert measure_weights(fresh) == measure_weights(net)
