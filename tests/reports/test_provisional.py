"""No provisional rows in the ranked table (issue #27, item 1): a measured row without its battery's
AutoAttack (``aa``; ``aa-rand`` for a randomised model) gets no rank and no group and is listed
under "Provisional" with what it lacks, in every back-end."""

import io
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd

from qrobench.engine.results import Result, SeedResult
from qrobench.reports import html, render
from qrobench.reports.collect import ResultFile, select
from qrobench.reports.columns import is_ranked, lacking
from qrobench.reports.leaderboard import build_table, sort_table

N = 400


def _result(model, robust: dict[str, int], stochastic=False) -> ResultFile:
    """A result whose attack a leaves the first robust[a] points standing (all points clean)."""
    clean = np.ones(N, dtype=bool)
    masks = {a: np.arange(N) < k for a, k in robust.items()}
    r = Result(model=model, n=N, eps=8 / 255, precision="fp", bits=32, stochastic=stochastic,
               attacks={a: {} for a in robust}, per_seed=[SeedResult.from_masks(0, clean, masks)],
               size_bytes=4096, compression=1.0, sparsity=0.0, channel_sparsity=0.0, card_sha256="x")
    return ResultFile(Path(f"{model}.json"), r.summarize())


def _table(sort="worst_case") -> pd.DataFrame:
    rows = [
        _result("top", {"pgd20": 200, "aa": 200}),
        _result("no-aa", {"pgd20": 196, "square": 198}),  # between top and next, but without AutoAttack
        _result("next", {"pgd20": 192, "aa": 192}),
        _result("noisy-aa", {"pgd20": 300, "eot-pgd20": 300, "aa": 300}, stochastic=True),  # needs aa-rand
        _result("noisy", {"pgd20": 100, "eot-pgd20": 100, "aa-rand": 100}, stochastic=True),
    ]
    return sort_table(build_table(select(rows, {}, 8 / 255), {}), sort)


def test_the_rule_is_the_battery_s_autoattack():
    assert is_ranked(_result("m", {"aa": 1}).result) and not is_ranked(_result("m", {"aa-rand": 1}).result)
    assert is_ranked(_result("m", {"aa-rand": 1}, stochastic=True).result)
    assert not is_ranked(_result("m", {"aa": 1}, stochastic=True).result)
    assert lacking(_result("m", {"pgd20": 1, "aa": 1}).result) == ["fgsm", "cw", "square"]
    assert lacking(_result("m", {"pgd20": 1}, stochastic=True).result) == ["fgsm", "cw", "square", "eot-pgd20",
                                                                              "aa-rand"]


def test_ranks_count_ranked_rows_only_and_provisional_rows_follow_them():
    df = _table()
    assert list(df["model"]) == ["top", "next", "noisy", "noisy-aa", "no-aa"]
    assert list(df["rank"]) == [1, 2, 3, pd.NA, pd.NA]
    assert list(df["ranked"]) == [True, True, True, False, False]
    assert list(df["lacks"]) == ["fgsm, cw, square", "fgsm, cw, square", "fgsm, cw, square",
                                 "fgsm, cw, square, aa-rand", "fgsm, cw, aa"]
    assert all("no-autoattack" in f for f in df["flags"][3:]) and not any("no-autoattack" in f for f in df["flags"][:3])
    # another sort order keeps the rule: the provisional rows never take a rank
    by_clean = _table("pgd20")
    assert list(by_clean["model"]) == ["top", "next", "noisy", "noisy-aa", "no-aa"]
    assert list(by_clean["rank"][:3]) == [1, 2, 3]


def test_groups_chain_over_the_ranked_rows_only():
    """top and next differ on 8 points (McNemar p = 0.008); the provisional row between them, 4 points
    from either (p = 0.125), would have chained them into one group."""
    df = _table()
    groups = dict(zip(df["model"], df["group"], strict=True))
    assert groups["top"] == 1 and groups["next"] == 2
    assert groups["no-aa"] is pd.NA and groups["noisy-aa"] is pd.NA


def test_every_back_end_lists_the_provisional_rows_below_the_ranked_table():
    df = _table()
    md = render.to_markdown(df, None, 8 / 255, "worst_case")
    ranked_at, prov_at, all_at = md.index("| 1 "), md.index("## Provisional"), md.index("## All columns")
    assert ranked_at < prov_at < all_at
    block = md[prov_at:all_at]
    assert "Not ranked" in block and "RobustBench" in block
    assert re.search(r"\| no-aa +\|.*\| fgsm, cw, aa +\|", block)
    assert re.search(r"\| noisy-aa +\|.*\| fgsm, cw, square, aa-rand +\|", block)
    assert "no-aa" not in md[ranked_at:prov_at]  # not in the ranked table

    page = html.to_html(df, None, 8 / 255, "worst_case")
    compact, prov = (re.search(rf'<table class="{c}">(.*?)</table>', page, re.S).group(1) for c in ("compact",
                                                                                                    "provisional"))
    assert "no-aa" not in compact and "no-aa" in prov and "<th>lacks</th>" in prov
    assert page.index("<h2>Provisional</h2>") < page.index('<table class="provisional">') < page.index("<h2>All columns")

    csv = pd.read_csv(io.StringIO(render.to_csv(df)))
    assert list(csv["ranked"]) == [True, True, True, False, False] and csv["lacks"].iloc[-1] == "fgsm, cw, aa"
    rows = json.loads(render.to_json(df, None, 8 / 255, "worst_case", []))["rows"]
    assert [(r["rank"], r["ranked"]) for r in rows] == [(1, True), (2, True), (3, True), (None, False), (None, False)]


def test_no_provisional_block_when_every_row_is_ranked():
    df = _table()
    df = df[df["ranked"]].reset_index(drop=True)
    df.attrs = {"attacks": ["pgd20", "square", "aa", "eot-pgd20", "aa-rand"]}
    assert "## Provisional" not in render.to_markdown(df, None, 8 / 255, "worst_case")
    assert "<h2>Provisional" not in html.to_html(df, None, 8 / 255, "worst_case")
