"""``qrobench submit``: evaluate a user's checkpoint under the leaderboard protocol and write its entry."""

from __future__ import annotations

import json

from .. import cli_options as opts
from ..errors import QrobenchError
from ..protocol import CLEAN_ACC_FLOOR, LEADERBOARD_N, battery_for


def add_submit_parser(sub) -> None:
    p = sub.add_parser("submit", help="evaluate your own checkpoint for the leaderboard and write its entry")
    p.add_argument("--name", required=True, help="entry name (a file name: letters, digits, . _ -)")
    p.add_argument("--checkpoint", default=None,
                   help="weights: .safetensors, or a state dict readable by torch.load(weights_only=True) "
                        "(a torch.ao int8 model's included); with --arch or --factory")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--arch", help="a qrobench architecture (see qrobench.models.list_models())")
    src.add_argument("--factory", help="your own model: package.module:factory returning an nn.Module "
                     "(Brevitas and torch.ao int8 models are detected from their module types)")
    src.add_argument("--onnx", metavar="FILE", help="an ONNX model (no --checkpoint), run by ONNX Runtime")
    opts.add_twin(p)
    p.add_argument("--arch-args", default=None, help="JSON object of keyword arguments for --arch/--factory")
    p.add_argument("--card", default=None, help="JSON card with recipe, license, reference (see README)")
    p.add_argument("--n", type=int, default=LEADERBOARD_N, help=f"first N test points (default {LEADERBOARD_N})")
    opts.add_attacks(p, None, f"default {','.join(battery_for(False))} ({','.join(battery_for(True))} for "
                     "models random at test time; eot-pgd20 is added to a given list for those)")
    p.add_argument("--output-dir", default=".", help="repository root to write model_zoo/ and results/zoo/ "
                   "under (default .)")
    p.add_argument("--min-clean-acc", type=float, default=CLEAN_ACC_FLOOR,
                   help=f"refuse models below this clean accuracy (fraction; default {CLEAN_ACC_FLOOR})")
    p.add_argument("--seed", type=int, default=0)
    opts.add_batch_size(p)
    opts.add_device(p)
    opts.add_data_dir(p)
    p.add_argument("--overwrite", action="store_true", help="replace an existing entry of that name")
    opts.add_quiet(p)
    p.set_defaults(func=cmd_submit)


def cmd_submit(args) -> int:
    from ..reports.console import format_result_table
    from ..zoo.twin import resolve_twin
    from .run import submit

    arch_args = None
    if args.arch_args is not None:
        try:
            arch_args = json.loads(args.arch_args)
        except json.JSONDecodeError as e:
            raise QrobenchError(f"--arch-args is not valid JSON ({e}); e.g. --arch-args '{{\"depth\": 20}}'") from e
    twin, _ = resolve_twin(args.twin)
    s = submit(args.name, args.checkpoint, arch=args.arch, factory=args.factory, onnx=args.onnx, twin=twin,
               arch_args=arch_args,
               card=args.card, n=args.n, attacks=args.attacks, output_dir=args.output_dir,
               min_clean_acc=args.min_clean_acc, seed=args.seed, data_dir=args.data_dir, device=args.device,
               batch_size=args.batch_size, overwrite=args.overwrite, progress=not args.quiet,
               command=opts.command_line(args.argv))
    print(format_result_table(s.result))
    print(f"card       {s.card_path}\ncheckpoint {s.checkpoint_path}\nresult     {s.result_path}")
    print("open a pull request adding these three files; 'qrobench leaderboard' shows the entry")
    return 0
