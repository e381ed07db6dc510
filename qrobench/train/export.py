"""Export a trained model to the zoo: deployed safetensors plus a model card with its sha256."""

from __future__ import annotations

from pathlib import Path

import torch.nn as nn

from ..quant.layers import set_quant_mode
from ..zoo.card import ModelCard
from ..zoo.checkpoint import save_deployed

QUANTIZER_DESC = {
    "fp": "none (float32 weights)",
    "4bit": "4-bit sign-magnitude, 15 levels {-7..7}*s, delta=max|w|/15, least-squares scale; "
            "stem + 3x3 convs, shortcuts/FC/BN in fp32",
    "tnn": "ternary, threshold 0.7*mean|w|, scale = kept |w| sum / TOTAL count (ref-code convention); "
           "stem + 3x3 convs, shortcuts/FC/BN in fp32",
    "bnn": "binary a*sign(w), a = mean|w|; stem + 3x3 convs, shortcuts/FC/BN in fp32",
    "mixed": "per-layer bit-widths (layer_bits), sign-magnitude b-bit quantizer; shortcuts/FC/BN in fp32",
}
REFERENCE = ("Li, Wang, Xin, An Integrated Approach to Produce Robust Deep Neural Network Models "
             "with High Efficiency, arXiv:2008.13305; Wang et al., EnResNet, NeurIPS 2019")


def export_to_zoo(model: nn.Module, name: str, architecture: str, arch_args: dict, precision: str,
                  recipe_summary: str, training: dict, zoo_dir: str | Path) -> ModelCard:
    zoo_dir = Path(zoo_dir)
    zoo_dir.mkdir(parents=True, exist_ok=True)
    set_quant_mode(model, "deployed")
    model = model.cpu().eval()
    file = f"{name}.safetensors"
    sha = save_deployed(model, zoo_dir / file, metadata={"name": name, "precision": precision})
    cfg = getattr(model, "arch_config", None)
    card = ModelCard(
        name=name, architecture=architecture, arch_args=dict(arch_args),
        ensemble=int(getattr(cfg, "ensemble", 1)), noise_coef=float(getattr(cfg, "noise_coef", 0.0)),
        precision=precision, quantizer=QUANTIZER_DESC.get(precision, precision),
        recipe=recipe_summary, dataset="cifar10", sha256=sha, file=file, license="MIT",
        reference=REFERENCE, training=training,
    )
    card.write(zoo_dir / f"{name}.json")
    return card
