"""Bit errors in a toolkit model's stored codes (torch.ao int8, ONNX Runtime QDQ, Brevitas): the
writer puts the errored codes where the deployed runtime reads them, the runtime computes with
them, and restoring gives back the original logits bit for bit. The models are built here."""

from __future__ import annotations

import math
import warnings
from collections import OrderedDict

import pytest
import torch
import torch.nn as nn

from qrobench.data.cifar10 import EvalData
from qrobench.errors import QrobenchError
from qrobench.threats.bit_errors import evaluate_bit_errors, rate_name, restore, with_errors
from qrobench.threats.codes_io import (
    SIGN_MAGNITUDE,
    TWOS_COMPLEMENT,
    UNSIGNED,
    decode,
    encode,
    stored_layers,
)
from qrobench.toolkits.formats import read_codes
from qrobench.toolkits.writers import writable

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning",
                                        "ignore::FutureWarning")
P = 0.05  # high enough that a tiny model's few thousand bits give a tight band


def _x(n: int = 32) -> torch.Tensor:
    return torch.rand(n, 3, 8, 8, generator=torch.Generator().manual_seed(1))


def _float_cnn() -> nn.Module:
    """conv(3→8) · ReLU · conv(8→8, stride 2) · ReLU · linear(128→10), on 8 × 8 inputs."""
    torch.manual_seed(0)
    return nn.Sequential(OrderedDict(c1=nn.Conv2d(3, 8, 3, padding=1), r1=nn.ReLU(),
                                     c2=nn.Conv2d(8, 8, 3, stride=2, padding=1), r2=nn.ReLU(),
                                     flat=nn.Flatten(), fc=nn.Linear(8 * 4 * 4, 10))).eval()


@pytest.fixture(scope="module")
def torch_ao():
    """x86 FX int8: per-channel symmetric convs, the linear per-tensor affine (a zero-point)."""
    from torch.ao.quantization import (
        HistogramObserver,
        MinMaxObserver,
        QConfig,
        get_default_qconfig_mapping,
    )
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

    from qrobench.toolkits.torch_int8 import deploy

    affine = QConfig(activation=HistogramObserver.with_args(reduce_range=True),
                     weight=MinMaxObserver.with_args(dtype=torch.qint8, qscheme=torch.per_tensor_affine))
    model = _float_cnn()
    with torch.no_grad():
        model.fc.weight.uniform_(-0.05, 0.15)  # asymmetric, so its zero-point is not 0
    mapping = get_default_qconfig_mapping("x86").set_module_name("fc", affine)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prepared = prepare_fx(model, mapping, (_x(2),))
        with torch.no_grad():
            prepared(_x(64))
        return deploy(convert_fx(prepared), example_input=_x(1))


@pytest.fixture(scope="module")
def onnx_model(tmp_path_factory):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx2torch")
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    from qrobench.toolkits.onnx_models import load_onnx

    class Calibration(CalibrationDataReader):
        def __init__(self):
            self.batches = iter([{"x": b.numpy()} for b in _x(16).split(4)])

        def get_next(self):
            return next(self.batches, None)

    d = tmp_path_factory.mktemp("onnx")
    torch.onnx.export(_float_cnn(), (_x(2),), str(d / "float.onnx"), dynamo=False, input_names=["x"],
                      output_names=["logits"], opset_version=17,
                      dynamic_axes={"x": {0: "n"}, "logits": {0: "n"}})
    quantize_static(str(d / "float.onnx"), str(d / "qdq.onnx"), Calibration(), quant_format=QuantFormat.QDQ,
                    per_channel=True, weight_type=QuantType.QInt8, activation_type=QuantType.QUInt8,
                    reduce_range=True)  # exact int8 kernels on CPUs with or without VNNI
    return load_onnx(d / "qdq.onnx")


def _brevitas_net(**quant) -> nn.Module:
    qnn = pytest.importorskip("brevitas.nn")
    torch.manual_seed(0)
    kw = dict(weight_bit_width=4, weight_scaling_per_output_channel=True, **quant)
    return nn.Sequential(qnn.QuantConv2d(3, 8, 3, padding=1, **kw), nn.ReLU(),
                         qnn.QuantConv2d(8, 8, 3, stride=2, padding=1, **kw), nn.ReLU(),
                         nn.Flatten(), qnn.QuantLinear(8 * 4 * 4, 10, bias=True, **kw)).eval()


@pytest.fixture(scope="module")
def brevitas():
    return writable(_brevitas_net())


@pytest.fixture(scope="module")
def brevitas_unsigned():
    from brevitas.quant import ShiftedUint8WeightPerTensorFloat

    return writable(_brevitas_net(weight_quant=ShiftedUint8WeightPerTensorFloat))


def _read_back(model, layers) -> list[torch.Tensor]:
    """The codes the deployed model now holds: the toolkit's reader for torch.ao and ONNX; for a
    materialised Brevitas model, the copy's weights divided by the layer's scale (its reader
    reads the untouched Brevitas reference)."""
    found = read_codes(model)
    if found[0].format != "brevitas":
        return [c.codes for c in found[1]]
    out = []
    for c, layer in zip(found[1], layers, strict=True):
        step = c._along_axis(c.scale).float()
        out.append(torch.round(layer.module.weight.detach() / step).to(torch.int64) + c._along_axis(c.zero_point))
    return out


MODELS = ["torch_ao", "onnx_model", "brevitas", "brevitas_unsigned"]


