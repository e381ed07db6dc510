"""Turning what a submitter sends into an eval-ready model: build, load weights, probe it.

Checkpoints are read without running code: safetensors, or ``torch.load(weights_only=True)``
(tensors only). Quantized qrobench layers are evaluated at their deployed weights: a state
dict that already holds codes × scale is adopted as is, float master weights are quantized
with the architecture's own quantizer (docs/protocol.md §8.1).
"""

from __future__ import annotations

import pickle
from pathlib import Path

import torch
import torch.nn as nn
from safetensors import SafetensorError
from safetensors.torch import load_file

from ..errors import CheckpointError, QrobenchError
from ..models.noise import is_stochastic
from ..models.registry import create_model
from ..protocol import precision as precision_of
from ..quant.layers import quantized_layers
from ..toolkits import int8_state
from ..zoo.checkpoint import load_deployed
from ..zoo.factory import FACTORY_PREFIX, build_from_factory

_WRAPPER_KEYS = ("state_dict", "model_state_dict", "model")
NUM_CLASSES = 10


def build(arch: str | None, factory: str | None, arch_args: dict | None) -> tuple[nn.Module, str]:
    """(fresh model, the card's architecture string)."""
    if (arch is None) == (factory is None):
        raise QrobenchError("give exactly one of --arch (a qrobench architecture) or --factory package.module:fn")
    if arch is not None:
        return create_model(arch, **(arch_args or {})), arch
    return build_from_factory(factory, arch_args), FACTORY_PREFIX + factory


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"--checkpoint {path} not found")
    if path.suffix == ".safetensors":
        try:
            state = load_file(str(path))
        except (SafetensorError, OSError) as e:
            raise CheckpointError(f"{path} is not a readable safetensors file ({e})") from e
    else:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError) as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise CheckpointError(
                f"{path} cannot be loaded with torch.load(weights_only=True) ({first[:200]}); send "
                "model.state_dict() saved with torch.save, or a safetensors file") from e
    if isinstance(state, dict) and int8_state.is_int8_state(state):
        return state  # a torch.ao int8 model's: quantized tensors, packed parameters, dtypes
    if isinstance(state, dict) and not all(isinstance(v, torch.Tensor) for v in state.values()):
        for k in _WRAPPER_KEYS:
            if isinstance(state.get(k), dict):
                state = state[k]
                break
    if not isinstance(state, dict) or not state or \
            not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        raise CheckpointError(f"{path} does not hold a state dict (a mapping of names to tensors); "
                              "save model.state_dict()")
    if all(k.startswith("module.") for k in state):  # saved from DataParallel
        state = {k[len("module."):]: v for k, v in state.items()}
    return state


def _as_codes(w: torch.Tensor, precision: str) -> tuple[torch.Tensor, torch.Tensor] | None:
    """(int8 codes, scale) if ``w`` already is a deployed weight of ``precision``, else None."""
    distinct = torch.unique(w)
    if len(distinct) > precision_of(precision).levels:
        return None
    lo, hi = precision_of(precision).code_range
    nz = distinct[distinct != 0].abs()
    if len(nz) == 0:
        return (torch.zeros_like(w, dtype=torch.int8), torch.zeros(()))
    for d in range(1, hi + 1):
        s = nz.min() / d
        k = w / s
        kr = k.round()
        if torch.allclose(k, kr, atol=1e-3, rtol=0) and kr.min() >= lo and kr.max() <= hi:
            return kr.to(torch.int8), s.float()
    return None


def load_weights(model: nn.Module, path: str | Path) -> str:
    """Fill ``model`` from the submitted checkpoint; returns how it was read (for the record)."""
    path = Path(path)
    state = read_state_dict(path)
    if any(k.endswith(".weight_codes") for k in state):
        if path.suffix != ".safetensors":
            raise CheckpointError(f"{path} holds deployed codes but is not safetensors; export it with qrobench")
        load_deployed(model, path)
        return "qrobench deployed checkpoint (int8 codes + scale)"
    if int8_state.is_int8_state(state):
        from ..toolkits.torch_int8 import load_state  # torch.ao's own load misses wrong shapes

        try:
            load_state(model, state)
        except CheckpointError as e:
            raise CheckpointError(f"{path}: {e}") from e
        return "torch.ao int8 state dict (quantized tensors and packed parameters, read with weights_only=True)"
    try:
        model.load_state_dict(state, strict=True)
    except (RuntimeError, KeyError) as e:
        first = str(e).strip().splitlines()[0]
        detail = " ".join(line.strip() for line in str(e).splitlines()[1:3])
        raise CheckpointError(f"{path} does not fit the architecture: {first} {detail}"[:400]) from e
    adopted = quantized = 0
    for _, m in quantized_layers(model):
        if not m.is_quantized:
            m.mode = "deployed"
            continue
        codes = _as_codes(m.weight.detach(), m.precision)
        if codes is None:
            m.mode = "float"
            m.deploy()
            quantized += 1
        else:
            m.load_deployed(*codes)
            adopted += 1
    if quantized:
        return f"state dict; {quantized} float layer(s) quantized on submission with the architecture's quantizer"
    return "state dict" + (" (already deployed values)" if adopted else "")


@torch.no_grad()
def check_outputs(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The model must map CIFAR-10 images in [0, 1] to ten logits per image."""
    try:
        out = model(x)
    except Exception as e:  # a user's model can fail in any way; say where
        raise QrobenchError(f"the model failed on a batch of CIFAR-10 images of shape {tuple(x.shape)} "
                            f"in [0, 1]: {type(e).__name__}: {e}"[:400]) from e
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != (len(x), NUM_CLASSES):
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise QrobenchError(f"the model must return logits of shape (N, {NUM_CLASSES}) for inputs "
                            f"(N, 3, 32, 32) in [0, 1], got {shape}")
    if not torch.isfinite(out).all():
        raise QrobenchError("the model returned NaN or infinite logits on clean CIFAR-10 images")
    return out


@torch.no_grad()
def random_at_test_time(model: nn.Module, x: torch.Tensor) -> bool:
    """True if two forward passes on the same batch disagree (or the model has qrobench noise)."""
    if is_stochastic(model):
        return True
    a, b = model(x), model(x)
    return bool((a - b).abs().max() > 1e-5 * (1.0 + a.abs().max()))
