"""``aa-rand`` on a randomised model: both parts on every point, the returned example chosen per
point by fresh noise draws, not by pyautoattack's one-draw decisions (docs/protocol.md §6.4)."""

import pytest
import torch
import torch.nn as nn

from qrobench.attacks import create_attack
from qrobench.models import create_model
from qrobench.models.noise import noise_seed

EPS = 8 / 255


def _linear():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 10))
    return model.eval().requires_grad_(False)


def test_each_point_gets_the_part_that_more_draws_misclassify(monkeypatch):
    """APGD-CE's example fools the model on point 0 only, APGD-DLR's on point 1 only, neither on
    point 2: the attack returns CE's for 0, DLR's for 1 and CE's (the tie rule) for 2."""
    from pyautoattack.autopgd_base import APGDAttack

    model = _linear()
    x = torch.rand(3, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        y = model(x).argmax(1)
    # a candidate "fools" a point when it is a far-away input the model labels otherwise
    far = {}
    for i in range(3):
        for t in range(50):
            z = torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(100 + 50 * i + t))
            with torch.no_grad():
                if model(z).argmax(1).item() != y[i].item():
                    far[i] = z[0]
                    break
    assert len(far) == 3
    ce, dlr = x.clone(), x.clone()
    ce[0], dlr[1] = far[0], far[1]
    calls = []

    def fake_perturb(self, x_in, y_in, best_loss=False, x_init=None):
        calls.append((self.loss, best_loss, self.eot_iter, self.n_iter, len(x_in)))
        return (ce if self.loss == "ce" else dlr).clone()

    monkeypatch.setattr(APGDAttack, "perturb", fake_perturb)
    atk = create_attack("aa-rand", model, eps=EPS, randomised=True)
    out = atk.perturb(x, y, generator=torch.Generator().manual_seed(0))
    assert calls == [("ce", True, 20, 100, 3), ("dlr", True, 20, 100, 3)]  # every point, best-loss iterate
    assert torch.equal(out[0], ce[0]) and torch.equal(out[1], dlr[1]) and torch.equal(out[2], x[2])


def test_settings_say_which_version_ran():
    model = _linear()
    rand = create_attack("aa-rand", model, randomised=True).settings()
    plain = create_attack("aa-rand", model).settings()
    assert rand["attacks"] == plain["attacks"] == ["apgd-ce", "apgd-dlr"]
    assert rand["eot_iter"] == plain["eot_iter"] == 20
    assert plain["implementation"] == "pyautoattack.AutoAttack" and "returns" not in plain
    assert "every point" in rand["implementation"] and "fresh noise draws" in rand["returns"]


@pytest.fixture(scope="module")
def noisy():
    torch.manual_seed(3)
    return create_model("preact_resnet", depth=8, ensemble=2, noise_coef=0.5).eval().requires_grad_(False)


def test_a_short_run_on_a_noisy_model_stays_in_the_ball_and_repeats(noisy):
    x = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    y = torch.arange(4)
    atk = create_attack("aa-rand", noisy, eps=EPS)
    assert atk.randomised  # found from the model's noise modules
    atk.n_iter, atk.eot_iter, atk.selection_draws = 4, 2, 3  # the full run is in the zoo's battery

    def run():
        with noise_seed(noisy, 11):
            return atk.perturb(x, y, generator=torch.Generator().manual_seed(5))

    a, b = run(), run()
    assert torch.equal(a, b)
    assert float((a - x).abs().max()) <= EPS + 1e-6 and a.min() >= 0 and a.max() <= 1
    assert not torch.equal(a, x)  # it moved the points
