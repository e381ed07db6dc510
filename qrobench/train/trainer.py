"""The training loop: adversarial training (PGD-10 or N-FGSM), BinaryRelax, trade-off loss.

Resumable bit for bit: each epoch draws its data order, augmentation, attack noise and
EnResNet noise from generators seeded by (seed, epoch), and a checkpoint holding model,
optimizer, scheduler and selection state is written after every epoch. Model selection
uses a held-out tail of the training set, never the test set.
"""

from __future__ import annotations

import csv
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..attacks.pgd import PGD
from ..data.cifar10 import EvalData
from ..engine.seeding import (
    ATTACK_GENERATOR,
    ATTACK_NOISE,
    EPOCH_DATA,
    EPOCH_NOISE,
    SCORE_NOISE,
    TRAINING,
    VALIDATION,
    batch_seed,
    generator,
    predict,
)
from ..files import atomic_path
from ..models.noise import noise_seed, seed_noise
from ..models.registry import create_model
from ..quant.layers import quantized_layers, set_quant_mode
from .augment import crop_flip
from .recipes import Recipe

LOG_FIELDS = ["epoch", "lr", "br_lambda", "phase", "train_loss", "train_acc", "val_clean",
              "val_pgd10", "epoch_time_s", "selected"]


@dataclass
class TrainConfig:
    name: str
    architecture: str
    arch_args: dict
    recipe: Recipe
    out_dir: Path
    seed: int = 0
    val_n: int = 1000  # held-out tail of the training set for model selection
    train_n: int | None = None  # use only the first N training images (tests)
    tradeoff: tuple[float, float] | None = None  # (w_adv, w_natural); None = adversarial only
    init_state: dict | None = field(default=None, repr=False)  # float weights to start from
    init_from: str | None = None
    device: str = "cpu"
    progress: bool = True
    channels_last: bool = True
    stop_after_epoch: int | None = None  # stop early (to split a long run into pieces)
    build: Callable[[], nn.Module] | None = field(default=None, repr=False)  # a toolkit's network, not a registered one


def _is_quantized(model: nn.Module) -> bool:
    return any(m.is_quantized for _, m in quantized_layers(model))


def _epoch_phase(cfg: TrainConfig, epoch: int) -> tuple[str, float]:
    r = cfg.recipe
    lam = r.br_lambda0 * r.br_rho ** epoch
    return ("hard" if epoch >= r.br_hard_epoch else "relax"), lam


def _make_scheduler(opt, r: Recipe, steps_per_epoch: int):
    total = r.epochs * steps_per_epoch
    if r.schedule == "onecycle":
        warm = max(1, int(r.warmup_frac * total))

        def f(step):
            if step < warm:
                return (step + 1) / warm
            return max(0.0, (total - step) / max(1, total - warm))
    else:
        ms = [m * steps_per_epoch for m in r.milestones]

        def f(step):
            return 0.1 ** sum(step >= m for m in ms)
    return torch.optim.lr_scheduler.LambdaLR(opt, f)


def _adversarial(model, x, y, r: Recipe, g: torch.Generator):
    if r.adversary == "none":
        return x
    if r.adversary == "nfgsm":
        noise = (torch.rand(x.shape, generator=g) * 2 - 1).to(x.device) * (2 * r.eps)
        xn = (x + noise).clamp(0, 1).requires_grad_(True)
        loss = F.cross_entropy(model(xn), y)
        (grad,) = torch.autograd.grad(loss, xn)
        return (xn.detach() + r.eps * grad.sign()).clamp(0, 1)
    if r.adversary == "pgd10":  # the evaluation's PGD, returning its last iterate as Madry et al.
        atk = PGD(model, steps=r.pgd_steps, step_size=r.pgd_step, random_start=True, loss="ce",
                  eps=r.eps, device=x.device, returns="last")
        return atk.perturb(x, y, generator=g)
    raise ValueError(f"unknown adversary {r.adversary!r}")


