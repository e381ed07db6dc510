"""The L2 threat model (ε = 0.5 on [0, 1] images): its battery, steps, random start and ball.

The attacks run on a small linear classifier built here (no training, no data folder). Its
points lie near grey 0.5, where its logits tie, and their labels are its own predictions, so
every point starts correct and lies well within 0.5 of a decision boundary: each attack
finishes within a few of its iterations (FAB-T and APGD-T, which always run all their
iterations and targets, are in the slow set; ``aa`` runs them in the fast one)."""

import math

import pytest
import torch
import torch.nn as nn

import qrobench
from qrobench.attacks import create_attack, list_attacks
from qrobench.attacks.base import EpsStep, UnknownNormError, attack_norms, ce_loss, register_attack
from qrobench.attacks.gradient import ascent_direction, distance, random_start
from qrobench.attacks.pgd import PGD
from qrobench.data.cifar10 import EvalData
from qrobench.errors import QrobenchError
from qrobench.protocol import battery_for, threat_model

EPS = 0.5
TOL = 1e-5  # the engine's tolerance on the ball (docs/protocol.md §6.1)
L2_BATTERY_ATTACKS = sorted({*battery_for(False, threat_model="l2"), *battery_for(True, threat_model="l2")})
SLOW = {"aa-rand", "apgd-t", "fab-t"}  # 20 EOT draws per gradient, or every iteration of every target


def _linear_model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 10))
    with torch.no_grad():
        model[1].weight.mul_(0.02 / model[1].weight.std())
        model[1].bias.copy_(-0.5 * model[1].weight.sum(1))  # all logits 0 at grey 0.5
    return model.eval().requires_grad_(False)


@pytest.fixture(scope="module")
def linear():
    model = _linear_model()
    x = 0.5 + 0.02 * (torch.rand(8, 3, 32, 32, generator=torch.Generator().manual_seed(1)) - 0.5)
    with torch.no_grad():
        y = model(x).argmax(1)  # every point starts correct
    assert len(set(y.tolist())) > 1
    return model, x, y


def test_l2_is_measured_and_its_battery_searches_the_l2_ball():
    assert threat_model("l2").implemented and threat_model("l2").default_eps == 0.5
    assert battery_for(False, threat_model="l2") == ["fgsm", "pgd20", "cw", "square", "aa"]
    assert battery_for(True, threat_model="l2") == ["fgsm", "pgd20", "cw", "square", "eot-pgd20", "aa-rand"]
    for name in L2_BATTERY_ATTACKS:
        assert "L2" in attack_norms(name), name
    assert battery_for(False) == battery_for(False, threat_model="linf")
    with pytest.raises(ValueError, match="no attack battery"):
        battery_for(False, threat_model="corruptions")


@pytest.mark.parametrize("name", [pytest.param(a, marks=[pytest.mark.slow] if a in SLOW else [])
                                  for a in [*L2_BATTERY_ATTACKS, "apgd-ce", "apgd-t", "fab-t"]])
def test_each_l2_attack_stays_in_the_l2_ball_and_breaks_points(linear, name):
    """The L2 ball of 0.5 holds L∞ perturbations of only about 0.009 per pixel; an attack that
    searched the L∞ ball of 0.5 instead would leave it by a factor of ~50."""
    model, x, y = linear
    atk = create_attack(name, model, eps=EPS, norm="L2")
    assert atk.settings()["norm"] == "L2" and atk.settings()["eps"] == EPS
    x_adv = atk.perturb(x, y, generator=torch.Generator().manual_seed(0))
    assert float(distance(x_adv - x, "L2").max()) <= EPS + TOL, name
    assert x_adv.min() >= 0 and x_adv.max() <= 1, name
    with torch.no_grad():
        fooled = model(x_adv).argmax(1) != y
    assert fooled.any(), f"{name} broke no point of a weak linear model in the L2 ball"


@pytest.mark.parametrize("name, version, eot_iter", [("aa", "standard", 1), ("aa-rand", "rand", 20)])
def test_autoattack_is_built_for_the_l2_ball(linear, monkeypatch, name, version, eot_iter):
    """pyautoattack's own objects get the L2 norm and ε (the full aa-rand run is in the slow set)."""
    import pyautoattack

    model, x, y = linear
    seen = {}

    def record(aa, x_orig, y_orig, bs=250, **kwargs):
        seen.update(norm=aa.norm, eps=aa.epsilon, parts=[aa.apgd.norm, aa.apgd_targeted.norm, aa.fab.norm,
                                                         aa.square.norm], eot=aa.apgd.eot_iter,
                    version=aa.version, attacks=list(aa.attacks_to_run))
        return x_orig, y_orig

    monkeypatch.setattr(pyautoattack.AutoAttack, "run_standard_evaluation", record)
    create_attack(name, model, eps=EPS, norm="L2").perturb(x, y, generator=torch.Generator().manual_seed(0))
    assert seen["norm"] == "L2" and seen["parts"] == ["L2"] * 4 and seen["eps"] == EPS
    assert seen["version"] == version and seen["eot"] == eot_iter
    assert seen["attacks"] == create_attack(name, model, norm="L2").settings()["attacks"]


