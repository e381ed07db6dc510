"""The engine's share of the pass bound: how close ``qrobench.evaluate`` (pgd20 + cw) comes to
the plain forward + backward throughput of the model for the passes it actually makes.

A first, untimed run records every forward pass the engine makes, in order: its batch size and
whether it took a gradient (the attacks' steps, whose batches shrink as points fall) or not
(the clean pass, the scoring pass after each attack, the gradient check). The bound replays
exactly those passes on the bare model (channels_last, CE loss, ``torch.autograd.grad`` for
the gradient passes, ``inference_mode`` for the rest) with no attack bookkeeping at all. Each
round replays the bound (pedantic's setup, timed here) and then times the engine, so that both
see the same load; the share is bound time / engine time, median over rounds.
"""

import statistics
import time

import torch
import torch.nn.functional as F

from qrobench import evaluate

GROUP = "engine vs its pass bound, pgd20 + cw, ResNet20, 128 images"


def _engine(model, points):
    r = evaluate(model, attacks=["pgd20", "cw"], n=len(points), data=points, batch_size=len(points),
                 progress=False, device="cpu")
    model.to(memory_format=torch.contiguous_format)
    return r


def _record_passes(model, points) -> list[tuple[int, bool]]:
    passes = []
    hook = model.register_forward_hook(
        lambda m, inp, out: passes.append((inp[0].shape[0], torch.is_grad_enabled())))
    try:
        _engine(model, points)
    finally:
        hook.remove()
    return passes


def _replay(model, points, passes) -> None:
    m = model.to(memory_format=torch.channels_last)
    x = points.x.contiguous(memory_format=torch.channels_last)
    for size, grad in passes:
        xb, yb = x[:size], points.y[:size]
        if grad:
            xi = xb.clone().requires_grad_(True)
            torch.autograd.grad(F.cross_entropy(m(xi), yb, reduction="sum"), xi)
        else:
            with torch.inference_mode():
                m(xb)
    model.to(memory_format=torch.contiguous_format)


def test_engine_pass_bound(benchmark, model, points):
    benchmark.group = GROUP
    passes = _record_passes(model, points)
    grad_images = sum(s for s, g in passes if g)
    bound_s = []

    def bound_first():
        t0 = time.perf_counter()
        _replay(model, points, passes)
        bound_s.append(time.perf_counter() - t0)

    r = benchmark.pedantic(_engine, args=(model, points), setup=bound_first, rounds=3, iterations=1)
    engine_s = list(benchmark.stats.stats.data)
    share = statistics.median(b / e for b, e in zip(bound_s, engine_s, strict=True))
    info = benchmark.extra_info
    info.update(robust_acc_pct=100 * r.worst_case_acc, grad_images=grad_images, passes=len(passes),
                bound_s=bound_s, engine_s=engine_s, share=share,
                engine_images_per_s=grad_images / statistics.median(engine_s),
                bound_images_per_s=grad_images / statistics.median(bound_s))
    # the attacks stop early: far fewer gradient images than 50 steps over every correct point
    assert 0 < grad_images < 50 * round(r.clean_acc * len(points))
    assert 0.5 < share < 1.2
