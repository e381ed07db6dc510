"""Evaluate a model under an attack battery.

Only initially correct points are attacked; a point is robust to the battery only if it
survives every attack (AutoAttack's worst-case convention). Stochastic models are scored
with a seeded noise generator per batch, and over ``repeats`` seeds as mean ± std.
"""

from __future__ import annotations

import contextlib
import platform
import time
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn as nn
from tqdm.auto import tqdm

from .._version import __version__
from ..attacks.base import check_attack_names, create_attack
from ..data.cifar10 import EvalData, load_cifar10_test
from ..errors import QrobenchError
from ..models.noise import is_stochastic, noise_seed
from ..protocol import LEADERBOARD_EPS, default_repeats, has_eot
from ..quant.measure import measure_weights
from .outcomes import encode_mask
from .results import Result, SeedResult
from .seeding import (
    ATTACK_GENERATOR,
    ATTACK_NOISE,
    CLEAN,
    SCORE_NOISE,
    batch_seed,
    generator,
    predict,
)


@dataclass
class EvalConfig:
    attacks: list[str] = field(default_factory=lambda: ["pgd20"])
    n: int = 1000
    eps: float = LEADERBOARD_EPS
    seed: int = 0
    batch_size: int = 250
    device: str = "auto"
    repeats: int | None = None  # None: protocol.default_repeats (1, or 3 for stochastic models)
    data_dir: str | None = None
    progress: bool = True
    attack_options: dict = field(default_factory=dict)  # per-attack extra kwargs
    channels_last: bool = True  # measured: ~2x faster conv fwd+bwd on the CPU (benchmarks/)
    stochastic: bool | None = None  # None: detect Feynman-Kac noise; True for other random models

    def validate(self) -> None:
        check_attack_names(self.attacks)
        if len(set(self.attacks)) != len(self.attacks):
            raise QrobenchError(f"--attacks lists an attack twice: {','.join(self.attacks)}")
        if self.n <= 0:
            raise QrobenchError(f"--n must be a positive number of test points, got {self.n}")
        if self.batch_size <= 0:
            raise QrobenchError(f"--batch-size must be positive, got {self.batch_size}")
        if not 0 < self.eps <= 1:
            raise QrobenchError(f"--eps must be in (0, 1] (pixels are in [0, 1]; 8/255 ≈ 0.0314), got {self.eps}")
        if self.repeats is not None and self.repeats <= 0:
            raise QrobenchError(f"--repeats must be positive, got {self.repeats}")


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise QrobenchError("--device cuda was asked for but no CUDA device is available; use --device cpu")
    if device not in ("cpu",) and not device.startswith("cuda"):
        raise QrobenchError(f"--device must be auto, cpu or cuda[:i], got {device!r}")
    return torch.device(device)


def _mf(cfg: EvalConfig) -> torch.memory_format:
    return torch.channels_last if cfg.channels_last else torch.contiguous_format


@contextlib.contextmanager
def full_fp32():
    """Turn TF32 off for the evaluation and restore the caller's setting afterwards.

    cuDNN convolutions default to TF32 on Ampere and later GPUs (10-bit mantissa inputs), so
    the same model and seed would score differently by GPU generation; a benchmark number
    must be the fp32 model's, as on the CPU.
    """
    knobs = [torch.backends.cudnn.conv, torch.backends.cuda.matmul]
    if not all(hasattr(k, "fp32_precision") for k in knobs):  # torch < 2.9: legacy flags only
        old = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
        torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
        try:
            yield
        finally:
            torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = old
        return
    old = [k.fp32_precision for k in knobs]
    for k in knobs:
        k.fp32_precision = "ieee"
    try:
        yield
    finally:
        for k, v in zip(knobs, old, strict=True):
            k.fp32_precision = v


def _versions() -> dict:
    try:
        import pyautoattack

        pa = pyautoattack.__version__
    except Exception:  # pragma: no cover
        pa = None
    return {"qrobench": __version__, "torch": torch.__version__, "pyautoattack": pa,
            "python": platform.python_version()}


def _fraction(mask: torch.Tensor) -> float:
    """Count over n in double precision for every accuracy, so that robust <= clean holds exactly
    (a float32 mean rounds 32/100 below the float64 quotient)."""
    return int(mask.sum()) / len(mask)


