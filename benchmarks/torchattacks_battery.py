"""The pgd20 + cw battery done with torchattacks, as a whole process: the other side of
test_whole_process.py's comparison with ``qrobench run --attacks pgd20,cw``.

What a user without qrobench would run: load the zoo model, take the first ``--n`` test points
in the engine's batches (250), attack only each batch's clean-correct points with torchattacks'
``PGD`` (20 steps, α 2/255, random start) and ``UPGD(loss="margin")`` (30 steps, α 0.8/255, no
random start, no momentum), the settings of test_battery_speed.py, and count a point robust if
it survives both. Writes {"n", "clean_acc", "robust_acc", "attacked"} as JSON to ``--output``.

    python benchmarks/torchattacks_battery.py --n 1000 --output ta.json
"""

import argparse
import json

import torch
import torchattacks

from qrobench.data.registry import load_test_set
from qrobench.zoo.store import Zoo


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--batch-size", type=int, default=250)
    ap.add_argument("--output", required=True)
    args = ap.parse_args()

    model, _ = Zoo().load("res20-fp")
    model = model.eval().requires_grad_(False)
    data = load_test_set("cifar10", args.n)
    pgd = torchattacks.PGD(model, eps=8 / 255, alpha=2 / 255, steps=20, random_start=True)
    cw = torchattacks.UPGD(model, eps=8 / 255, alpha=0.8 / 255, steps=30, random_start=False,
                           loss="margin", decay=0.0)
    clean = robust = attacked = 0
    for s in range(0, args.n, args.batch_size):
        x, y = data.x[s:s + args.batch_size], data.y[s:s + args.batch_size]
        with torch.no_grad():
            ok = model(x).argmax(1) == y
        x, y = x[ok], y[ok]
        clean += int(ok.sum())
        attacked += len(x)
        if len(x) == 0:
            continue
        alive = torch.ones(len(x), dtype=torch.bool)
        for atk in (pgd, cw):
            x_adv = atk(x, y)
            with torch.no_grad():
                alive &= model(x_adv).argmax(1) == y
        robust += int(alive.sum())
    with open(args.output, "w") as f:
        json.dump({"n": args.n, "clean_acc": clean / args.n, "robust_acc": robust / args.n,
                   "attacked": attacked}, f)


if __name__ == "__main__":
    main()
