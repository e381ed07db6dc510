"""EnResNet: k noisy PreAct ResNets whose logits are averaged (Wang et al., NeurIPS 2019)."""

from __future__ import annotations

import dataclasses

import torch
import torch.nn as nn

from .registry import ArchConfig, register_model
from .resnet import PreActResNet


class EnsembleResNet(nn.Module):
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


@register_model("enresnet20", depth=20, ensemble=2, noise_coef=0.1)
def enresnet20(cfg: ArchConfig) -> nn.Module:
    return EnsembleResNet(cfg)


@register_model("enresnet56", depth=56, ensemble=1, noise_coef=0.1)
def enresnet56(cfg: ArchConfig) -> nn.Module:
    return EnsembleResNet(cfg)
