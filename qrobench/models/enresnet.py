"""EnResNet: k noisy PreAct ResNets whose logits are averaged (Wang et al., NeurIPS 2019).

Only the registered names live here (their defaults are the paper's noise and ensemble
size); the network itself is resnet.py's ``EnsembleResNet``, which ``preact_resnet`` with
``ensemble=k`` also builds.
"""

from __future__ import annotations

import torch.nn as nn

from .config import ArchConfig
from .registry import register_model
from .resnet import EnsembleResNet

__all__ = ["EnsembleResNet", "enresnet20", "enresnet56"]


@register_model("enresnet20", config=ArchConfig, depth=20, ensemble=2, noise_coef=0.1)
def enresnet20(cfg: ArchConfig) -> nn.Module:
    return EnsembleResNet(cfg)


@register_model("enresnet56", config=ArchConfig, depth=56, ensemble=1, noise_coef=0.1)
def enresnet56(cfg: ArchConfig) -> nn.Module:
    return EnsembleResNet(cfg)
