"""Pre-activation ResNet-(6n+2) for CIFAR (docs/protocol.md §3), alone or as an ensemble.

The ensemble lives here, not in enresnet.py, because ``preact_resnet`` with ``ensemble=k``
builds one: keeping both classes in this module lets enresnet.py depend on it one way only.
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import QrobenchError
from ..protocol import precision_for_bits
from ..quant.layers import QuantConv2d
from .config import ArchConfig
from .noise import FeynmanKacNoise
from .registry import register_model


class PreActBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, conv, noise_coef: float):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv1 = conv("conv1", cin, cout, stride)
        self.bn2 = nn.BatchNorm2d(cout)
        self.conv2 = conv("conv2", cout, cout, 1)
        self.shortcut = None
        if stride != 1 or cin != cout:
            self.shortcut = nn.Conv2d(cin, cout, 1, stride=stride, bias=False)
        self.noise = FeynmanKacNoise(noise_coef)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(x))
        sc = self.shortcut(out) if self.shortcut is not None else x
        out = self.conv1(out)
        out = self.conv2(F.relu(self.bn2(out)))
        return self.noise(out + sc)


class PreActResNet(nn.Module):
    def __init__(self, cfg: ArchConfig, prefix: str = ""):
        super().__init__()
        if (cfg.depth - 2) % 6 != 0 or cfg.depth < 8:
            raise QrobenchError(f"PreAct ResNet depth must be 6n+2 (20, 32, 56, 110), got {cfg.depth}")
        n = (cfg.depth - 2) // 6

        def conv(name, cin, cout, stride):
            precision = cfg.precision
            if precision == "mixed":
                key = f"{prefix}{name}"
                if key not in cfg.layer_bits:
                    raise QrobenchError(f"mixed precision: no bit-width for layer {key!r} in layer_bits")
                b = int(cfg.layer_bits[key])
                precision = precision_for_bits(b)
            return QuantConv2d(cin, cout, 3, stride=stride, padding=1, bias=False,
                               precision=precision, ternary_convention=cfg.ternary_convention)

        self.conv1 = conv("conv1", 3, 16, 1)
        layers, cin = [], 16
        for s, width in enumerate((16, 32, 64)):
            blocks = []
            for i in range(n):
                stride = 2 if (s > 0 and i == 0) else 1
                bp = f"layer{s + 1}.{i}."
                blocks.append(PreActBlock(
                    cin, width, stride,
                    lambda nm, a, b, st, bp=bp: conv(bp + nm, a, b, st), cfg.noise_coef))
                cin = width
            layers.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3 = layers
        self.bn = nn.BatchNorm2d(64)
        self.fc = nn.Linear(64, cfg.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(x)
        out = self.layer3(self.layer2(self.layer1(out)))
        out = F.relu(self.bn(out))
        out = F.adaptive_avg_pool2d(out, 1).flatten(1)
        return self.fc(out)


class EnsembleResNet(nn.Module):
    """k PreAct ResNets whose logits are averaged (EnResNet, Wang et al., NeurIPS 2019)."""

    def __init__(self, cfg: ArchConfig):
        super().__init__()
        member_cfg = dataclasses.replace(cfg, ensemble=1)
        self.members = nn.ModuleList(
            PreActResNet(member_cfg, prefix=f"members.{i}.") for i in range(cfg.ensemble)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.members[0](x)
        for m in self.members[1:]:
            out = out + m(x)
        return out / len(self.members)


@register_model("preact_resnet", config=ArchConfig, depth=20)
def preact_resnet(cfg: ArchConfig) -> nn.Module:
    return EnsembleResNet(cfg) if cfg.ensemble != 1 else PreActResNet(cfg)


@register_model("preact_resnet20", config=ArchConfig, depth=20)
def preact_resnet20(cfg: ArchConfig) -> nn.Module:
    return preact_resnet(cfg)


@register_model("preact_resnet56", config=ArchConfig, depth=56)
def preact_resnet56(cfg: ArchConfig) -> nn.Module:
    return preact_resnet(cfg)