def _run_once(model, data: EvalData, cfg: EvalConfig, device, repeat: int, attacks, flags) -> SeedResult:
    seed = cfg.seed + repeat
    n = len(data)
    t0 = time.perf_counter()
    clean_pred = predict(model, data.x, cfg.batch_size, device, (seed, CLEAN, 0), _mf(cfg))
    correct = clean_pred == data.y
    clean_time = time.perf_counter() - t0
    robust, times, zero_grad = {}, {}, {}
    idx_correct = torch.nonzero(correct).flatten()
    for k, (name, atk) in enumerate(attacks.items(), start=1):
        t0 = time.perf_counter()
        survived = torch.zeros(n, dtype=torch.bool)
        zg = []
        bar = tqdm(total=len(idx_correct), desc=f"{name:>10s}", unit="img", leave=False,
                   disable=not cfg.progress)
        for b, i in enumerate(range(0, len(idx_correct), cfg.batch_size)):
            idx = idx_correct[i:i + cfg.batch_size]
            xb, yb = data.x[idx].to(device, memory_format=_mf(cfg)), data.y[idx].to(device)
            gen = generator(device, seed, k, b, ATTACK_GENERATOR)
            with noise_seed(model, batch_seed(seed, k, b, ATTACK_NOISE), device):
                x_adv = atk.perturb(xb, yb, generator=gen)
            if "zero_grad_frac" in atk.diagnostics:
                zg.append(atk.diagnostics["zero_grad_frac"])
            dist = (x_adv - xb).abs().flatten(1).amax(1)
            if dist.max() > cfg.eps + 1e-5 or x_adv.min() < 0 or x_adv.max() > 1:
                raise RuntimeError(f"attack {name} left the ε-ball or the image range "
                                   f"(max |δ| = {float(dist.max()):.5f}); this is a bug in the attack")
            with torch.inference_mode(), noise_seed(model, batch_seed(seed, k, b, SCORE_NOISE), device):
                survived[idx] = (model(x_adv).argmax(1) == yb).cpu()
            bar.update(len(idx))
        bar.close()
        robust[name] = survived
        times[name] = time.perf_counter() - t0
        if zg:
            zero_grad[name] = float(np.mean(zg))
            if zero_grad[name] > 0.05:
                flags.add(f"zero-gradients:{name}")
    worst = correct.clone()
    for s in robust.values():
        worst &= s
    return SeedResult(seed=seed, clean_acc=_fraction(correct),
                      robust_acc={k: _fraction(v) for k, v in robust.items()},
                      worst_case_acc=_fraction(worst), wall_time_s=times, clean_time_s=clean_time,
                      zero_grad_frac=zero_grad,
                      outcomes={"clean": encode_mask(correct), **{k: encode_mask(v) for k, v in robust.items()}})


def evaluate(model: nn.Module, attacks=("pgd20",), n: int = 1000, seed: int = 0, *,
             config: EvalConfig | None = None, data: EvalData | None = None, card=None,
             command: str | None = None, protocol: dict | None = None, flags=(),
             submission: dict | None = None, **kwargs) -> Result:
    """Run the battery on the first ``n`` test points and return the complete result record.

    ``command`` is the command line (or call) that asked for the run and ``protocol`` a named
    protocol it follows (e.g. qrobench check's); both are stored as given. ``flags`` and
    ``submission`` are added by callers that know more about the model (``qrobench submit``).
    The ``transfer`` attack needs its surrogate model in ``attack_options["transfer"]``.
    """
    cfg = config or EvalConfig(attacks=list(attacks), n=n, seed=seed, **kwargs)
    cfg.validate()
    device = resolve_device(cfg.device)
    if data is None:
        data = load_cifar10_test(cfg.n, cfg.data_dir)
    elif len(data) < cfg.n:
        raise QrobenchError(f"--n {cfg.n} exceeds the {len(data)} points given")
    else:
        data = EvalData(data.x[: cfg.n], data.y[: cfg.n], data.source)

    model = model.to(device, memory_format=_mf(cfg)).eval()
    model.requires_grad_(False)
    stochastic = is_stochastic(model) if cfg.stochastic is None else bool(cfg.stochastic)
    repeats = cfg.repeats if cfg.repeats is not None else default_repeats(stochastic)
    name = getattr(card, "name", None) or getattr(model, "name", None) or type(model).__name__

    built = {a: create_attack(a, model, eps=cfg.eps, device=device, seed=cfg.seed,
                              **cfg.attack_options.get(a, {}))
             for a in cfg.attacks}

    run_flags: set[str] = set(flags)
    if stochastic:
        run_flags.add("stochastic")
        if not has_eot(cfg.attacks):
            run_flags.add("no-eot")
    t_start = time.perf_counter()
    with full_fp32():
        runs = [_run_once(model, data, cfg, device, r, built, run_flags) for r in range(repeats)]
    total = time.perf_counter() - t_start
    model.to(memory_format=torch.contiguous_format)

    stats = measure_weights(model)  # = quant_stats for qrobench models; every Conv2d for others
    arch_cfg = getattr(model, "arch_config", None)
    result = Result(
        model=name,
        card_sha256=getattr(card, "sha256", None),
        architecture=getattr(card, "architecture", getattr(model, "arch_name", type(model).__name__)),
        ensemble=getattr(card, "ensemble", getattr(arch_cfg, "ensemble", 1)),
        precision=getattr(card, "precision", getattr(arch_cfg, "precision", stats.precision)),
        recipe=getattr(card, "recipe", None),
        n=len(data),
        eps=cfg.eps,
        attacks={a: atk.settings() for a, atk in built.items()},
        stochastic=stochastic,
        sparsity=stats.sparsity,
        channel_sparsity=stats.channel_sparsity,
        size_bytes=stats.size_bytes,
        fp32_bytes=stats.fp32_bytes,
        compression=stats.compression,
        bits=stats.bits,
        n_params=stats.n_params,
        batch_size=cfg.batch_size,
        device=str(device),
        device_name=(torch.cuda.get_device_name(device) if device.type == "cuda"
                     else platform.processor() or "cpu"),
        threads=torch.get_num_threads(),
        channels_last=cfg.channels_last,
        versions=_versions(),
        data_source=data.source,
        total_time_s=total,
        flags=sorted(run_flags),
        per_seed=runs,
        timestamp=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        command=command,
        protocol=protocol,
        weights={"eligible": stats.eligible, "layer_bits": stats.layer_bits,
                 "zero_channels": stats.zero_channels, "total_channels": stats.total_channels},
        submission=submission,
    )
    return result.summarize()
