"""Evaluate a model under an attack battery.

Only initially correct points are attacked; a point is robust to the battery only if it
survives every attack (AutoAttack's worst-case convention). Stochastic models are scored
with a seeded noise generator per batch, and over ``repeats`` seeds as mean ± std.
"""

from __future__ import annotations

import contextlib
import platform
import time

import numpy as np
import torch
import torch.nn as nn
from tqdm.auto import tqdm

from .._version import __version__
from ..attacks.base import create_attack
from ..attacks.gradient import distance
from ..data.cifar10 import EvalData
from ..data.registry import load_test_set
from ..errors import QrobenchError
from ..models.noise import is_stochastic, noise_seed
from ..protocol import default_repeats, has_eot
from ..quant.measure import measure_weights
from ..toolkits import prepare
from ..toolkits.deployed import DeployedModel, Materialised
from .cascade_from import CascadeFrom, CleanMismatch
from .config import EvalConfig
from .deployment import (
    agreement_counts,
    check_materialised,
    require_gradients,
    summarise,
    transfer_counts,
)
from .hardware import cpu_info
from .journal import Journal
from .outcomes import decode_mask, encode_mask
from .results import SHARED_SCORE_DRAW, Result, SeedResult
from .seeding import ATTACK_GENERATOR, ATTACK_NOISE, CLEAN, SCORE_NOISE, batch_seed, generator
from .shards import WHOLE, batch_points, shard_points


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


def _clean_batch(model, data: EvalData, cfg: EvalConfig, device, seed: int, b: int):
    """(clean-correct mask, None, a deployed model's twin agreement counts or None)."""
    s, e = batch_points(b, len(data), cfg.batch_size)
    x = data.x[s:e].to(device, memory_format=_mf(cfg))
    with torch.inference_mode(), noise_seed(model, batch_seed(seed, CLEAN, 0, b), device):
        logits = model(x)
        agree = agreement_counts(model, x, logits) if isinstance(model, DeployedModel) else None
    return logits.argmax(1).cpu() == data.y[s:e], None, agree


def _attack_batch(model, atk, name, data: EvalData, cfg: EvalConfig, device, seed: int, k: int, b: int,
                  correct: torch.Tensor, shared_draw: bool = False) -> tuple[torch.Tensor, float | None, dict | None]:
    """Survival of batch ``b``'s points under attack ``k`` (False where not clean-correct), the
    attack's zero-gradient fraction, and a deployed model's twin→deployed transfer counts.

    ``shared_draw`` (randomised models): score the examples inside the whole clean batch under
    the clean pass's own noise draw, so that every column of a point meets the same draw and the
    worst case does not fall with the number of columns (docs/protocol.md §6.4)."""
    s, e = batch_points(b, len(data), cfg.batch_size)
    survived = torch.zeros(e - s, dtype=torch.bool)
    local = torch.nonzero(correct).flatten()
    if len(local) == 0:
        return survived, None, None
    idx = local + s
    xb, yb = data.x[idx].to(device, memory_format=_mf(cfg)), data.y[idx].to(device)
    gen = generator(device, seed, k, b, ATTACK_GENERATOR)
    atk.diagnostics.pop("zero_grad_frac", None)
    with noise_seed(model, batch_seed(seed, k, b, ATTACK_NOISE), device):
        x_adv = atk.perturb(xb, yb, generator=gen)
    dist = distance(x_adv - xb, cfg.norm)
    if dist.max() > cfg.eps + 1e-5 or x_adv.min() < 0 or x_adv.max() > 1:
        raise RuntimeError(f"attack {name} left the {cfg.norm} ε-ball or the image range "
                           f"(max ‖δ‖ = {float(dist.max()):.5f} > ε = {cfg.eps:.5f}); this is a bug in the attack")
    if shared_draw:
        at = local.to(device)
        whole = data.x[s:e].to(device, memory_format=_mf(cfg), copy=True)  # never write into data.x
        whole[at] = x_adv.to(whole.dtype)
        with torch.inference_mode(), noise_seed(model, batch_seed(seed, CLEAN, 0, b), device):
            still = model(whole).argmax(1)[at] == yb
        transfer = None  # deployed models are deterministic
    else:
        with torch.inference_mode(), noise_seed(model, batch_seed(seed, k, b, SCORE_NOISE), device):
            still = model(x_adv).argmax(1) == yb
            transfer = transfer_counts(model, x_adv, yb, still) if isinstance(model, DeployedModel) else None
    survived[local] = still.cpu()
    return survived, atk.diagnostics.get("zero_grad_frac"), transfer


