"""How much of a randomised model's worst case comes from scoring each column under its own noise draw?

Crafts each attack's examples once (the engine's seeding for seed 0), then scores every column
(clean + attacks) under ``--draws`` noise draws and reports, averaged over the draws:
- each column's accuracy;
- the worst case with a draw per column (how qrobench scored before the shared draw: column i
  under draw j + i·stride), and with one draw shared by every column (how it scores now);
- the mean over points of the smallest per-point probability of being correct over the columns
  (a worst case that charges one query per point);
- the same two worst cases for ``--null-columns`` copies of the clean column: a battery of
  attacks that change nothing, so every point it "breaks" is the draws' doing.
Writes a JSON (with the command) for docs/protocol.md §6.4:

  python scripts/score_draw_effect.py --model enres20-fp --n 200 --attacks fgsm,pgd20,cw,eot-pgd20 \
      --output benchmarks/measured/score-draw/enres20-fp__n200.json
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

import torch

import qrobench
from qrobench.attacks.base import create_attack
from qrobench.data.registry import load_test_set
from qrobench.engine.hardware import cpu_info
from qrobench.engine.seeding import ATTACK_GENERATOR, ATTACK_NOISE, batch_seed, generator, predict
from qrobench.models.noise import noise_seed

SCORING_STREAM = 0x5C0  # the draws used here for scoring, apart from the engine's streams


def correct_under_draws(model, x, y, draws: int, batch_size: int) -> torch.Tensor:
    """draws × n booleans: point i classified correctly under scoring draw j (whole batches, as the engine)."""
    return torch.stack([predict(model, x, batch_size, "cpu", (SCORING_STREAM, j)) == y for j in range(draws)])


def worst_cases(cols: torch.Tensor, stride: int) -> dict:
    """cols: columns × draws × n. Worst case under a draw per column vs one shared draw."""
    c, d, _ = cols.shape
    separate = [torch.stack([cols[i, (j + i * stride) % d] for i in range(c)]).all(0).float().mean() for j in range(d)]
    shared = [cols[:, j].all(0).float().mean() for j in range(d)]
    return {"separate_draws": round(100 * float(torch.stack(separate).mean()), 2),
            "shared_draw": round(100 * float(torch.stack(shared).mean()), 2),
            "min_point_probability": round(100 * float(cols.float().mean(1).min(0).values.mean()), 2)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", required=True)
    p.add_argument("--n", type=int, default=200)
    p.add_argument("--attacks", default="", help="comma-separated L∞ attacks (ε = 8/255); empty: none")
    p.add_argument("--draws", type=int, default=20)
    p.add_argument("--null-columns", type=int, default=8, help="columns of the do-nothing battery (clean + attacks)")
    p.add_argument("--batch-size", type=int, default=250)
    p.add_argument("--output", required=True)
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    data = load_test_set("cifar10", a.n)
    model = qrobench.load_model(a.model).eval()
    model.requires_grad_(False)
    x, y = data.x, data.y
    stride = max(1, a.draws // max(a.null_columns, 1 + len([s for s in a.attacks.split(",") if s])))
    clean = correct_under_draws(model, x, y, a.draws, a.batch_size)
    columns = {"clean": clean}
    for k, name in enumerate([s for s in a.attacks.split(",") if s], start=1):
        atk = create_attack(name, model, eps=8 / 255, norm="Linf", device="cpu", seed=0, randomised=True)
        adv = []
        for b, s in enumerate(range(0, a.n, a.batch_size)):
            with noise_seed(model, batch_seed(0, k, b, ATTACK_NOISE)):
                adv.append(atk.perturb(x[s:s + a.batch_size], y[s:s + a.batch_size],
                                       generator=generator("cpu", 0, k, b, ATTACK_GENERATOR)))
        columns[name] = correct_under_draws(model, torch.cat(adv), y, a.draws, a.batch_size)
        print(f"{name}: {100 * (columns[name] & clean).float().mean():.1f} %", flush=True)
    out = {
        "model": a.model, "n": a.n, "eps": "8/255", "draws": a.draws, "stride": stride,
        "note": "column accuracy: correct clean and on the column's examples under the same draw; "
                "worst cases AND the clean column and every attack column",
        "column_accuracy": {k: round(100 * float((v & clean).float().mean()), 2) for k, v in columns.items()},
        "battery": {"columns": list(columns), **worst_cases(torch.stack(list(columns.values())), stride)}
        if len(columns) > 1 else None,
        "null_battery": {"columns": a.null_columns, **worst_cases(clean.unsqueeze(0).expand(a.null_columns, -1, -1),
                                                                    stride)},
        "clean_one_draw": round(100 * float(clean.float().mean()), 2),
        "seconds": time.perf_counter() - t0, "threads": 1, "cpu": cpu_info()["name"],
        "versions": {"qrobench": qrobench.__version__, "torch": torch.__version__},
        "command": "python " + " ".join(shlex.quote(s) for s in [sys.argv[0], *(argv or sys.argv[1:])]),
    }
    Path(a.output).parent.mkdir(parents=True, exist_ok=True)
    Path(a.output).write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps({k: out[k] for k in ("column_accuracy", "battery", "null_battery")}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