def training_loss(model, x, x_adv, y, tradeoff: tuple[float, float] | None = None):
    """CE on the adversarial batch, or the trade-off loss w_adv·CE(f(x_adv), y) + w_nat·CE(f(x), y)
    (both through the same relaxed/quantized, noisy network). Returns (loss, adversarial logits)."""
    logits = model(x_adv)
    loss = F.cross_entropy(logits, y)
    if tradeoff is not None:
        w_adv, w_nat = tradeoff
        loss = w_adv * loss + w_nat * F.cross_entropy(model(x), y)
    return loss, logits


def validate(model: nn.Module, data: EvalData, seed: int, bs: int = 250) -> tuple[float, float]:
    """Clean and PGD-10 (2/255, random start) accuracy on the held-out split, in eval mode."""
    model.eval()
    device = next(model.parameters()).device
    atk = PGD(model, steps=10, step_size=2 / 255, random_start=True, loss="ce", device=device)
    clean = int((predict(model, data.x, bs, device, (seed, VALIDATION, 0)) == data.y).sum())
    robust = 0
    for b, i in enumerate(range(0, len(data), bs)):
        x, y = data.x[i:i + bs].to(device), data.y[i:i + bs].to(device)
        with noise_seed(model, batch_seed(seed, VALIDATION, b, ATTACK_NOISE), device):
            x_adv = atk.perturb(x, y, generator=generator(device, seed, VALIDATION, b, ATTACK_GENERATOR))
        with torch.no_grad(), noise_seed(model, batch_seed(seed, VALIDATION, b, SCORE_NOISE), device):
            robust += int((model(x_adv).argmax(1) == y).sum())
    return clean / len(data), robust / len(data)


def _save_state(path: Path, state: dict) -> None:
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def selection_metric(recipe) -> str:
    """What a checkpoint is selected on: held-out PGD-10 accuracy, or clean accuracy for a
    natural recipe (whose PGD-10 accuracy is ~0 at every epoch and would pick at random)."""
    return "clean" if recipe.adversary == "none" else "PGD-10"


def selection_score(recipe, val_clean: float, val_pgd: float) -> float:
    return val_clean if selection_metric(recipe) == "clean" else val_pgd


