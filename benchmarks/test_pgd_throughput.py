"""pgd20 throughput of qrobench beside torchattacks' PGD, same model and points, one run.

Run with ``tox -e bench`` (or ``pytest benchmarks -o addopts=""``); read the ratio of the
means, both measured side by side. The memory-format cases show why the engine runs
channels_last by default.
"""

import pytest
import torch

from qrobench.attacks import create_attack

GROUP = "pgd20, ResNet20, 128 images"


@pytest.mark.parametrize("fmt", ["contiguous", "channels_last"])
def test_qrobench_pgd20(benchmark, model, points, fmt):
    benchmark.group = GROUP
    mf = torch.channels_last if fmt == "channels_last" else torch.contiguous_format
    m = model.to(memory_format=mf)
    x = points.x.contiguous(memory_format=mf)
    atk = create_attack("pgd20", m)
    g = torch.Generator().manual_seed(0)
    x_adv = benchmark.pedantic(atk.perturb, args=(x, points.y, g), rounds=3, iterations=1)
    model.to(memory_format=torch.contiguous_format)
    assert (x_adv - points.x).abs().max() <= 8 / 255 + 1e-6


def test_qrobench_pgd20_compiled(benchmark, model, points):
    """The torch.compile trial (issue #18): pgd20 on ``torch.compile(model)`` (inductor, dynamic
    shapes, since the active batch shrinks). Compilation happens in an untimed warm-up round and
    is reported as ``compile_s``; the result must match eager pgd20 to float tolerance."""
    import time

    benchmark.group = GROUP
    m = model.to(memory_format=torch.channels_last)
    x = points.x.contiguous(memory_format=torch.channels_last)
    try:
        cm = torch.compile(m, dynamic=True)
        t0 = time.perf_counter()
        eager = create_attack("pgd20", m).perturb(x, points.y, torch.Generator().manual_seed(0))
        x_c = create_attack("pgd20", cm).perturb(x, points.y, torch.Generator().manual_seed(0))
        benchmark.extra_info["compile_s"] = time.perf_counter() - t0
    except Exception as e:  # no compiler toolchain: say so rather than fail the speed suite
        model.to(memory_format=torch.contiguous_format)
        pytest.skip(f"torch.compile unavailable here: {type(e).__name__}: {e}")
    atk = create_attack("pgd20", cm)
    x_adv = benchmark.pedantic(atk.perturb, args=(x, points.y, torch.Generator().manual_seed(0)),
                               rounds=3, iterations=1)
    with torch.no_grad():
        agree = (m(x_c).argmax(1) == m(eager).argmax(1)).float().mean().item()
    model.to(memory_format=torch.contiguous_format)
    benchmark.extra_info["agreement_with_eager"] = agree
    assert (x_adv - points.x).abs().max() <= 8 / 255 + 1e-6
    assert agree >= 0.97  # float reassociation may flip a point or two at the decision boundary


def test_torchattacks_pgd(benchmark, model, points):
    benchmark.group = GROUP
    torchattacks = pytest.importorskip("torchattacks")
    atk = torchattacks.PGD(model, eps=8 / 255, alpha=2 / 255, steps=20, random_start=True)
    x_adv = benchmark.pedantic(atk, args=(points.x, points.y), rounds=3, iterations=1)
    assert (x_adv - points.x).abs().max() <= 8 / 255 + 1e-6


def test_gradient_pass_bound(benchmark, model, points):
    """21 forward + backward passes over every point (20 steps and the final check): what
    pgd20 costs when no point may stop early, and no attack bookkeeping at all."""
    benchmark.group = GROUP
    m = model.to(memory_format=torch.channels_last)
    x = points.x.contiguous(memory_format=torch.channels_last)

    def passes():
        for _ in range(21):
            xi = x.clone().requires_grad_(True)
            loss = torch.nn.functional.cross_entropy(m(xi), points.y)
            (g,) = torch.autograd.grad(loss, xi)
        return g

    g = benchmark.pedantic(passes, rounds=3, iterations=1)
    model.to(memory_format=torch.contiguous_format)
    assert g.shape == points.x.shape and g.abs().sum() > 0


@pytest.mark.parametrize("fmt", ["contiguous", "channels_last"])
def test_clean_pass_memory_format(benchmark, model, points, fmt):
    benchmark.group = "clean forward (inference_mode), ResNet20, 128 images"
    mf = torch.channels_last if fmt == "channels_last" else torch.contiguous_format
    m = model.to(memory_format=mf)
    x = points.x.contiguous(memory_format=mf)

    def run():
        with torch.inference_mode():
            return m(x)

    out = benchmark.pedantic(run, rounds=5, iterations=1)
    model.to(memory_format=torch.contiguous_format)
    assert out.shape == (128, 10)
