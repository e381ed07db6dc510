"""The committed leaderboard is exactly what the committed result files rebuild to.

Results are data: if a refactor of the record, the migration or the reports changed a single
byte of a table or plot built from the same files, this fails (and so does an edit of a
leaderboard output by hand, or a result change committed without 'qrobench leaderboard').
"""

import shutil
from pathlib import Path

import pytest

from qrobench.reports.build import write_leaderboard

REPO = Path(__file__).resolve().parents[2]
RESULTS = REPO / "results"


@pytest.fixture(scope="module")
def rebuilt(tmp_path_factory) -> Path:
    """The committed result folders only (a local, git-ignored results/runs/ does not count),
    built as 'qrobench leaderboard' builds them: from the repository root."""
    work, out = tmp_path_factory.mktemp("checkout"), tmp_path_factory.mktemp("leaderboard")
    for sub in sorted(p for p in RESULTS.iterdir() if p.is_dir() and p.name not in ("runs", "plots")):
        shutil.copytree(sub, work / "results" / sub.name)
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(work)
        write_leaderboard("results", out, REPO / "model_zoo")
    return out


def _outputs(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in [*root.glob("leaderboard.*"), *root.glob("plots/*")])


def test_the_same_files_are_written(rebuilt):
    assert _outputs(rebuilt) == _outputs(RESULTS)
    # md, csv, json, html; four leaderboard plots, a sweep plot per swept model, the threats-vs-bits
    # plot and the per-layer sparsity plot, each as png and svg
    assert len(_outputs(RESULTS)) == 4 + 2 * (4 + 2 + 1 + 1)


@pytest.mark.parametrize("name", _outputs(RESULTS))
def test_every_output_is_byte_identical(rebuilt, name):
    new, old = (rebuilt / name).read_bytes(), (RESULTS / name).read_bytes()
    # compared as a flag, not as bytes: pytest's diff of two large files takes many minutes
    same = new == old
    first = next((i for i, (a, b) in enumerate(zip(new.splitlines(), old.splitlines(), strict=False)) if a != b),
                 min(len(new.splitlines()), len(old.splitlines())))
    assert same, (f"{name} differs from a rebuild of results/ (first at line {first + 1}): run "
                  "'qrobench leaderboard' and commit, or find what changed the numbers")
