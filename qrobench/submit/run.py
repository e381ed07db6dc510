"""The submission pipeline: check, store, reload, probe, evaluate, then write the entry.

Order matters: the checkpoint is stored first (under a staging name) and the model that is
evaluated is the one reloaded from that file, so the leaderboard entry describes exactly
the bytes a pull request adds. Nothing reaches its final name until the evaluation has
finished; a failure leaves the output folder as it was.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from ..data.cifar10 import EvalData
from ..data.registry import load_test_set
from ..engine.config import EvalConfig, make_config
from ..engine.diagnostics import diagnose_result
from ..engine.evaluate import evaluate, resolve_device
from ..engine.results import Result, write_result
from ..engine.seeding import CLEAN, predict
from ..errors import ModelCardError, QrobenchError
from ..protocol import (
    CLEAN_ACC_FLOOR,
    DEFAULT_DATASET,
    LEADERBOARD_EPS,
    LEADERBOARD_N,
    LEADERBOARD_SEED,
    PRECISION_TOKENS,
    STOCHASTIC_REPEATS,
    battery_for,
    is_precision_token,
)
from ..quant.measure import measure_weights
from ..toolkits import prepare, runtime_of
from ..toolkits.formats import model_format
from ..toolkits.onnx_models import load_onnx
from ..zoo.card import ModelCard
from ..zoo.checkpoint import file_sha256, load_deployed, save_deployed
from .card import read_submission_card
from .model import build, check_outputs, load_weights, random_at_test_time

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,79}$")
PROBE_POINTS = 64


@dataclass
class Submission:
    card_path: Path
    checkpoint_path: Path
    result_path: Path
    result: Result


def entry_paths(output_dir: str | Path, name: str, suffix: str = ".safetensors") -> tuple[Path, Path, Path]:
    """Where a pull request to the leaderboard puts the entry (the repository's own layout)."""
    out = Path(output_dir)
    zoo = out / "model_zoo"
    return zoo / f"{name}.json", zoo / f"{name}{suffix}", out / "results" / "zoo" / f"{name}.json"


def _check_declared(stated: dict, measured: dict) -> None:
    for field, value in measured.items():
        if field in stated and stated[field] != value:
            raise ModelCardError(f"the card says {field} = {stated[field]!r} but the submission measures "
                                 f"{value!r}; fix the card (measured values always win)")


def submit(name: str, checkpoint: str | Path | None = None, *, arch: str | None = None,
           factory: str | None = None, onnx: str | Path | None = None, twin=None,
           arch_args: dict | None = None, card: str | Path | None = None, n: int = LEADERBOARD_N,
           attacks=None, output_dir: str | Path = ".", min_clean_acc: float = CLEAN_ACC_FLOOR,
           seed: int = LEADERBOARD_SEED, data_dir=None, data: EvalData | None = None,
           device: str = "cpu", batch_size: int = 250, overwrite: bool = False,
           progress: bool = True, command: str | None = None) -> Submission:
    """Evaluate a submitted checkpoint under the leaderboard's protocol and write its entry.

    ``checkpoint`` with ``arch`` or ``factory`` (qrobench layers, any nn.Module, Brevitas, a
    torch.ao int8 state dict), or ``onnx`` alone (an ONNX file, run by ONNX Runtime). ``twin``
    (a module) is the differentiable twin of a model without input gradient; by default it is
    derived from the model (toolkits/)."""
    if not _NAME.match(name or ""):
        raise QrobenchError(f"--name {name!r} must be 1-80 letters, digits, '.', '_' or '-', starting "
                            "with a letter or digit (it becomes a file name)")
    if not 0 <= min_clean_acc < 1:
        raise QrobenchError(f"--min-clean-acc is a fraction in [0, 1), got {min_clean_acc}")
    if arch_args is not None and not isinstance(arch_args, dict):
        raise QrobenchError("--arch-args must be a JSON object of keyword arguments")
    EvalConfig(attacks=tuple(battery_for(False, attacks)), n=n, seed=seed, batch_size=batch_size)  # checked up front
    if (onnx is None) == (checkpoint is None):
        raise QrobenchError("give --checkpoint (with --arch or --factory) or --onnx, not both")
    if onnx is not None and (arch is not None or factory is not None):
        raise QrobenchError("--onnx holds the whole model: drop --arch/--factory")
    if onnx is not None:
        checkpoint = onnx
    dev = resolve_device(device)
    card_path, ckpt_path, result_path = entry_paths(output_dir, name, ".onnx" if onnx is not None else ".safetensors")
    existing = [p for p in (card_path, ckpt_path, result_path) if p.exists()]
    if existing and not overwrite:
        raise QrobenchError(f"{existing[0]} already exists; choose another --name or pass --overwrite")
    stated, has_card = read_submission_card(card)
    if stated.get("name", name) != name:
        raise ModelCardError(f"the card names the model {stated['name']!r} but --name is {name!r}")
    original_sha = file_sha256(checkpoint) if Path(checkpoint).is_file() else None
    if "sha256" in stated and stated["sha256"] != original_sha:
        raise ModelCardError(f"the card's sha256 {stated['sha256'][:12]}… does not match --checkpoint "
                             f"({(original_sha or 'missing')[:12]}…); the file is not the one the card describes")

    if onnx is not None:
        model, architecture = load_onnx(onnx, twin=twin), f"onnx:{Path(onnx).name}"
        loaded_as = f"ONNX file run by onnxruntime {model.execution.get('version')} ({model.execution.get('provider')})"
    else:
        model, architecture = build(arch, factory, arch_args)
        loaded_as = load_weights(model, checkpoint)
    model.eval()
    if data is None:
        data = load_test_set(DEFAULT_DATASET, n, data_dir)
    elif len(data) < n:
        raise QrobenchError(f"--n {n} exceeds the {len(data)} points given")
    data = EvalData(data.x[:n], data.y[:n], data.source)
    probe = data.x[:PROBE_POINTS]
    check_outputs(model, probe)

    card_path.parent.mkdir(parents=True, exist_ok=True)
    staging_dir = card_path.with_name(f".{name}.staging")
    staging = staging_dir / ckpt_path.name
    staging_dir.mkdir(exist_ok=True)
    try:
        if onnx is not None:
            shutil.copyfile(onnx, staging)
            sha = file_sha256(staging)
            fresh = load_onnx(staging, twin=twin, expected_sha256=sha)  # evaluate exactly what was stored
        else:
            try:
                sha = save_deployed(model, staging, metadata={"name": name, "submitted": "qrobench submit"})
            except RuntimeError as e:  # e.g. tied weights, which safetensors will not store twice
                first = str(e).strip().splitlines()[0][:200]
                raise QrobenchError(f"the model's state_dict cannot be stored as safetensors ({first})") from e
            fresh, _ = build(arch, factory, arch_args)  # evaluate exactly what was stored
            load_deployed(fresh, staging, expected_sha256=sha)
            fresh.eval()
            fresh = prepare(fresh, twin=twin)  # a toolkit model as deployed (BPDA twin, materialised)
        fmt = model_format(fresh)
        stochastic = random_at_test_time(fresh, probe)
        if not stochastic:
            with torch.no_grad():
                if not torch.allclose(model(probe), fresh(probe), atol=1e-5, rtol=1e-4):
                    raise QrobenchError("the stored checkpoint does not reproduce the submitted model "
                                        "(non-persistent state?); keep all weights in state_dict()")
        stats = measure_weights(fresh)
        cfg_arch = getattr(fresh, "arch_config", None)
        ensemble = int(getattr(cfg_arch, "ensemble", stated.get("ensemble", 1)))
        noise_coef = float(getattr(cfg_arch, "noise_coef", stated.get("noise_coef", 0.0)))
        declared = stated.get("precision")
        if declared is not None and not is_precision_token(declared):
            raise ModelCardError(f"card field 'precision' must be one of {', '.join(PRECISION_TOKENS)} or "
                                 f"<b>bit, got {declared!r}")
        _check_declared(stated, {"precision": stats.precision, "ensemble": ensemble})

        torch.manual_seed(seed)  # models random through torch's global RNG: repeatable too
        # the engine's clean pass, with its seeds: the floor sees the accuracy the result will hold
        clean = int((predict(fresh.to(dev), data.x, batch_size, dev, (seed, CLEAN, 0)) == data.y).sum()) / len(data)
        if clean < min_clean_acc:
            raise QrobenchError(
                f"clean accuracy {100 * clean:.1f} % on the first {len(data)} test points is below the "
                f"floor of {100 * min_clean_acc:.0f} %: a near-constant model looks robust without being "
                "robust, so it is not ranked (check the checkpoint and its input range [0, 1])")

        battery = battery_for(stochastic, attacks)
        cfg = make_config(battery, target=name, n=len(data), eps=LEADERBOARD_EPS, seed=seed, batch_size=batch_size,
                          device=device, repeats=STOCHASTIC_REPEATS if stochastic else 1,
                          stochastic=stochastic, progress=progress)
        card_obj = ModelCard.from_dict({
            "name": name, "architecture": architecture, "arch_args": dict(arch_args or {}),
            "ensemble": ensemble, "noise_coef": noise_coef, "precision": stats.precision,
            "quantizer": stated.get("quantizer", f"measured from the weights: {stats.precision}, "
                                                 f"{stats.bits:.2f} bits per weight on average"),
            "recipe": stated["recipe"], "dataset": "cifar10", "sha256": sha, "file": ckpt_path.name,
            "license": stated["license"], "reference": stated["reference"],
            "training": stated.get("training", {}),
            "format": fmt, "runtime": runtime_of(fresh),
            "extra": {**stated["extra"], "submission": {
                "checkpoint_file": Path(checkpoint).name, "checkpoint_sha256": original_sha,
                "loaded_as": loaded_as, "random_at_test_time": stochastic,
                "submitted": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}},
        }, source=f"submission {name}")
        torch.manual_seed(seed)
        # the card's precision is the measured one, so the record's weight statistics are too
        result = evaluate(fresh, cfg, data=data, card=card_obj, command=command,
                          flags={"submitted"} | (set() if has_card else {"no-card"}),
                          submission={"loaded_as": loaded_as, "random_at_test_time": stochastic,
                                      "clean_acc_floor": min_clean_acc, "battery": battery,
                                      "checkpoint_sha256": original_sha})
        # the gradient-masking report, stored with the entry (a probe on the stored model)
        diagnose_result(result, fresh, data, device=device, command=command)
        staging.replace(ckpt_path)
        card_obj.write(card_path)
        write_result(result, result_path)
    finally:
        staging.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            staging_dir.rmdir()
    return Submission(card_path, ckpt_path, result_path, result)

