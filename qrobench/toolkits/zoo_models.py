"""The zoo's toolkit entries as architectures: a qrobench PreAct ResNet rebuilt with a
toolkit's layers, named on the cards as ``factory:qrobench.toolkits.zoo_models:<fn>``.

Only the quantization-eligible convs of qrobench's own recipes (stem and 3x3 block convs)
become the toolkit's layers, so a toolkit entry and the qrobench model of the same precision
quantize the same weights.
"""

from __future__ import annotations

import warnings

import torch
import torch.nn as nn

from ..errors import QrobenchError
from ..models.registry import create_model
from ..quant.layers import QuantConv2d


def _swap_convs(model: nn.Module, make) -> nn.Module:
    for m in list(model.modules()):
        for child_name, child in list(m.named_children()):
            if isinstance(child, QuantConv2d):
                setattr(m, child_name, make(child))
    return model


def _plain_conv(c: QuantConv2d) -> nn.Conv2d:
    out = nn.Conv2d(c.in_channels, c.out_channels, c.kernel_size, stride=c.stride, padding=c.padding,
                    dilation=c.dilation, groups=c.groups, bias=c.bias is not None)
    out.weight.data.copy_(c.weight.data)
    if c.bias is not None:
        out.bias.data.copy_(c.bias.data)
    return out


def float_twin(architecture: str = "preact_resnet20", **arch_args) -> nn.Module:
    """The float architecture with plain ``nn.Conv2d`` layers (what toolkits recognise)."""
    return _swap_convs(create_model(architecture, **arch_args), _plain_conv)


def preact_resnet_int8(architecture: str = "preact_resnet20", calibration: torch.Tensor | None = None,
                       float_state: dict | None = None, **arch_args) -> nn.Module:
    """torch.ao FX post-training int8 (x86 qconfig: per-channel int8 weights, uint8 activations).
    Without ``calibration`` it is the converted structure, filled by a stored state dict."""
    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

    model = float_twin(architecture, **arch_args)
    if float_state is not None:
        model.load_state_dict(float_state)
    model.eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # observers without data warn; the state dict fills them
        prepared = prepare_fx(model, get_default_qconfig_mapping("x86"), (torch.rand(1, 3, 32, 32),))
        if calibration is not None:
            with torch.no_grad():
                for i in range(0, len(calibration), 250):
                    prepared(calibration[i:i + 250])
        return convert_fx(prepared)


def preact_resnet_brevitas(architecture: str = "preact_resnet20", weight_bits: int = 4, **arch_args) -> nn.Module:
    """Brevitas QAT: per-output-channel ``weight_bits`` weights (max-abs statistics scale) on the
    stem and 3x3 convs, float activations as in qrobench's weight-only recipes."""
    try:
        from brevitas.nn import QuantConv2d as BrevitasConv2d
    except ImportError as e:
        raise QrobenchError(f"this model is a Brevitas network and Brevitas is not installed ({e}); "
                            "pip install 'qrobench[brevitas]'") from e

    def make(c: QuantConv2d):
        out = BrevitasConv2d(c.in_channels, c.out_channels, c.kernel_size, stride=c.stride, padding=c.padding,
                             bias=c.bias is not None, weight_bit_width=weight_bits,
                             weight_scaling_per_output_channel=True)
        out.weight.data.copy_(c.weight.data)
        return out

    return _swap_convs(create_model(architecture, **arch_args), make)