def _journaled(journal: Journal, seed: int, part: str, b: int, size: int, compute):
    """Batch ``b``'s mask, seconds, zero-gradient fraction and extra counts: from the journal
    when it is there, else computed by ``compute() -> (mask, zero_grad, extra)`` and journaled."""
    done = journal.get(seed, part, b)
    if done is not None:
        return (torch.from_numpy(decode_mask(done["mask"], size)), done["time"], done.get("zero_grad"),
                done.get("extra"))
    t0 = time.perf_counter()
    mask, zero_grad, extra = compute()
    dt = time.perf_counter() - t0
    mask = mask.cpu()
    journal.record(seed, part, b, encode_mask(mask), dt, zero_grad, extra)
    return mask, dt, zero_grad, extra


def check_expected_clean(model, data: EvalData, cfg: EvalConfig, device, expected: Result, seeds) -> None:
    """Refuse to go on when this machine's clean predictions differ from ``expected``'s on *all*
    its points, not only the run's (``--expect-clean``): attack files of one model are merged
    only over equal clean predictions (merge.py), and a CPU whose int8 kernels round a few
    points otherwise would pass a check of one shard by chance. One clean pass, before any attack."""
    lo, hi = expected.first_index, expected.first_index + expected.n
    if lo % cfg.batch_size or (hi % cfg.batch_size and hi != len(data)) or hi > len(data):
        raise QrobenchError(f"--expect-clean: the file holds points {lo}–{hi - 1}, which are not whole batches of "
                            f"{cfg.batch_size} among this run's {len(data)} points")
    for seed in seeds:
        runs = [s for s in expected.per_seed if s.seed == seed]
        if not runs or not runs[0].outcomes:
            raise QrobenchError(f"--expect-clean: the file holds no per-point clean outcomes for seed {seed} "
                                f"(seeds {expected.seeds})")
        want = torch.from_numpy(decode_mask(runs[0].outcomes["clean"], expected.n))
        got = torch.cat([_clean_batch(model, data, cfg, device, seed, b)[0]
                         for b in range(lo // cfg.batch_size, -(-hi // cfg.batch_size))])
        differ = int((want != got).sum())
        if differ:
            c = cpu_info()
            raise QrobenchError(
                f"--expect-clean: {differ} of the file's {expected.n} points get other clean predictions here (seed "
                f"{seed}), so what this run measures could not be merged with it. Same model file (card sha256), "
                f"batch size and device? On this CPU ({c['name']}, int8 dot product: {c['int8_dot']}) an int8 runtime "
                "may compute other logits (docs/protocol.md §8.8): run the pieces on a CPU like the one that "
                "measured the file")


def _run_once(model, data: EvalData, cfg: EvalConfig, device, repeat: int, attacks, flags,
              batches: range, journal: Journal, extras: dict, prior: CascadeFrom | None = None) -> SeedResult:
    """One seed over ``batches`` (a shard, or all of them); finished batches come from, and
    new ones go to, the journal. With ``prior`` (--cascade-from) the attacks run only on the
    points an earlier run's attacks left standing."""
    seed = cfg.seed + repeat
    n = len(data)
    start, stop = shard_points(batches, n, cfg.batch_size)
    correct = torch.zeros(stop - start, dtype=torch.bool)
    clean_time = 0.0
    for b in batches:
        s, e = batch_points(b, n, cfg.batch_size)
        m, dt, _, extra = _journaled(journal, seed, "clean", b, e - s,
                                     lambda b=b: _clean_batch(model, data, cfg, device, seed, b))
        if extra:
            extras.setdefault("clean", []).append(extra)
        correct[s - start:e - start] = m
        clean_time += dt
    robust, times, zero_grad = {}, {}, {}
    base = prior.targets(seed, correct) if prior is not None else correct
    alive = base.clone()  # cascade: the points no attack has broken yet
    for k, (name, atk) in enumerate(attacks.items(), start=1):
        targets = alive if cfg.cascade else base
        survived = torch.zeros(stop - start, dtype=torch.bool)
        times[name], zg = 0.0, []
        bar = tqdm(total=int(targets.sum()), desc=f"{name:>10s}", unit="img", leave=False,
                   disable=not cfg.progress)
        for b in batches:
            s, e = batch_points(b, n, cfg.batch_size)
            ok = targets[s - start:e - start].clone()
            m, dt, z, extra = _journaled(journal, seed, name, b, e - s,
                                         lambda b=b, k=k, atk=atk, name=name, ok=ok:
                                         _attack_batch(model, atk, name, data, cfg, device, seed, k, b, ok,
                                                       shared_draw="stochastic" in flags))
            if extra:
                extras.setdefault(name, []).append(extra)
            survived[s - start:e - start] = m
            times[name] += dt
            if z is not None:
                zg.append(z)
            bar.update(int(ok.sum()))
        bar.close()
        robust[name] = survived
        alive &= survived
        if zg:
            zero_grad[name] = float(np.mean(zg))
            if zero_grad[name] > 0.05:
                flags.add(f"zero-gradients:{name}")
    return SeedResult.from_masks(seed, correct, robust, wall_time_s=times, clean_time_s=clean_time,
                                 zero_grad_frac=zero_grad)


def evaluate(model: nn.Module, config: EvalConfig, *, data: EvalData | None = None, card=None,
             command: str | None = None, protocol: dict | None = None, flags=(),
             submission: dict | None = None, journal: str | None = None, resume: bool = False,
             expect_clean: Result | None = None, cascade_from: Result | None = None,
             cascade_attacks=None) -> Result:
    """Run ``config``'s battery on its first ``n`` test points and return the complete record.

    ``config`` comes from :func:`qrobench.engine.make_config`, the one place that validates
    what a run measures (``qrobench.evaluate`` builds it from keyword arguments). ``data``
    replaces the config's data set (e.g. points already loaded). ``command`` is the command
    line (or call) that asked for the run and ``protocol`` a named protocol it follows (e.g.
    qrobench check's); both are stored as given. ``flags`` and ``submission`` are added by
    callers that know more about the model (``qrobench submit``). With ``journal`` (a path)
    every finished batch is journaled there and ``resume=True`` continues a killed run from it
    (journal.py); ``config.shard`` evaluates one shard only. With ``expect_clean`` (a result of
    the same model) the run stops before its attacks if its clean predictions differ from it.
    With ``cascade_from`` (a result of the same model, points and seeds) the attacks run only on
    the points that its attacks (``cascade_attacks``, default all) left standing: the worst case
    over both files is exact, these attacks' own accuracies are not (engine/cascade_from.py).
    """
    if not isinstance(config, EvalConfig):
        raise TypeError("engine.evaluate(model, config) takes an EvalConfig: build one with "
                        "qrobench.engine.make_config(attacks=[...], n=..., ...), or call "
                        "qrobench.evaluate(model, attacks=[...], n=...)")
    cfg = config
    device = resolve_device(cfg.device)
    if data is None:
        data = load_test_set(cfg.dataset, cfg.n, cfg.data_dir)
    elif len(data) < cfg.n:
        raise QrobenchError(f"n (--n) = {cfg.n} exceeds the {len(data)} points given")
    else:
        data = EvalData(data.x[: cfg.n], data.y[: cfg.n], data.source)

    model = prepare(model)  # toolkit models: BPDA through a twin, or a materialised forward
    model = model.to(device, memory_format=_mf(cfg)).eval()
    model.requires_grad_(False)
    stochastic = is_stochastic(model) if cfg.stochastic is None else bool(cfg.stochastic)
    repeats = cfg.repeats if cfg.repeats is not None else default_repeats(stochastic)
    name = getattr(card, "name", None) or getattr(model, "name", None) or type(model).__name__

    built = {a: create_attack(a, model, eps=cfg.eps, norm=cfg.norm, device=device, seed=cfg.seed,
                              randomised=stochastic, **cfg.attack_options.get(a, {}))
             for a in cfg.attacks}

    run_flags: set[str] = set(flags)
    if cfg.cascade:
        run_flags.add("cascade")
    if stochastic:
        run_flags.add("stochastic")
        if not has_eot(cfg.attacks):
            run_flags.add("no-eot")
    if any(getattr(atk, "grad_precision", "fp32") != "fp32" for atk in built.values()):
        run_flags.add("bf16-gradients")  # a faster, slightly different attack: say so wherever the row goes
    batches = cfg.shard.batches(len(data), cfg.batch_size)
    start, stop = shard_points(batches, len(data), cfg.batch_size)
    card_sha = getattr(card, "sha256", None)
    seeds = [cfg.seed + r for r in range(repeats)]
    prior = None
    if cascade_from is not None:
        prior = CascadeFrom(cascade_from, cascade_attacks, cfg, card_sha, seeds, start, stop, stochastic)
        run_flags.add("cascade-from")
    elif cascade_attacks is not None:
        raise QrobenchError("cascade_attacks (--cascade-attacks) names attacks of the --cascade-from file; give it")
    settings = {a: atk.settings() for a, atk in built.items()}
    log = Journal(journal, {"model": name, "card_sha256": card_sha, "n": len(data), "eps": cfg.eps,
                            "threat_model": cfg.threat_model, "dataset": cfg.dataset,
                            "attacks": settings, "seeds": [cfg.seed + r for r in range(repeats)],
                            "batch_size": cfg.batch_size, "shard": str(cfg.shard),
                            "channels_last": cfg.channels_last, "cascade": cfg.cascade, "qrobench": __version__,
                            **({"cascade_from": {"attacks": prior.attacks, "survivors": prior.digest()}} if prior else {}),
                            **({"score_draw": SHARED_SCORE_DRAW} if stochastic else {})},
                  resume)
    if expect_clean is not None and expect_clean.card_sha256 != card_sha:
        raise QrobenchError(f"--expect-clean: the file measured {expect_clean.model} (card sha256 "
                            f"{str(expect_clean.card_sha256)[:12]}), this run {name} ({str(card_sha)[:12]})")
    t_start = time.perf_counter()
    extras: dict[str, list[dict]] = {}
    with full_fp32():
        require_gradients(model, data.x[start:start + 2].to(device), built)
        equivalence = None
        if isinstance(model, Materialised):
            equivalence = check_materialised(model, data.x[start:stop], cfg.batch_size, device)
            if not equivalence["passed"]:
                run_flags.add("materialise-mismatch")
        if expect_clean is not None:
            try:
                check_expected_clean(model, data, cfg, device, expect_clean, [cfg.seed + r for r in range(repeats)])
            except QrobenchError:
                log.discard()  # nothing measured yet: no journal for a --resume to trip over
                raise
        try:
            runs = [_run_once(model, data, cfg, device, r, built, run_flags, batches, log, extras, prior)
                    for r in range(repeats)]
        except CleanMismatch:
            log.discard()  # it continued from survivors that are not this run's: nothing of it may be resumed
            raise
    total = time.perf_counter() - t_start + log.recovered_time_s  # plus a killed process's batches
    model.to(memory_format=torch.contiguous_format)

    stats = measure_weights(model)  # = quant_stats for qrobench models; every Conv2d for others
    arch_cfg = getattr(model, "arch_config", None)
    result = Result(
        model=name,
        card_sha256=card_sha,
        architecture=getattr(card, "architecture", getattr(model, "arch_name", type(model).__name__)),
        ensemble=getattr(card, "ensemble", getattr(arch_cfg, "ensemble", 1)),
        precision=getattr(card, "precision", getattr(arch_cfg, "precision", stats.precision)),
        recipe=getattr(card, "recipe", None),
        n=stop - start,
        first_index=start,
        eps=cfg.eps,
        norm=cfg.norm,
        threat_model=cfg.threat_model,
        dataset=cfg.dataset,
        attacks=settings,
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
                     else cpu_info()["name"] if device.type == "cpu" else platform.processor() or str(device)),
        cpu=cpu_info() if device.type == "cpu" else None,
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
                 "zero_channels": stats.zero_channels, "total_channels": stats.total_channels,
                 "reader": stats.reader},
        submission=submission,
        cascade=True if cfg.cascade else None,
        cascade_from={a: list(prior.attacks) for a in cfg.attacks} if prior else None,
        score_draw=SHARED_SCORE_DRAW if stochastic else None,
        deployment=summarise(model, extras.pop("clean", []), extras, equivalence),
        shard=None if cfg.shard == WHOLE else {"index": cfg.shard.index, "count": cfg.shard.count,
                                               "n": len(data)},
    )
    result.summarize()
    log.close()  # kept until the caller has written the result (journal.py)
    return result