def test_l2_step_sizes_follow_eps_and_steps():
    m = nn.Identity()
    for eps in (0.5, 1.0):
        assert create_attack("pgd20", m, norm="L2", eps=eps).step_size == pytest.approx(2.5 * eps / 20)
        assert create_attack("eot-pgd20", m, norm="L2", eps=eps).step_size == pytest.approx(2.5 * eps / 20)
        assert create_attack("cw", m, norm="L2", eps=eps).step_size == pytest.approx(2.5 * eps / 30)
    assert create_attack("pgd20", m, norm="L2").step_size == pytest.approx(0.0625)  # ε defaults to 0.5
    assert create_attack("pgd20", m, norm="L2").eps == 0.5 and create_attack("pgd20", m).eps == 8 / 255
    assert create_attack("pgd20", m, norm="L2", steps=40).step_size == pytest.approx(2.5 * 0.5 / 40)
    assert create_attack("pgd20", m, norm="L2", step_size=0.1).step_size == 0.1  # an explicit step wins
    assert create_attack("pgd20", m, eps=0.1).step_size == 2 / 255  # L∞: the fixed step, whatever ε
    assert EpsStep(2.5)(0.5, 20) == 0.0625


def test_one_l2_pgd_step_moves_alpha_along_the_normalised_gradient(linear):
    model, x, y = linear
    alpha = 0.1
    x_adv = PGD(model, steps=1, step_size=alpha, random_start=False, norm="L2", eps=EPS, returns="last").perturb(x, y)
    xr = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(ce_loss(model(xr), y).sum(), xr)
    expected = alpha * g / g.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
    assert torch.allclose(x_adv - x, expected, atol=1e-6)
    assert torch.allclose(distance(x_adv - x, "L2"), torch.full((len(x),), alpha), atol=1e-5)
    # FGSM in the L2 ball: one step of ε along the same direction (the fast gradient method)
    fgm = create_attack("fgsm", model, eps=EPS, norm="L2").perturb(x, y)
    assert torch.allclose(fgm - x, EPS / alpha * expected, atol=1e-5)
    # the L∞ direction is the sign, unchanged
    assert torch.equal(ascent_direction(g, "Linf"), torch.sign(g))


def test_l2_random_start_is_uniform_in_the_ball():
    """In d = 2 dimensions a uniform draw from the disc has P(r < ε/2) = 1/4; the L∞ cube's
    draw projected onto the disc would give π/16 ≈ 0.196, a radius-only draw 1/2."""
    x = torch.full((20000, 1, 1, 2), 0.5)
    eps = 0.25  # the disc lies inside [0, 1]², so nothing is clipped
    delta = random_start(x, eps, "L2", torch.Generator().manual_seed(3)) - x
    r = distance(delta, "L2")
    assert float(r.max()) <= eps + 1e-6
    assert 0.235 < float((r < eps / 2).float().mean()) < 0.265
    angle = torch.atan2(delta[:, 0, 0, 1], delta[:, 0, 0, 0])
    counts = torch.histc(angle, bins=8, min=-math.pi, max=math.pi)
    assert float(counts.min()) > 0.9 * 20000 / 8  # every direction equally likely
    again = random_start(x, eps, "L2", torch.Generator().manual_seed(3)) - x
    assert torch.equal(delta, again)  # one generator, one draw


def test_l_inf_only_attacks_refuse_l2():
    for name in ("ifgsm20", "cw-paper", "transfer"):
        assert attack_norms(name) == ("Linf",)
    with pytest.raises(UnknownNormError, match="Linf ball only, not L2"):
        create_attack("ifgsm20", nn.Identity(), norm="L2")
    with pytest.raises(QrobenchError, match=r"ifgsm20 do\(es\) not search the L2 ball of threat model 'l2'"):
        qrobench.make_config(["pgd20", "ifgsm20"], threat_model="l2")
    with pytest.raises(ValueError, match="has settings for L2 but searches Linf only"):
        register_attack("_test-linf-only", per_norm={"L2": {}})(type("LinfOnly", (PGD,), {"norms": ("Linf",)}))


def test_every_attack_lists_its_norms():
    for name in list_attacks():
        assert set(attack_norms(name)) <= {"Linf", "L2"} and "Linf" in attack_norms(name), name


