"""Shards: a fixed partition into whole batches whose merge equals the one-process run."""

import pytest
import torch

from qrobench import evaluate
from qrobench.data.cifar10 import EvalData
from qrobench.engine import write_result
from qrobench.engine.merge import merge_results
from qrobench.engine.shards import Shard, n_batches
from qrobench.errors import QrobenchError
from qrobench.models import create_model

N, BS = 44, 8  # 6 batches, the last one short


@pytest.mark.parametrize("n,bs", [(44, 8), (1000, 250), (10_000, 250), (7, 1), (250, 250)])
def test_shards_partition_the_batches_into_contiguous_runs(n, bs):
    nb = n_batches(n, bs)
    for k in range(1, min(nb, 7) + 1):
        ranges = [Shard(i, k).batches(n, bs) for i in range(k)]
        assert [b for r in ranges for b in r] == list(range(nb))  # every batch once, in order
        assert all(len(r) >= 1 for r in ranges) and max(map(len, ranges)) - min(map(len, ranges)) <= 1


def test_bad_shards_are_refused_with_the_fix():
    with pytest.raises(QrobenchError, match="counts from 0"):
        Shard.parse("3/3")
    with pytest.raises(QrobenchError, match="look like I/K"):
        Shard.parse("1of3")
    with pytest.raises(QrobenchError, match="too few for 8 shards"):
        Shard(0, 8).batches(44, 8)
    assert Shard.parse(" 2 / 5 ") == Shard(2, 5)


@pytest.fixture(scope="module")
def noisy(test_points):
    torch.manual_seed(0)
    model = create_model("preact_resnet", depth=8, ensemble=2, noise_coef=0.5)
    pts = EvalData(test_points.x[:N], test_points.y[:N], test_points.source)
    kw = dict(attacks=["fgsm", "pgd20"], n=N, data=pts, eps=4 / 255, progress=False, repeats=2, batch_size=BS)
    return model, kw, evaluate(model, **kw)


@pytest.mark.parametrize("k", [2, 3, 6])
def test_shards_of_a_randomised_model_merge_into_the_one_process_result(noisy, tmp_path, k):
    model, kw, whole = noisy
    files = []
    for i in reversed(range(k)):  # the order of the files does not matter
        r = evaluate(model, shard=Shard(i, k), **kw)
        assert r.first_index == Shard(i, k).batches(N, BS).start * BS and r.shard["count"] == k
        files.append(write_result(r, tmp_path / f"s{i}.json"))
    merged = merge_results(files)
    assert (merged.n, merged.first_index, merged.shard) == (N, 0, None)
    assert merged.clean_acc == whole.clean_acc and merged.robust_acc == whole.robust_acc
    assert merged.worst_case_acc == whole.worst_case_acc and merged.std == whole.std
    for a, b in zip(merged.per_seed, whole.per_seed, strict=True):
        assert a.outcomes == b.outcomes and a.robust_acc == b.robust_acc
    # the seeds differ, so equality above is not the trivial equality of identical seeds
    assert whole.per_seed[0].outcomes != whole.per_seed[1].outcomes


def test_an_incomplete_or_overlapping_set_of_shards_is_refused(noisy, tmp_path):
    model, kw, _ = noisy
    s = [write_result(evaluate(model, shard=Shard(i, 3), **kw), tmp_path / f"s{i}.json") for i in range(3)]
    with pytest.raises(QrobenchError, match="leave a gap"):
        merge_results([s[0], s[2]])
    with pytest.raises(QrobenchError, match="not all shards"):
        merge_results([s[1], s[2]])
    other = write_result(evaluate(model, shard=Shard(1, 2), **kw), tmp_path / "other.json")
    with pytest.raises(QrobenchError, match="overlap"):
        merge_results([s[0], s[1], other])
