"""The result record of a weight threat: the model's identity and weight statistics as the
engine records them, the stored words the threat hit, and no ε-ball (``eps`` 0, norm none)."""

from __future__ import annotations

import platform
import time

import torch
import torch.nn as nn

from .._version import __version__
from ..data.cifar10 import EvalData
from ..engine.hardware import cpu_info
from ..engine.results import Result


def weight_threat_result(model: nn.Module, card, stats, stored: str, data: EvalData, *, threat_model: str,
                         attacks: dict, per_seed: list, batch_size: int, started: float, command: str | None,
                         eps: float = 0.0, norm: str = "none", **fields) -> Result:
    """``stats``: measure_weights of the model before the threat; ``started``: perf_counter at the start
    (less the journaled seconds of a killed earlier process when resumed);
    ``eps``/``norm``: the input ball of an attack run under the threat (none by default)."""
    arch_cfg = getattr(model, "arch_config", None)
    result = Result(
        model=getattr(card, "name", None) or getattr(model, "name", None) or type(model).__name__,
        card_sha256=getattr(card, "sha256", None),
        architecture=getattr(card, "architecture", type(model).__name__),
        ensemble=getattr(card, "ensemble", getattr(arch_cfg, "ensemble", 1)),
        precision=getattr(card, "precision", stats.precision), recipe=getattr(card, "recipe", None),
        n=len(data), eps=eps, norm=norm, threat_model=threat_model, dataset="cifar10", attacks=attacks,
        sparsity=stats.sparsity, channel_sparsity=stats.channel_sparsity, size_bytes=stats.size_bytes,
        fp32_bytes=stats.fp32_bytes, compression=stats.compression, bits=stats.bits, n_params=stats.n_params,
        batch_size=batch_size, device="cpu", device_name=cpu_info()["name"], cpu=cpu_info(),
        threads=torch.get_num_threads(), versions={"qrobench": __version__, "torch": torch.__version__,
                                                   "python": platform.python_version()},
        data_source=data.source, total_time_s=time.perf_counter() - started, per_seed=per_seed,
        timestamp=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), command=command,
        weights={"eligible": stats.eligible, "layer_bits": stats.layer_bits, "reader": stats.reader, "stored": stored},
        **fields)
    return result.summarize()