def train(cfg: TrainConfig, train_data: EvalData, resume: bool = False) -> nn.Module:
    """Train and return the selected model (quantized layers left in 'hard' mode)."""
    torch.manual_seed(cfg.seed)
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    r = cfg.recipe
    model = cfg.build() if cfg.build is not None else create_model(cfg.architecture, **cfg.arch_args)
    quantized = _is_quantized(model)
    if cfg.init_state is not None:
        missing, unexpected = model.load_state_dict(cfg.init_state, strict=False)
        if unexpected or [k for k in missing if not k.endswith("weight_scale")]:
            raise ValueError(f"init weights do not fit: missing {missing}, unexpected {unexpected}")
    mf = torch.channels_last if cfg.channels_last else torch.contiguous_format
    model = model.to(cfg.device, memory_format=mf)

    n_total = len(train_data) if cfg.train_n is None else min(cfg.train_n + cfg.val_n, len(train_data))
    n_train = n_total - cfg.val_n
    if n_train <= 0:
        raise ValueError("not enough training images left after the held-out split")
    xs, ys = train_data.x[:n_train], train_data.y[:n_train]
    val = EvalData(train_data.x[n_train:n_total], train_data.y[n_train:n_total], "train-holdout")
    steps_per_epoch = math.ceil(n_train / r.batch_size)

    opt = torch.optim.SGD(model.parameters(), lr=r.lr, momentum=r.momentum, nesterov=r.nesterov,
                          weight_decay=r.weight_decay)
    sched = _make_scheduler(opt, r, steps_per_epoch)
    start_epoch, best = 0, {"score": -1.0, "epoch": -1}
    ckpt = out / "last.pt"
    if resume and ckpt.exists():
        st = torch.load(ckpt, weights_only=True, map_location=cfg.device)
        model.load_state_dict(st["model"])
        opt.load_state_dict(st["optimizer"])
        sched.load_state_dict(st["scheduler"])
        start_epoch, best = st["epoch"] + 1, st["best"]
    log_path = out / "log.csv"
    if not (resume and log_path.exists()):
        with open(log_path, "w", newline="") as f:
            csv.writer(f).writerow(LOG_FIELDS)
    (out / "config.json").write_text(json.dumps(
        {"name": cfg.name, "architecture": cfg.architecture, "arch_args": cfg.arch_args,
         "recipe": r.as_dict(), "seed": cfg.seed, "val_n": cfg.val_n, "train_n": n_train,
         "tradeoff": cfg.tradeoff, "init_from": cfg.init_from}, indent=2))

    for epoch in range(start_epoch, r.epochs):
        t0 = time.perf_counter()
        phase, lam = _epoch_phase(cfg, epoch)
        if quantized:
            set_quant_mode(model, phase, lam)
        g = generator("cpu", cfg.seed, TRAINING, epoch, EPOCH_DATA)
        seed_noise(model, batch_seed(cfg.seed, TRAINING, epoch, EPOCH_NOISE), cfg.device)
        perm = torch.randperm(n_train, generator=g)
        model.train()
        tot_loss = tot_correct = seen = 0
        bar = tqdm(range(steps_per_epoch), desc=f"{cfg.name} epoch {epoch + 1}/{r.epochs}",
                   disable=not cfg.progress, leave=False)
        for s in bar:
            idx = perm[s * r.batch_size:(s + 1) * r.batch_size]
            x = crop_flip(xs[idx], g).to(cfg.device, memory_format=mf)
            y = ys[idx].to(cfg.device)
            x_adv = _adversarial(model, x, y, r, g)
            loss, logits = training_loss(model, x, x_adv, y, cfg.tradeoff)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            tot_loss += float(loss.detach()) * len(y)
            tot_correct += int((logits.argmax(1) == y).sum())
            seen += len(y)
            bar.set_postfix(loss=f"{tot_loss / seen:.3f}", acc=f"{tot_correct / seen:.3f}")
        bar.close()
        if quantized:
            set_quant_mode(model, "hard")
        val_clean, val_pgd = validate(model, val, cfg.seed)
        selectable = (not quantized) or phase == "hard" or epoch == r.epochs - 1
        score = selection_score(r, val_clean, val_pgd)
        selected = selectable and score >= best["score"]
        if selected:
            best = {"score": score, "val_pgd10": val_pgd, "val_clean": val_clean, "epoch": epoch}
            _save_state(out / "best.pt", {"model": model.state_dict(), "epoch": epoch})
        dt = time.perf_counter() - t0
        with open(log_path, "a", newline="") as f:
            csv.writer(f).writerow([epoch + 1, f"{sched.get_last_lr()[0]:.6f}", f"{lam:.4f}" if quantized else "",
                                    phase if quantized else "float", f"{tot_loss / seen:.4f}",
                                    f"{tot_correct / seen:.4f}", f"{val_clean:.4f}", f"{val_pgd:.4f}",
                                    f"{dt:.1f}", int(selected)])
        _save_state(ckpt, {"model": model.state_dict(), "optimizer": opt.state_dict(),
                           "scheduler": sched.state_dict(), "epoch": epoch, "best": best})
        if cfg.progress:
            print(f"{cfg.name} epoch {epoch + 1}/{r.epochs}: loss {tot_loss / seen:.4f} "
                  f"train acc {tot_correct / seen:.3f} val clean {val_clean:.3f} "
                  f"val pgd10 {val_pgd:.3f} ({dt:.0f} s){' *' if selected else ''}", flush=True)
        if cfg.stop_after_epoch is not None and epoch + 1 >= cfg.stop_after_epoch and epoch + 1 < r.epochs:
            break
    seed_noise(model, None)
    if (out / "best.pt").exists():
        model.load_state_dict(torch.load(out / "best.pt", weights_only=True)["model"])
    if quantized:
        set_quant_mode(model, "hard")
    return model.to(memory_format=torch.contiguous_format).eval()


def finished(cfg: TrainConfig) -> bool:
    ckpt = Path(cfg.out_dir) / "last.pt"
    if not ckpt.exists():
        return False
    return torch.load(ckpt, weights_only=True)["epoch"] + 1 >= cfg.recipe.epochs
