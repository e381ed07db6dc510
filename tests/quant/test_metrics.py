import torch

from qrobench.models import create_model
from qrobench.quant import quant_stats, quantized_layers, set_quant_mode


def test_sparsity_and_channel_sparsity_count_zero_weights_and_slices():
    m = create_model("preact_resnet20")
    with torch.no_grad():
        layers = [layer for _, layer in quantized_layers(m)]
        layers[1].weight[:, :5] = 0  # 5 zero input-channel slices
        layers[2].weight[0, 0, 0, 0] = 0  # one zero weight, no zero slice
    s = quant_stats(m)
    total = sum(layer.weight.numel() for layer in layers)
    assert s.zero_channels == 5 and s.total_channels == 627
    assert abs(s.channel_sparsity - 5 / 627) < 1e-12
    assert abs(s.sparsity - (5 * 16 * 9 + 1) / total) < 1e-12


def test_size_counts_bits_of_quantized_layers_and_fp32_for_the_rest():
    fp = quant_stats(create_model("preact_resnet20"))
    bnn_model = create_model("preact_resnet20", precision="bnn")
    set_quant_mode(bnn_model, "deployed")
    bnn = quant_stats(bnn_model)
    qn = sum(layer.weight.numel() for _, layer in quantized_layers(bnn_model))
    n_q = len(list(quantized_layers(bnn_model)))
    assert fp.size_bytes == fp.fp32_bytes and fp.compression == 1.0
    assert bnn.fp32_bytes == fp.fp32_bytes
    assert fp.size_bytes - bnn.size_bytes == 4 * qn - (qn // 8 + 4 * n_q)
    tnn = create_model("preact_resnet20", precision="tnn")
    four = create_model("preact_resnet20", precision="4bit")
    assert bnn.size_bytes < quant_stats(tnn).size_bytes < quant_stats(four).size_bytes < fp.size_bytes


def test_ternary_deployment_is_sparse():
    torch.manual_seed(0)
    m = create_model("preact_resnet20", precision="tnn")
    set_quant_mode(m, "deployed")
    s = quant_stats(m)
    # Gaussian-like init: about erf(0.7*sqrt(pi/2)/sqrt(2)) ~ 42 % of weights fall below 0.7*mean|w|
    assert 0.3 < s.sparsity < 0.55
