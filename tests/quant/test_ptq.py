"""Post-training quantization for sweeps: uniform and LGMP at a bit budget, deployed."""

import pytest
import torch

from qrobench.errors import QrobenchError
from qrobench.models import create_model
from qrobench.quant.layers import quantized_layers
from qrobench.quant.measure import measure_weights
from qrobench.quant.ptq import quantize_post_training


@pytest.fixture(scope="module")
def float_net():
    torch.manual_seed(0)
    return create_model("preact_resnet", depth=8).eval()


@pytest.mark.parametrize("bits", [1, 2, 3, 5, 8])
def test_uniform_puts_every_layer_at_the_bits_and_deploys_codes(float_net, bits):
    q, spec = quantize_post_training(float_net, "uniform", bits)
    assert spec["avg_bits"] == bits and set(spec["layer_bits"].values()) == {bits}
    for _, m in quantized_layers(q):
        assert m.mode == "deployed"
        assert len(torch.unique(m.weight)) <= (2 if bits == 1 else 2**bits - 1)
    assert measure_weights(q).bits == bits
    # the source keeps its float weights
    w0 = dict(quantized_layers(float_net))["conv1"].weight
    assert len(torch.unique(w0)) > 2**8


@pytest.mark.parametrize("budget", [2, 3, 4, 6])
def test_lgmp_stays_within_the_budget_and_beats_uniform_on_its_own_bound(float_net, budget):
    q, spec = quantize_post_training(float_net, "lgmp", budget)
    assert budget - 1 < spec["avg_bits"] <= budget + 1e-9
    assert abs(measure_weights(q).bits - spec["avg_bits"]) < 1e-9
    assert set(spec["layer_bits"].values()) <= {1, 2, 3, 4, 5, 6, 8}


def test_one_bit_lgmp_is_uniform_binary(float_net):
    _, u = quantize_post_training(float_net, "uniform", 1)
    _, g = quantize_post_training(float_net, "lgmp", 1)
    assert u["layer_bits"] == g["layer_bits"]


def test_bad_sweep_points_are_refused(float_net):
    with pytest.raises(QrobenchError, match="supports 1..8"):
        quantize_post_training(float_net, "uniform", 9)
    with pytest.raises(QrobenchError, match="choose from uniform, lgmp"):
        quantize_post_training(float_net, "kmeans", 4)
    q, _ = quantize_post_training(float_net, "uniform", 4)
    with pytest.raises(QrobenchError, match="already quantized"):
        quantize_post_training(q, "uniform", 2)
