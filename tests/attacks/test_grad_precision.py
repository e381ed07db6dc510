"""--grad-precision bf16: the PGD family's gradient passes in bfloat16, every success decided in fp32."""

import pytest
import torch
import torch.nn as nn

from qrobench import evaluate
from qrobench.attacks import create_attack
from qrobench.attacks.base import ce_loss
from qrobench.attacks.gradient import BF16_RECHECK_MARGIN, decision_logits, input_gradient
from qrobench.data.cifar10 import EvalData
from qrobench.engine import make_config
from qrobench.errors import QrobenchError

SMALL_EPS = 2 / 255


def _tie_model() -> nn.Module:
    """Two logits, x and 1.0001·x: class 1 wins in fp32, while bf16 (8 significant bits) rounds
    1.0001 to 1, ties the logits and argmax picks class 0."""
    lin = nn.Linear(1, 2, bias=False)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[1.0], [1.0001]]))
    return lin.eval().requires_grad_(False)


def test_a_bf16_rounding_never_counts_as_a_success():
    model, x, y = _tie_model(), torch.ones(1, 1), torch.tensor([1])
    _, bf16 = input_gradient(model, x, y, ce_loss, precision="bf16")
    assert bf16.argmax(1).item() == 0  # the planted case: bf16 alone would call the point fooled
    decided = decision_logits(model, x, y, bf16.clone(), "bf16")
    assert decided.argmax(1).item() == 1 and torch.equal(decided, model(x))
    # fp32 passes are decided from their own logits, untouched
    _, fp32 = input_gradient(model, x, y, ce_loss)
    assert decision_logits(model, x, y, fp32, "fp32") is fp32


def test_only_points_near_the_boundary_are_rechecked_in_fp32():
    model = _tie_model()
    logits = torch.tensor([[0.0, 5.0], [0.0, 0.1], [3.0, 0.0], [0.0, BF16_RECHECK_MARGIN + 1]])
    x, y = torch.ones(4, 1), torch.tensor([1, 1, 1, 1])
    seen = []
    model.register_forward_hook(lambda m, inp, out: seen.append(len(inp[0])))
    out = decision_logits(model, x, y, logits.clone(), "bf16")
    assert seen == [2]  # points 1 (margin -0.1) and 2 (fooled in bf16); 0 and 3 are far from it
    assert torch.equal(out[[0, 3]], logits[[0, 3]])
    assert torch.equal(out[[1, 2]], model(x[[1, 2]]))


def test_bf16_gradient_passes_run_in_bf16_and_are_recorded(tiny_trained, test_points):
    pts = EvalData(test_points.x[:60], test_points.y[:60], test_points.source)
    dtypes = []
    conv = next(m for m in tiny_trained.modules() if isinstance(m, nn.Conv2d))
    hook = conv.register_forward_hook(lambda m, inp, out: dtypes.append(out.dtype) if torch.is_grad_enabled() else None)
    try:
        r = evaluate(tiny_trained, attacks=["pgd20", "cw"], n=60, data=pts, eps=SMALL_EPS, progress=False,
                     grad_precision="bf16")
    finally:
        hook.remove()
    # every attack step in bf16; the one fp32 gradient pass is the engine's own gradient check
    assert dtypes.count(torch.float32) <= 1 and dtypes.count(torch.bfloat16) >= 20
    assert set(dtypes) <= {torch.float32, torch.bfloat16}
    assert r["attacks"]["pgd20"]["grad_precision"] == "bf16" and r["attacks"]["cw"]["grad_precision"] == "bf16"
    assert "bf16-gradients" in r["flags"]


def test_bf16_matches_fp32_within_a_few_points(tiny_trained, test_points):
    """Same points, same seeds: the clean pass and the scoring are fp32 in both runs, so only the
    gradients differ (98 % of their signs agree on res20-fp); the worst cases stay within a band."""
    n = 120
    pts = EvalData(test_points.x[:n], test_points.y[:n], test_points.source)
    runs = {p: evaluate(tiny_trained, attacks=["pgd20", "cw"], n=n, data=pts, eps=SMALL_EPS, progress=False,
                        grad_precision=p) for p in ("fp32", "bf16")}
    fp32, bf16 = runs["fp32"], runs["bf16"]
    assert bf16["clean_acc"] == fp32["clean_acc"]
    assert bf16["worst_case_acc"] < fp32["clean_acc"]  # the attack still works
    assert abs(bf16["worst_case_acc"] - fp32["worst_case_acc"]) <= 6 / n
    # an fp32 record keeps exactly the settings it always had
    assert "grad_precision" not in fp32["attacks"]["pgd20"] and "bf16-gradients" not in fp32["flags"]


def test_bf16_x_adv_stays_in_the_ball(tiny_trained, test_points):
    x, y = test_points.x[:16], test_points.y[:16]
    for name in ("pgd20", "cw", "ifgsm20"):
        atk = create_attack(name, tiny_trained, eps=SMALL_EPS, grad_precision="bf16")
        x_adv = atk(x, y, generator=torch.Generator().manual_seed(0))
        assert x_adv.dtype == torch.float32
        assert (x_adv - x).abs().max() <= SMALL_EPS + 1e-6 and x_adv.min() >= 0 and x_adv.max() <= 1, name


def test_bad_grad_precision_is_refused_with_the_choices():
    with pytest.raises(QrobenchError, match="fp32, bf16"):
        make_config(["pgd20"], grad_precision="fp16")
    with pytest.raises(QrobenchError, match="PGD family"):
        make_config(["square"], grad_precision="bf16")
    cfg = make_config(["pgd20", "square", "cw"], grad_precision="bf16")
    assert cfg.attack_options == {"pgd20": {"grad_precision": "bf16"}, "cw": {"grad_precision": "bf16"}}
    with pytest.raises(ValueError, match="grad_precision"):
        create_attack("pgd20", _tie_model(), grad_precision="half")


def test_seeds_of_different_precision_do_not_merge(tiny_trained, test_points, tmp_path):
    from qrobench.engine import write_result
    from qrobench.engine.merge import merge_results

    pts = EvalData(test_points.x[:20], test_points.y[:20], test_points.source)
    paths = [write_result(evaluate(tiny_trained, attacks=["pgd20"], n=20, seed=s, data=pts, eps=SMALL_EPS,
                                   progress=False, grad_precision=p), tmp_path / f"{p}.json")
             for s, p in ((0, "fp32"), (1, "bf16"))]
    with pytest.raises(QrobenchError, match="attacks"):
        merge_results(paths)