def test_the_engine_runs_the_l2_battery_and_refuses_an_attack_that_leaves_the_ball(linear):
    model, x, y = linear
    data = EvalData(x, y, "linear-test")
    r = qrobench.evaluate(model, attacks=["fgsm", "pgd20", "cw"], n=len(x), data=data, threat_model="l2",
                          progress=False)
    assert (r.threat_model, r.norm, r.eps) == ("l2", "L2", 0.5)
    assert r.clean_acc == 1.0 and r.worst_case_acc < 1.0

    @register_attack("_test-l2-outside")
    class Outside(PGD):
        """Moves one pixel by 0.51: an L2 distance of 0.51, just outside the ball of 0.5."""

        def perturb(self, x, y, generator=None):
            out = x.clone()
            px = x[:, 0, 0, 0]
            out[:, 0, 0, 0] = torch.where(px < 0.49, px + 0.51, px - 0.51)
            return out

    with pytest.raises(RuntimeError, match="left the L2 ε-ball"):
        qrobench.evaluate(model, attacks=["_test-l2-outside"], n=len(x), data=data, threat_model="l2",
                          progress=False)


# Every L∞ attack's settings as docs/protocol.md §6.2 lists them (and as every stored result holds
# them): adding the L2 ball must not change one of them.
FIRST = "first misclassified iterate, else last"
LINF_SETTINGS = {
    "fgsm": {"steps": 1, "step_size": 8 / 255, "loss": "ce"},
    "pgd20": {"steps": 20, "step_size": 2 / 255, "random_start": True, "loss": "ce", "eot_iter": 1,
              "returns": FIRST},
    "ifgsm20": {"steps": 20, "step_size": 1 / 255, "random_start": False, "loss": "ce", "eot_iter": 1,
                "returns": FIRST},
    "cw": {"steps": 30, "step_size": 0.8 / 255, "random_start": False, "loss": "margin", "eot_iter": 1,
           "returns": FIRST},
    "eot-pgd20": {"steps": 20, "step_size": 2 / 255, "random_start": True, "loss": "ce", "eot_iter": 10,
                  "returns": FIRST},
    "cw-paper": {"optimizer": "adam", "iterations": 50, "lr": 6e-4, "c": 10.0, "final_scale": 0.031,
                 "target": "runner-up class"},
    "apgd-ce": {"implementation": "pyautoattack.APGDAttack", "loss": "ce", "n_iter": 100, "n_restarts": 1,
                "rho": 0.75, "eot_iter": 1},
    "apgd-t": {"implementation": "pyautoattack.APGDAttack_targeted", "loss": "dlr-targeted", "n_iter": 100,
               "n_restarts": 1, "n_target_classes": 9},
    "fab-t": {"implementation": "pyautoattack.FABAttack_PT", "targeted": True, "n_iter": 100, "n_restarts": 1,
              "n_target_classes": 9},
    "square": {"implementation": "pyautoattack.SquareAttack", "n_queries": 5000, "p_init": 0.8, "n_restarts": 1,
               "loss": "margin"},
    "aa": {"implementation": "pyautoattack.AutoAttack", "version": "standard",
           "attacks": ["apgd-ce", "apgd-t", "fab-t", "square"], "square_queries": 5000},
    "aa-rand": {"implementation": "pyautoattack.AutoAttack", "version": "rand", "attacks": ["apgd-ce", "apgd-dlr"],
                "eot_iter": 20},
}


@pytest.mark.parametrize("name", sorted(LINF_SETTINGS))
def test_linf_settings_are_unchanged(name):
    for kwargs in ({}, {"norm": "Linf"}):
        s = create_attack(name, nn.Identity(), **kwargs).settings()
        assert s == {"eps": 8 / 255, "norm": "Linf", **LINF_SETTINGS[name]}, name
    # a smaller ε changes ε only (and FGSM's step, which is ε)
    s = create_attack(name, nn.Identity(), eps=2 / 255).settings()
    expected = {**LINF_SETTINGS[name], **({"step_size": 2 / 255} if name == "fgsm" else {})}
    assert s == {"eps": 2 / 255, "norm": "Linf", **expected}, name


def test_transfer_settings_are_unchanged():
    surrogate = nn.Identity()
    surrogate.card = type("Card", (), {"name": "res20-fp"})()
    s = create_attack("transfer", nn.Identity(), surrogate=surrogate).settings()
    assert s == {"eps": 8 / 255, "norm": "Linf", "surrogate": "res20-fp", "crafting": "pgd20", "steps": 20,
                 "step_size": 2 / 255, "random_start": True}
    assert set(LINF_SETTINGS) | {"transfer"} >= set(a for a in list_attacks() if not a.startswith("_test"))
