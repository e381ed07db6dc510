"""The one evaluation config: validated once, in words for the API and the CLI alike, and the
threat model / data set axes it carries to the attacks, the engine and the record."""

import dataclasses

import pytest
import torch

import qrobench
from qrobench.attacks.base import UnknownNormError, create_attack
from qrobench.attacks.gradient import distance, project, random_start
from qrobench.data.registry import check_dataset, list_datasets, load_test_set
from qrobench.engine import EvalConfig, evaluate, make_config
from qrobench.engine.results import Result
from qrobench.errors import QrobenchError, UnknownNameError
from qrobench.protocol import LEADERBOARD_EPS, THREAT_MODELS, threat_model


def test_defaults_come_from_the_threat_model_and_are_recorded():
    cfg = make_config(["fgsm"], n=5)
    assert (cfg.threat_model, cfg.dataset, cfg.norm, cfg.eps) == ("linf", "cifar10", "Linf", LEADERBOARD_EPS)
    assert cfg.attacks == ("fgsm",)  # a tuple: the config is frozen all the way down
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.n = 10


@pytest.mark.parametrize("fields, words", [
    (dict(attacks=("pgd2000",)), "unknown attack 'pgd2000'"),
    (dict(attacks=("fgsm", "fgsm")), r"attacks \(--attacks\) lists fgsm twice"),
    (dict(attacks=()), r"attacks \(--attacks\) needs at least one"),
    (dict(n=0), r"n \(--n\) must be a positive whole number"),
    (dict(n=2.5), r"n \(--n\)"),
    (dict(batch_size=-1), r"batch_size \(--batch-size\)"),
    (dict(repeats=0), r"repeats \(--repeats\)"),
    (dict(seed=-1), r"seed \(--seed\)"),
    (dict(eps=8), r"eps \(--eps\) is the L∞ radius"),
    (dict(threat_model="l3"), r"threat_model \(--threat-model\): unknown threat model 'l3'"),
    (dict(threat_model="corruptions"), "is no ε-ball, so no attack battery"),
    (dict(threat_model="bit-flip"), "perturbs the stored weights"),
    (dict(dataset="imagenet"), r"dataset \(--dataset\): unknown data set 'imagenet'"),
    (dict(attack_options={"cw": {"steps": 3}}), "attack_options names cw, which is not in attacks"),
])
def test_every_bad_setting_is_refused_once_with_the_api_and_the_cli_name(fields, words):
    kw = {"attacks": ("fgsm",), **fields}
    with pytest.raises(QrobenchError, match=words):
        EvalConfig(**kw)
    with pytest.raises(QrobenchError, match=words):  # the API builds the same config
        make_config(kw.pop("attacks"), **kw)


def test_a_changed_copy_is_validated_again():
    cfg = make_config(["fgsm"], n=5)
    assert cfg.replace(eps=2 / 255).eps == 2 / 255
    with pytest.raises(QrobenchError, match="eps"):
        cfg.replace(eps=0)


def test_make_config_refuses_unknown_settings_and_resolves_eot_draws():
    with pytest.raises(QrobenchError, match="unknown evaluation setting.*epsilon"):
        make_config(["fgsm"], epsilon=0.1)
    assert make_config(["eot-pgd20"], eot_iter=4).attack_options == {"eot-pgd20": {"eot_iter": 4}}
    with pytest.raises(QrobenchError, match="eot_iter .--eot-iter. sets the noise draws"):
        make_config(["pgd20"], eot_iter=4)
    with pytest.raises(QrobenchError, match="surrogate .--surrogate. only applies"):
        make_config(["pgd20"], surrogate="res20-fp")


def test_engine_evaluate_has_one_signature():
    with pytest.raises(TypeError, match="takes an EvalConfig"):
        evaluate(torch.nn.Identity(), ["fgsm"])


def test_threat_model_vocabulary_admits_the_coming_threats():
    assert set(THREAT_MODELS) == {"linf", "l2", "corruptions", "bit-errors", "bit-flip"}
    assert threat_model("linf").norm == "Linf" and threat_model("LINF").token == "linf"
    assert threat_model("l2", require_implemented=False).norm == "L2"
    assert threat_model("bit-errors", require_implemented=False).target == "weights"


def test_an_attack_refuses_a_norm_it_does_not_search():
    with pytest.raises(UnknownNormError, match="Linf ball only, not L2"):
        create_attack("ifgsm20", torch.nn.Identity(), norm="L2")
    assert create_attack("pgd20", torch.nn.Identity()).settings()["norm"] == "Linf"


@pytest.mark.parametrize("norm, eps", [("Linf", 8 / 255), ("L2", 0.5)])
def test_projection_and_random_start_stay_in_the_ball_and_the_image(norm, eps):
    g = torch.Generator().manual_seed(0)
    x = torch.rand(16, 3, 8, 8, generator=g)
    far = x + 3 * eps * torch.randn(16, 3, 8, 8, generator=g)
    for x_adv in (project(far, x, eps, norm), random_start(x, eps, norm, torch.Generator().manual_seed(1))):
        assert float(distance(x_adv - x, norm).max()) <= eps + 1e-6
        assert x_adv.min() >= 0 and x_adv.max() <= 1
    inside = project(x + 1e-3 * (torch.rand_like(x) - 0.5), x, eps, norm)  # already inside: kept
    assert torch.allclose(project(inside, x, eps, norm), inside)


def test_linf_random_start_draws_as_before():
    """The L∞ start must be the draw every stored result was made with: U[-ε, ε], clipped."""
    x = torch.rand(4, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    u = torch.rand(x.shape, generator=torch.Generator().manual_seed(5))
    expected = torch.min(torch.max(x + (2 * u - 1) * 0.03, x - 0.03), x + 0.03).clamp(0, 1)
    assert torch.equal(random_start(x, 0.03, "Linf", torch.Generator().manual_seed(5)), expected)


def test_dataset_registry_names_cifar10_and_refuses_others(data_dir):
    assert "cifar10" in list_datasets() and check_dataset("cifar10").image_shape == (3, 32, 32)
    d = load_test_set("cifar10", 7, data_dir)
    assert d.x.shape == (7, 3, 32, 32)
    with pytest.raises(UnknownNameError, match="cifar10"):
        load_test_set("cifar100", 7, data_dir)


def test_every_record_carries_threat_model_and_dataset(tiny_trained, test_points):
    r = qrobench.evaluate(tiny_trained, attacks=["fgsm"], n=20, data=test_points, eps=2 / 255, progress=False)
    assert (r.threat_model, r.dataset, r.norm) == ("linf", "cifar10", "Linf")
    assert r.to_dict()["threat_model"] == "linf" and r.to_dict()["dataset"] == "cifar10"


def test_old_files_migrate_as_linf_on_cifar10():
    old = {"schema": "qrobench-result-v2", "model": "m", "n": 1, "eps": 0.03, "clean_acc": 1.0,
           "robust_acc": {}, "worst_case_acc": 1.0, "norm": "Linf"}
    r = Result.from_dict(dict(old))
    assert (r.threat_model, r.dataset) == ("linf", "cifar10")
    with pytest.raises(QrobenchError, match="names no threat model"):
        Result.from_dict({**old, "norm": "L7"})
