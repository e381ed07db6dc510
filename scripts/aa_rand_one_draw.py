"""Does `aa-rand` carry the one-draw bias that first-success carried for pgd20 (protocol §6.4)?

pyautoattack's rand version decides "broken" from one noise draw in three places (clean check,
cascade flags after APGD-CE, APGD's x_best_adv), and the engine scores what it returns with a
fresh draw. This compares, on one randomised zoo model's first N points:
  A: pyautoattack's `run_standard_evaluation(version="rand")` over the clean-correct points, seeded
     as the engine's `aa-rand` seeded it until this check's result made it run B's way on randomised
     models (so the script still measures what it measured);
  B: its two parts, APGD-CE and APGD-DLR (100 iterations, 20 EOT draws, 1 restart, the same
     settings), each run on every clean-correct point and returning its highest-EOT-loss iterate
     (pyautoattack's x_best) instead of the last one-draw-misclassified one; a point survives B
     when both parts' examples are classified correctly.
Both are scored on the same clean-correct points with D fresh noise draws (mean and spread over
draws), so the comparison does not rest on one draw either. Writes JSON to --output.

    OMP_NUM_THREADS=1 python scripts/aa_rand_one_draw.py --model enres20-fp --n 60 \
        --output benchmarks/measured/aa-rand-one-draw-enres20-fp.json

A long check runs in pieces of consecutive points (--start S --n N: points [S, S+N)), one
process each, and --combine joins the pieces' robust counts draw by draw (draw d of every piece
is an independent fresh draw, so the sums are again one scoring draw over all the points):

    python scripts/aa_rand_one_draw.py --combine piece0.json piece1.json … --output all.json
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import time
from pathlib import Path

import torch


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="enres20-fp")
    p.add_argument("--n", type=int, default=60)
    p.add_argument("--start", type=int, default=0, help="first test point (pieces of one long check)")
    p.add_argument("--combine", nargs="+", metavar="PIECE", help="join pieces' JSON files instead of attacking")
    p.add_argument("--draws", type=int, default=5, help="fresh noise draws that score each example")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--output", required=True)
    args = p.parse_args()
    if args.combine:
        combine(args.combine, args.output)
        return

    from pyautoattack import AutoAttack
    from pyautoattack.autopgd_base import APGDAttack

    import qrobench
    from qrobench.data.registry import load_test_set
    from qrobench.engine.hardware import cpu_info
    from qrobench.models.noise import is_stochastic, noise_seed
    from qrobench.protocol import parse_eps
    from qrobench.zoo.store import Zoo

    t0 = time.perf_counter()
    model, card = Zoo().load(args.model)
    model.eval().requires_grad_(False)
    if not is_stochastic(model):
        raise SystemExit(f"{args.model} is not randomised: nothing to check")
    data = load_test_set("cifar10", args.start + args.n, None)
    data_x, data_y = data.x[args.start:], data.y[args.start:]
    eps = parse_eps("8/255")

    def predict(x, draw: int) -> torch.Tensor:
        with torch.inference_mode(), noise_seed(model, 10_000 + draw):
            return model(x).argmax(1)

    with noise_seed(model, args.seed):
        with torch.inference_mode():
            correct = model(data_x).argmax(1) == data_y  # one clean draw, as the engine's clean pass
    x, y = data_x[correct], data_y[correct]

    timings = {}
    t = time.perf_counter()
    aa_seed = int(torch.randint(0, 2**31 - 1, (1,), generator=torch.Generator().manual_seed(args.seed)))
    aa = AutoAttack(model, eps=eps, norm="Linf", version="rand", device=torch.device("cpu"), seed=aa_seed)
    aa.logger, aa.verbose = logging.getLogger("aa_rand_one_draw"), False
    with noise_seed(model, args.seed + 1):
        x_a, _ = aa.run_standard_evaluation(x.contiguous(), y, batch_size=len(x))
        x_a = x_a.detach()
    timings["A_aa_rand_s"] = time.perf_counter() - t

    parts = {}
    for loss in ("ce", "dlr"):
        t = time.perf_counter()
        atk = APGDAttack(model, n_iter=100, n_restarts=1, eps=eps, norm="Linf", loss=loss, rho=0.75,
                         eot_iter=20, seed=args.seed, device=torch.device("cpu"))
        with noise_seed(model, args.seed + 2):
            torch.manual_seed(args.seed)
            atk.init_hyperparam(x)  # what perturb() does first
            x_best, _, _, _ = atk.attack_single_run(x.clone(), y.clone())
        parts[loss] = x_best.detach()
        assert float((x_best - x).abs().max()) <= eps + 1e-6
        timings[f"B_apgd_{loss}_s"] = time.perf_counter() - t

    a_acc, b_acc, ce_acc, dlr_acc = [], [], [], []
    per_point = {"index": (torch.nonzero(correct).flatten() + args.start).tolist(),
                 "a": [], "ce": [], "dlr": []}  # per draw, 1 where the point survived
    for d in range(args.draws):
        ok_a = predict(x_a, 2 * d) == y
        ok_ce = predict(parts["ce"], 2 * d) == y
        ok_dlr = predict(parts["dlr"], 2 * d + 1) == y  # the two parts meet independent draws
        n = args.n
        a_acc.append(float(ok_a.sum()) / n)
        ce_acc.append(float(ok_ce.sum()) / n)
        dlr_acc.append(float(ok_dlr.sum()) / n)
        b_acc.append(float((ok_ce & ok_dlr).sum()) / n)
        for key, ok in (("a", ok_a), ("ce", ok_ce), ("dlr", ok_dlr)):
            per_point[key].append(ok.int().tolist())

    out = {"model": args.model, "card_sha256": card.sha256, "start": args.start, "n": args.n,
           "clean_correct": int(correct.sum()),
           "seed": args.seed, "scoring_draws": args.draws, "eps": eps,
           "A_aa_rand": summary(a_acc), "B_parts_worst": summary(b_acc),
           "B_apgd_ce": summary(ce_acc), "B_apgd_dlr": summary(dlr_acc), "per_point": per_point,
           "accuracies": "fractions of the n points (robust points / n), scored with fresh noise draws",
           "timings": timings, "total_s": time.perf_counter() - t0, "threads": torch.get_num_threads(),
           "cpu": cpu_info(), "qrobench": qrobench.__version__,
           "command": f"OMP_NUM_THREADS={torch.get_num_threads()} python scripts/aa_rand_one_draw.py --model "
                      f"{args.model} --start {args.start} --n {args.n} --draws {args.draws} --seed {args.seed} --output {args.output}"}
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps({k: out[k] for k in ("A_aa_rand", "B_parts_worst", "B_apgd_ce", "B_apgd_dlr")}, indent=1))


def summary(v):
    return {"mean": statistics.fmean(v), "std": statistics.stdev(v) if len(v) > 1 else 0.0, "per_draw": v}


def combine(paths: list[str], output: str) -> None:
    """Sum the pieces' robust counts draw by draw; pieces must be one check cut at point boundaries."""
    pieces = [json.loads(Path(f).read_text()) for f in paths]
    for d in pieces:
        d.setdefault("start", 0)  # pieces written before --start began at point 0
    pieces.sort(key=lambda d: d["start"])
    first = pieces[0]
    for d in pieces:
        for key in ("model", "card_sha256", "seed", "scoring_draws", "eps"):
            if d[key] != first[key]:
                raise SystemExit(f"cannot combine: {key} differs ({d[key]!r} vs {first[key]!r})")
    end = first["start"]
    for d in pieces:
        if d["start"] != end:
            raise SystemExit(f"cannot combine: the pieces leave a gap or overlap at point {end}")
        end += d["n"]
    n = end - first["start"]
    out = {"model": first["model"], "card_sha256": first["card_sha256"], "start": first["start"], "n": n,
           "clean_correct": sum(d["clean_correct"] for d in pieces), "seed": first["seed"],
           "scoring_draws": first["scoring_draws"], "eps": first["eps"]}
    for key in ("A_aa_rand", "B_parts_worst", "B_apgd_ce", "B_apgd_dlr"):
        counts = [sum(round(d[key]["per_draw"][k] * d["n"]) for d in pieces) for k in range(first["scoring_draws"])]
        out[key] = summary([c / n for c in counts])
    # points the parts break that aa-rand leaves standing, per draw (pieces with per-point data)
    def a_only(d: dict, k: int) -> int:
        pp = d["per_point"]
        return sum(a and not (ce and dlr) for a, ce, dlr in zip(pp["a"][k], pp["ce"][k], pp["dlr"][k], strict=True))

    with_points = [d for d in pieces if "per_point" in d]
    out["a_survives_parts_break"] = {
        "per_draw": [sum(a_only(d, k) for d in with_points) for k in range(first["scoring_draws"])],
        "over_points": sum(d["n"] for d in with_points)}
    out["accuracies"] = first["accuracies"]
    out["total_s"] = sum(d["total_s"] for d in pieces)
    out["cpu"] = [d["cpu"] for d in pieces]
    out["pieces"] = [{"start": d["start"], "n": d["n"], "command": d["command"], "total_s": d["total_s"]}
                     for d in pieces]
    out["command"] = "python scripts/aa_rand_one_draw.py --combine " + " ".join(paths) + f" --output {output}"
    Path(output).parent.mkdir(parents=True, exist_ok=True)
    Path(output).write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps({k: out[k] for k in ("n", "A_aa_rand", "B_parts_worst", "a_survives_parts_break")}, indent=1))


if __name__ == "__main__":
    main()
