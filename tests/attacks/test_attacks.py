"""The attack battery: registration, budgets, agreement with independent implementations."""

import pytest
import torch

from qrobench import evaluate
from qrobench.attacks import create_attack, list_attacks
from qrobench.attacks.gradient import project
from qrobench.data.cifar10 import EvalData
from qrobench.engine.seeding import generator
from qrobench.errors import QrobenchError
from qrobench.models import create_model

SMALL_EPS = 2 / 255  # at 8/255 a naturally trained model is at 0 % under every attack


def _subset(points: EvalData, n: int) -> EvalData:
    return EvalData(points.x[:n], points.y[:n], points.source)


def test_every_attack_in_the_protocol_is_registered():
    assert set(list_attacks()) >= {"fgsm", "pgd20", "ifgsm20", "cw", "cw-paper", "apgd-ce", "apgd-t",
                                   "fab-t", "square", "aa", "aa-rand", "eot-pgd20", "transfer"}


def test_pgd20_at_least_as_strong_as_torchattacks(tiny_trained, test_points):
    torchattacks = pytest.importorskip("torchattacks")
    pts = _subset(test_points, 120)
    ours = evaluate(tiny_trained, attacks=["pgd20"], n=120, data=pts, eps=SMALL_EPS, progress=False)
    ta = torchattacks.PGD(tiny_trained, eps=SMALL_EPS, alpha=2 / 255, steps=20, random_start=True)
    torch.manual_seed(0)
    x_adv = ta(pts.x, pts.y)
    with torch.no_grad():
        ta_acc = float((tiny_trained(x_adv).argmax(1) == pts.y).float().mean())
    # same settings; ours keeps mid-way successes, so it may only be stronger (tolerance: 2 points)
    assert ours["robust_acc"]["pgd20"] <= ta_acc + 2 / 120
    assert ta_acc < ours["clean_acc"]


def test_attacks_stay_in_the_eps_ball_and_image_range(tiny_trained, test_points):
    x, y = test_points.x[:8], test_points.y[:8]
    for name in ("fgsm", "pgd20", "ifgsm20", "cw", "cw-paper", "eot-pgd20", "apgd-ce"):
        atk = create_attack(name, tiny_trained, eps=SMALL_EPS)
        x_adv = atk.perturb(x, y, generator=torch.Generator().manual_seed(0))
        assert (x_adv - x).abs().max() <= SMALL_EPS + 1e-6, name
        assert x_adv.min() >= 0 and x_adv.max() <= 1, name


def test_apgd_ce_is_pyautoattack_called_directly(tiny_trained, test_points):
    """The wrapper adds nothing of its own: same seed, same points, the same adversarial images as
    pyautoattack's APGDAttack with AutoAttack's standard settings."""
    from pyautoattack.autopgd_base import APGDAttack

    x, y = test_points.x[:24], test_points.y[:24]
    with torch.no_grad():
        keep = tiny_trained(x).argmax(1) == y
    x, y = x[keep], y[keep]
    atk = create_attack("apgd-ce", tiny_trained, eps=SMALL_EPS)
    gen = torch.Generator().manual_seed(7)
    ours = atk.perturb(x, y, generator=gen)
    seed = atk._torch_seed(torch.Generator().manual_seed(7))
    direct = APGDAttack(tiny_trained, n_iter=100, n_restarts=1, eps=SMALL_EPS, norm="Linf", loss="ce",
                        rho=0.75, eot_iter=1, seed=seed, device=x.device).perturb(x, y)
    assert torch.equal(ours, direct)
    with torch.no_grad():
        robust = float((tiny_trained(ours).argmax(1) == y).float().mean())
    assert robust < 1.0  # the attack breaks some points at 2/255 on this weak model


