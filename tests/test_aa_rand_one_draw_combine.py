"""scripts/aa_rand_one_draw.py --combine: pieces of one long check join draw by draw into the
numbers of the whole range, and pieces that are not one check cut at point boundaries are refused."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "aa_rand_one_draw.py"


def _piece(start, n, a, ce, dlr, seed=0):
    """A piece whose per-point survival (lists per draw over its clean-correct points) is given."""
    draws = len(a)
    acc = lambda rows: {"mean": 0.0, "std": 0.0, "per_draw": [sum(r) / n for r in rows]}  # noqa: E731
    both = [[c & g for c, g in zip(cr, gr, strict=True)] for cr, gr in zip(ce, dlr, strict=True)]
    return {"model": "m", "card_sha256": "x", "start": start, "n": n, "clean_correct": len(a[0]), "seed": seed,
            "scoring_draws": draws, "eps": 8 / 255, "A_aa_rand": acc(a), "B_parts_worst": acc(both),
            "B_apgd_ce": acc(ce), "B_apgd_dlr": acc(dlr), "accuracies": "fractions", "total_s": 10.0,
            "cpu": {"name": "t"}, "command": f"piece {start}",
            "per_point": {"index": list(range(start, start + len(a[0]))), "a": a, "ce": ce, "dlr": dlr}}


def _combine(tmp_path, *pieces):
    files = []
    for i, p in enumerate(pieces):
        f = tmp_path / f"p{i}.json"
        f.write_text(json.dumps(p))
        files.append(str(f))
    out = tmp_path / "all.json"
    r = subprocess.run([sys.executable, str(SCRIPT), "--combine", *files, "--output", str(out)],
                       capture_output=True, text=True, timeout=300)
    return r, (json.loads(out.read_text()) if out.exists() else None)


def test_pieces_sum_draw_by_draw(tmp_path):
    # piece 1: points 0..3, 3 clean-correct; piece 2: points 4..9, 2 clean-correct; 2 draws
    p1 = _piece(0, 4, a=[[1, 1, 0], [1, 0, 0]], ce=[[1, 0, 0], [1, 1, 0]], dlr=[[1, 1, 1], [0, 1, 0]])
    p2 = _piece(4, 6, a=[[1, 1], [1, 1]], ce=[[0, 1], [1, 1]], dlr=[[1, 1], [1, 0]])
    r, out = _combine(tmp_path, p2, p1)  # order on the command line does not matter
    assert r.returncode == 0, r.stderr
    assert out["n"] == 10 and out["start"] == 0 and out["clean_correct"] == 5
    assert out["A_aa_rand"]["per_draw"] == [0.4, 0.3]  # (2 + 2) / 10, (1 + 2) / 10
    assert out["B_parts_worst"]["per_draw"] == [0.2, 0.2]  # (1 + 1) / 10, (1 + 1) / 10
    # points aa-rand keeps that the parts break: draw 0: p1 point 1, p2 point 0; draw 1: p1 point 0, p2 point 1
    assert out["a_survives_parts_break"] == {"per_draw": [2, 2], "over_points": 10}
    assert [p["start"] for p in out["pieces"]] == [0, 4]


def test_gap_and_other_seed_are_refused(tmp_path):
    p1 = _piece(0, 4, a=[[1]], ce=[[1]], dlr=[[1]])
    gap = _piece(5, 3, a=[[1]], ce=[[1]], dlr=[[1]])
    r, out = _combine(tmp_path, p1, gap)
    assert r.returncode != 0 and "gap" in r.stderr and out is None
    other = _piece(4, 3, a=[[1]], ce=[[1]], dlr=[[1]], seed=1)
    r, out = _combine(tmp_path, p1, other)
    assert r.returncode != 0 and "seed differs" in r.stderr and out is None