@pytest.mark.parametrize("which", MODELS)
def test_errors_reach_the_deployed_model_and_restore_exactly(which, request):
    model = request.getfixturevalue(which)
    x = _x()
    layers, stored = stored_layers(model, toolkits=True)
    assert stored.startswith("deployed ") and f"{len(layers)} layers" in stored
    originals = [layer.words.clone() for layer in layers]
    assert all(torch.equal(a, b) for a, b in zip(_read_back(model, layers), originals, strict=True))
    with torch.no_grad():
        clean = model(x)
        assert with_errors(layers, 0.0, torch.Generator().manual_seed(0)) == 0
        assert torch.equal(model(x), clean)  # p = 0 changes nothing
        bits = sum(layer.words.numel() * layer.bits for layer in layers)
        flips = with_errors(layers, P, torch.Generator().manual_seed(3))
        sd = math.sqrt(bits * P * (1 - P))
        assert abs(flips - bits * P) < 5 * sd, (flips, bits * P, sd)
        written = _read_back(model, layers)
        errored = model(x)
        restore(layers)
        restored = model(x)
    # the runtime holds the words as written: flipped codes, in the stored format's range
    changed = sum(int((w != o).sum()) for w, o in zip(written, originals, strict=True))
    assert changed > 0.5 * flips / max(layer.bits for layer in layers)
    for w, layer in zip(written, layers, strict=True):
        words = encode(w, layer.bits, layer.format)
        assert torch.equal(decode(words, layer.bits, layer.format), w)
        assert 0 <= int(words.min()) and int(words.max()) < 2 ** layer.bits
    assert not torch.equal(errored, clean)
    assert torch.equal(restored, clean)
    assert all(torch.equal(a, b) for a, b in zip(_read_back(model, layers), originals, strict=True))


def test_the_words_are_each_toolkits_own_format(torch_ao, onnx_model, brevitas, brevitas_unsigned):
    ao, stored = stored_layers(torch_ao, toolkits=True)
    assert {layer.format for layer in ao} == {TWOS_COMPLEMENT} and {layer.bits for layer in ao} == {8}
    assert "torch.ao" in stored and "per-channel and per-tensor" in stored and "stored zero-points" in stored
    _, stored = stored_layers(onnx_model, toolkits=True)
    assert "ONNX Runtime" in stored and "zero-point 0" in stored
    br, stored = stored_layers(brevitas, toolkits=True)
    assert {layer.bits for layer in br} == {4} and "narrow range −7..7 (an error can give −8)" in stored
    assert all(int(layer.words.abs().max()) <= 7 for layer in br)
    un, stored = stored_layers(brevitas_unsigned, toolkits=True)
    assert {layer.format for layer in un} == {UNSIGNED} and {layer.bits for layer in un} == {4}
    assert "stored zero-points" in stored and "unsigned" in stored


def test_a_flipped_sign_bit_gives_the_runtime_the_new_code(torch_ao, onnx_model):
    """One word hit at its top bit: the deployed weight moves by ±2^7 codes, as two's complement says."""
    for model in (torch_ao, onnx_model):
        layers, _ = stored_layers(model, toolkits=True)
        first = layers[0]
        words = encode(first.words, 8, TWOS_COMPLEMENT)
        bad = words.clone().view(-1)
        bad[0] ^= 1 << 7
        first.write(decode(bad.view_as(words), 8, TWOS_COMPLEMENT))
        got = read_codes(model)[1][0].codes.view(-1)
        assert int(got[0]) == int(decode(bad[:1], 8, TWOS_COMPLEMENT)[0])
        assert abs(int(got[0]) - int(first.words.view(-1)[0])) == 128
        restore(layers)


def test_raw_brevitas_is_materialised_and_left_untouched():
    net = _brevitas_net()
    before = [p.detach().clone() for p in net.parameters()]
    data = EvalData(_x(16), torch.arange(16) % 10, "synthetic")
    r = evaluate_bit_errors(net, data, rates=(P,), patterns=2, batch_size=16)
    assert r.attacks[rate_name(P)]["stored"].startswith("deployed 4-bit codes (Brevitas")
    assert r.attacks[rate_name(P)]["mean_flipped_bits"] > 0
    assert all(torch.equal(a, b) for a, b in zip(before, net.parameters(), strict=True))
    with pytest.raises(QrobenchError, match="materialised copy"):
        stored_layers(net, toolkits=True)


def test_the_record_of_a_deployed_model(onnx_model):
    data = EvalData(_x(16), torch.arange(16) % 10, "synthetic")
    with torch.no_grad():
        clean = onnx_model(data.x)
    r = evaluate_bit_errors(onnx_model, data, rates=(1e-3, P), patterns=3, batch_size=8)
    assert len(r.per_seed) == 3 and set(r.attacks) == {rate_name(1e-3), rate_name(P)}
    settings = r.attacks[rate_name(P)]
    assert settings["stored"] == r.weights["stored"] and "ONNX Runtime" in settings["stored"]
    assert abs(settings["mean_flipped_bits"] - settings["bits_stored"] * P) < 5 * math.sqrt(settings["bits_stored"] * P)
    with torch.no_grad():
        assert torch.equal(onnx_model(data.x), clean)  # restored afterwards


def test_binary_brevitas_codes_are_a_sign_bit():
    from brevitas.quant import SignedBinaryWeightPerTensorConst

    layers, _ = stored_layers(writable(_brevitas_net(weight_quant=SignedBinaryWeightPerTensorConst)), toolkits=True)
    assert {(layer.bits, layer.format) for layer in layers} == {(1, SIGN_MAGNITUDE)}


def test_the_bit_flip_search_refuses_toolkit_models(torch_ao):
    with pytest.raises(QrobenchError, match="bit-errors only"):
        stored_layers(torch_ao)
