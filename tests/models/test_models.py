import pytest
import torch

from qrobench.errors import QrobenchError, UnknownNameError
from qrobench.models import create_model, is_stochastic, list_models, noise_seed
from qrobench.quant import quant_stats, quantized_layers


def test_resnet20_parameter_count():
    m = create_model("preact_resnet20")
    assert sum(p.numel() for p in m.parameters()) == 272_282


def test_enresnet20_is_two_resnet20s():
    m = create_model("enresnet20")
    assert len(m.members) == 2
    assert sum(p.numel() for p in m.parameters()) == 2 * 272_282
    assert is_stochastic(m) and not is_stochastic(create_model("preact_resnet20"))


def test_channel_slices_per_member():
    assert quant_stats(create_model("preact_resnet20")).total_channels == 627
    assert quant_stats(create_model("enresnet20")).total_channels == 2 * 627
    assert quant_stats(create_model("preact_resnet56")).total_channels == 1971
    assert quant_stats(create_model("preact_resnet", depth=110)).total_channels == 3987


def test_quantized_layers_are_stem_and_3x3_convs_only():
    m = create_model("preact_resnet20", precision="tnn")
    names = [n for n, _ in quantized_layers(m)]
    assert names[0] == "conv1" and len(names) == 1 + 9 * 2
    assert all(layer.kernel_size == (3, 3) for _, layer in quantized_layers(m))
    # shortcuts and the classifier stay plain float modules
    assert type(m.layer2[0].shortcut) is torch.nn.Conv2d
    assert type(m.fc) is torch.nn.Linear


def test_noise_is_on_in_eval_and_reproducible_with_a_seed():
    torch.manual_seed(0)
    m = create_model("enresnet20").eval()
    x = torch.rand(4, 3, 32, 32)
    with torch.no_grad():
        with noise_seed(m, 123):
            a = m(x)
        with noise_seed(m, 123):
            b = m(x)
        with noise_seed(m, 124):
            c = m(x)
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)


def test_noise_scale_follows_the_batch_std():
    from qrobench.models.noise import FeynmanKacNoise

    layer = FeynmanKacNoise(0.1)
    x = torch.randn(64, 16, 8, 8) * 3.0
    d = layer(x) - x
    assert abs(float(d.std()) - 0.1 * float(x.std())) < 0.01 * float(x.std())


def test_ensemble_averages_member_logits():
    torch.manual_seed(0)
    m = create_model("enresnet20", noise_coef=0.0).eval()
    x = torch.rand(3, 3, 32, 32)
    with torch.no_grad():
        expected = (m.members[0](x) + m.members[1](x)) / 2
        assert torch.allclose(m(x), expected, atol=1e-6)


def test_registry_errors_list_valid_names():
    with pytest.raises(UnknownNameError, match="preact_resnet20"):
        create_model("resnet-nope")
    with pytest.raises(QrobenchError, match="6n\\+2"):
        create_model("preact_resnet", depth=21)
    assert {"preact_resnet20", "enresnet20"} <= set(list_models())


def test_mixed_precision_needs_every_layer():
    names = [n for n, _ in quantized_layers(create_model("preact_resnet20"))]
    bits = {n: (2 if i % 2 else 4) for i, n in enumerate(names)}
    m = create_model("preact_resnet20", precision="mixed", layer_bits=bits)
    assert {layer.precision for _, layer in quantized_layers(m)} == {"2bit", "4bit"}
    bits.pop(names[-1])
    with pytest.raises(QrobenchError, match="no bit-width"):
        create_model("preact_resnet20", precision="mixed", layer_bits=bits)
