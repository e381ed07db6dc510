"""Architectures take their own keyword arguments (timm's ``create_model(name, **kwargs)``)."""

from dataclasses import dataclass

import pytest
import torch
import torch.nn as nn

from qrobench.errors import QrobenchError
from qrobench.models import ArchConfig, create_model, model_arguments, register_model


@dataclass
class _TinyConfig:
    width: int = 4
    num_classes: int = 10


@register_model("_test_tiny", config=_TinyConfig, width=3)
def _tiny(cfg: _TinyConfig) -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, cfg.width, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(cfg.width, cfg.num_classes))


def test_a_new_architecture_takes_its_own_config():
    m = create_model("_test_tiny")
    assert m.arch_name == "_test_tiny" and m.arch_config == _TinyConfig(width=3)  # registration default
    m = create_model("_test_tiny", width=5, num_classes=7)
    assert m[0].out_channels == 5 and m(torch.rand(2, 3, 8, 8)).shape == (2, 7)
    assert model_arguments("_test_tiny") == {"width": 3, "num_classes": 10}
    with pytest.raises(QrobenchError) as e:
        create_model("_test_tiny", depth=20)  # a ResNet keyword means nothing here
    assert "['depth']" in str(e.value) and "'_test_tiny'" in str(e.value)
    assert str(e.value).endswith("valid: num_classes, width")


def test_unknown_keyword_names_the_architecture_and_the_valid_ones():
    with pytest.raises(QrobenchError) as e:
        create_model("preact_resnet20", widht=2)
    msg = str(e.value)
    assert "['widht']" in msg and "'preact_resnet20'" in msg
    for valid in ("depth", "ensemble", "noise_coef", "precision", "layer_bits"):
        assert valid in msg


def test_registration_defaults_are_checked_at_registration():
    with pytest.raises(QrobenchError, match="widht"):
        register_model("_test_bad_default", config=_TinyConfig, widht=3)(_tiny)
    with pytest.raises(TypeError, match="dataclass"):
        register_model("_test_bad_config", config=dict)


def test_builtin_names_differ_only_by_their_defaults():
    assert model_arguments("preact_resnet56")["depth"] == 56
    en = model_arguments("enresnet20")
    assert (en["ensemble"], en["noise_coef"]) == (2, 0.1)
    cfg = create_model("enresnet20", ensemble=3, precision="tnn").arch_config
    assert isinstance(cfg, ArchConfig) and (cfg.ensemble, cfg.precision, cfg.noise_coef) == (3, "tnn", 0.1)


def test_ensemble_state_dict_keys_are_unchanged():
    """Zoo checkpoints are keyed by these names; moving the ensemble class must not rename them."""
    keys = set(create_model("preact_resnet", depth=8, ensemble=2).state_dict())
    assert "members.1.layer1.0.conv2.weight" in keys and "members.0.conv1.weight" in keys
    assert set(create_model("enresnet20").state_dict()) == set(create_model("preact_resnet20", ensemble=2).state_dict())
