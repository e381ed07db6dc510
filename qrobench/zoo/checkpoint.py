"""Deployed checkpoints: safetensors with integer codes + scales for quantized layers.

Pickles are refused (loading one runs arbitrary code); every quantized layer is checked to
hold no more distinct values than its bit-width allows. A torch.ao int8 model's state
(quantized tensors, packed parameters) is stored as plain tensors with its layout in the
metadata (toolkits/int8_state.py).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch
import torch.nn as nn
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from ..errors import CheckpointError
from ..files import atomic_path
from ..protocol import precision
from ..quant.layers import quantized_layers
from ..toolkits import int8_state

FORMAT = "qrobench-deployed-v1"
METADATA_KEY = "qrobench"
_PICKLE_MAGIC = (b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05", b"PK\x03\x04")


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _refuse_pickle(path: Path) -> None:
    with open(path, "rb") as f:
        head = f.read(4)
    if path.suffix in (".pt", ".pth", ".pkl", ".ckpt", ".bin") or head.startswith(_PICKLE_MAGIC):
        raise CheckpointError(
            f"{path} is a pickle/torch.save file, which can run code when loaded; qrobench only "
            "loads safetensors: convert it with safetensors.torch.save_file(state_dict, 'x.safetensors')"
        )


def deployed_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The tensors a deployed checkpoint stores: codes + scale for quantized convs."""
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    for name, m in quantized_layers(model):
        if not m.is_quantized:
            continue
        if m.mode != "deployed":
            m.deploy()
        q = m.deployed_codes()
        key = f"{name}.weight"
        del state[key]
        state[f"{name}.weight_codes"] = q.codes.cpu().contiguous()
        state[f"{name}.weight_scale"] = q.scale.reshape(1).float().cpu()
    return state


def save_deployed(model: nn.Module, path: str | Path, metadata: dict[str, str] | None = None) -> str:
    """Write the deployed weights; returns the file's sha256.

    The metadata goes in as one key holding sorted JSON: safetensors writes a metadata dict in
    a random key order (a Rust HashMap), so several keys made the same weights hash differently
    from one export to the next."""
    path = Path(path)
    info = {"format": FORMAT, **(metadata or {})}
    state = model.state_dict()
    if int8_state.is_int8_state(state):
        tensors, info["int8_layout"] = int8_state.encode(state)
    else:
        tensors = deployed_state(model)
    meta = {METADATA_KEY: json.dumps(info, sort_keys=True)}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=meta)
    return file_sha256(path)


def _metadata(path: Path) -> dict:
    with safe_open(str(path), framework="pt") as f:
        raw = (f.metadata() or {}).get(METADATA_KEY)
    try:
        return json.loads(raw) if raw else {}
    except json.JSONDecodeError:
        return {}


def load_deployed(model: nn.Module, path: str | Path, expected_sha256: str | None = None) -> nn.Module:
    """Fill ``model`` (built from its card) with the deployed weights at ``path``."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} not found; check the card's 'file' field")
    _refuse_pickle(path)
    if expected_sha256 is not None:
        got = file_sha256(path)
        if got != expected_sha256:
            raise CheckpointError(
                f"checkpoint {path} has sha256 {got[:12]}… but its card says {expected_sha256[:12]}…; "
                "the file was changed or the card is stale: restore the file or re-export the card"
            )
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError) as e:
        raise CheckpointError(f"{path} is not a readable safetensors file ({e})") from e
    layout = _metadata(path).get("int8_layout")
    if layout is not None:  # a torch.ao int8 model
        from ..toolkits.torch_int8 import load_state  # checks every key, shape and qscheme

        try:
            return load_state(model, int8_state.decode(tensors, layout))
        except CheckpointError as e:
            raise CheckpointError(f"{path} does not fit the card's architecture: {e}") from e

    qlayers = {name: m for name, m in quantized_layers(model) if m.is_quantized}
    state = {}
    for k, v in tensors.items():
        if k.endswith(".weight_codes") or k.endswith(".weight_scale"):
            continue
        state[k] = v
    for name, m in qlayers.items():
        ck, sk = f"{name}.weight_codes", f"{name}.weight_scale"
        if ck not in tensors or sk not in tensors:
            raise CheckpointError(
                f"{path}: quantized layer {name!r} ({m.precision}) has no integer codes; "
                "the checkpoint does not match the card's precision"
            )
        codes = tensors[ck]
        lo, hi = precision(m.precision).code_range
        uniq = torch.unique(codes)
        limit = m.max_levels()
        if codes.dtype != torch.int8 or uniq.min() < lo or uniq.max() > hi or len(uniq) > limit:
            raise CheckpointError(
                f"{path}: layer {name!r} holds {len(uniq)} distinct codes in "
                f"[{int(uniq.min())}, {int(uniq.max())}], but {m.precision} allows at most "
                f"{limit} in [{lo}, {hi}]"
            )
        if tuple(codes.shape) != tuple(m.weight.shape):
            raise CheckpointError(f"{path}: layer {name!r} has shape {tuple(codes.shape)}, "
                                  f"expected {tuple(m.weight.shape)}")
        state[f"{name}.weight"] = m.weight.detach().clone()  # placeholder, replaced below
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        first = str(e).splitlines()[0]
        raise CheckpointError(f"{path} does not fit the card's architecture: {first}") from e
    for name, m in qlayers.items():
        m.load_deployed(tensors[f"{name}.weight_codes"], tensors[f"{name}.weight_scale"])
    for _, m in quantized_layers(model):
        if not m.is_quantized:
            m.mode = "deployed"
    return model