def test_autoattack_parts_record_autoattacks_standard_settings(tiny_trained):
    s = {a: create_attack(a, tiny_trained).settings() for a in ("apgd-t", "fab-t", "square", "aa", "aa-rand")}
    assert s["square"]["n_queries"] == 5000 and s["square"]["p_init"] == 0.8
    assert s["apgd-t"]["implementation"] == "pyautoattack.APGDAttack_targeted" and s["apgd-t"]["n_target_classes"] == 9
    assert s["aa"]["attacks"] == ["apgd-ce", "apgd-t", "fab-t", "square"]
    assert s["aa-rand"]["attacks"] == ["apgd-ce", "apgd-dlr"] and s["aa-rand"]["eot_iter"] == 20


@pytest.mark.slow
def test_full_autoattack_and_fab(tiny_trained, test_points):
    pts = _subset(test_points, 10)
    r = evaluate(tiny_trained, attacks=["aa", "fab-t", "aa-rand"], n=10, data=pts, eps=SMALL_EPS,
                 progress=False)
    assert r.robust_acc["aa"] < r.clean_acc


def test_transfer_attack_uses_a_surrogate(tiny_trained, test_points):
    torch.manual_seed(1)
    other = create_model("preact_resnet", depth=8).eval()
    pts = _subset(test_points, 50)
    r = evaluate(tiny_trained, attacks=["transfer", "pgd20"], n=50, data=pts, eps=SMALL_EPS,
                 progress=False, attack_options={"transfer": {"surrogate": other}})
    assert r["robust_acc"]["transfer"] >= r["robust_acc"]["pgd20"]  # black-box is weaker here
    assert r["attacks"]["transfer"]["crafting"] == "pgd20"


def test_transfer_from_a_randomised_surrogate_is_repeatable(tiny_trained, test_points):
    torch.manual_seed(1)
    noisy = create_model("preact_resnet", depth=8, ensemble=2, noise_coef=0.5).eval()
    pts = _subset(test_points, 16)
    atk = create_attack("transfer", tiny_trained, eps=8 / 255, surrogate=noisy)
    runs = []
    for global_seed in (0, 1):  # the global RNG must not matter, only the attack's generator
        torch.manual_seed(global_seed)
        runs.append(atk.perturb(pts.x, pts.y, generator=torch.Generator().manual_seed(5)))
    assert torch.equal(runs[0], runs[1])
    other = atk.perturb(pts.x, pts.y, generator=torch.Generator().manual_seed(6))
    assert not torch.equal(runs[0], other)


def test_transfer_needs_a_surrogate_model(tiny_trained):
    with pytest.raises(QrobenchError, match="surrogate"):
        create_attack("transfer", tiny_trained, eps=SMALL_EPS)


def test_pgd_last_iterate_is_plain_madry_pgd(tiny_trained, test_points):
    """returns="last" (what training uses) is textbook PGD, written out here independently."""
    x, y = test_points.x[:16], test_points.y[:16]
    atk = create_attack("pgd20", tiny_trained, eps=SMALL_EPS, returns="last")
    ours = atk.perturb(x, y, generator=generator("cpu", 3))
    u = torch.rand(x.shape, generator=generator("cpu", 3))
    ref = project(x + (2 * u - 1) * SMALL_EPS, x, SMALL_EPS)
    for _ in range(20):
        ref.requires_grad_(True)
        loss = torch.nn.functional.cross_entropy(tiny_trained(ref), y)
        (g,) = torch.autograd.grad(loss, ref)
        ref = project(ref.detach() + 2 / 255 * g.sign(), x, SMALL_EPS)
    assert torch.equal(ours, ref)


def test_pgd_keeps_the_first_success_so_it_is_never_weaker_than_the_last_iterate(tiny_trained, test_points):
    x, y = test_points.x[:64], test_points.y[:64]
    first = create_attack("pgd20", tiny_trained, eps=SMALL_EPS).perturb(x, y, generator=generator("cpu", 1))
    last = create_attack("pgd20", tiny_trained, eps=SMALL_EPS, returns="last").perturb(
        x, y, generator=generator("cpu", 1))
    with torch.no_grad():
        fooled_first = tiny_trained(first).argmax(1) != y
        fooled_last = tiny_trained(last).argmax(1) != y
    assert bool((fooled_first | ~fooled_last).all())  # every point the last iterate fools, first fools too
