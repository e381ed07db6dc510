"""pgd20 throughput of qrobench's engine beside torchattacks' PGD, same model and points.

Run with ``tox -e bench`` (or ``pytest benchmarks -o addopts=""``); the ratio of the two
means is the number to read, both measured in the same run.
"""

import pytest
import torch

from qrobench.attacks import create_attack

pytestmark = pytest.mark.benchmark(group="pgd20, ResNet20, 128 images", min_rounds=3, warmup=False)


def test_qrobench_pgd20(benchmark, model, points):
    atk = create_attack("pgd20", model)
    g = torch.Generator().manual_seed(0)
    x_adv = benchmark(atk.perturb, points.x, points.y, g)
    assert (x_adv - points.x).abs().max() <= 8 / 255 + 1e-6


def test_torchattacks_pgd(benchmark, model, points):
    torchattacks = pytest.importorskip("torchattacks")
    atk = torchattacks.PGD(model, eps=8 / 255, alpha=2 / 255, steps=20, random_start=True)
    x_adv = benchmark(atk, points.x, points.y)
    assert (x_adv - points.x).abs().max() <= 8 / 255 + 1e-6


@pytest.mark.parametrize("fmt", ["contiguous", "channels_last"])
def test_clean_pass_memory_format(benchmark, model, points, fmt):
    """Whether channels_last helps a CPU forward pass (measured, not assumed)."""
    benchmark.group = "clean forward, ResNet20, 128 images"
    mf = torch.channels_last if fmt == "channels_last" else torch.contiguous_format
    m = model.to(memory_format=mf)
    x = points.x.contiguous(memory_format=mf)

    def run():
        with torch.inference_mode():
            return m(x)

    assert benchmark(run).shape == (128, 10)
    model.to(memory_format=torch.contiguous_format)
