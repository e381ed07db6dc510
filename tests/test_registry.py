"""The shared registry helper and the four registries built on it."""

import pytest

from qrobench.attacks import ATTACKS, create_attack, list_attacks, register_attack
from qrobench.attacks.base import Attack, check_attack_names
from qrobench.errors import UnknownNameError
from qrobench.models import ARCHITECTURES, list_models
from qrobench.quant import QUANTIZER_REGISTRY
from qrobench.registry import Registry
from qrobench.train import RECIPES, get_recipe
from qrobench.train.recipes import RECIPE_REGISTRY, Recipe, register_recipe


def test_register_get_names_contains_and_decorator_returns_the_object():
    reg = Registry("widget")
    assert reg.register("b", 2) == 2

    @reg.register("a")
    def a():
        return "A"

    assert a() == "A" and reg.get("a") is a and reg.get("b") == 2
    assert reg.names() == ["a", "b"] and list(reg) == ["a", "b"] and len(reg) == 2
    assert "a" in reg and "c" not in reg and ["unhashable"] not in reg
    assert [k for k, _ in reg.items()] == ["b", "a"]  # registration order


def test_a_name_is_registered_once():
    reg = Registry("widget")
    reg.register("a", 1)
    with pytest.raises(ValueError, match="widget 'a' is already registered"):
        reg.register("a", 2)
    assert reg.get("a") == 1
    with pytest.raises(ValueError, match="non-empty string"):
        reg.register("", 3)


def test_unknown_name_lists_valid_names_and_suggests_the_closest():
    reg = Registry("widget")
    for n in ("pgd20", "fgsm", "square"):
        reg.register(n, n)
    with pytest.raises(UnknownNameError) as e:
        reg.get("pgd2")
    msg = str(e.value)
    assert msg.startswith("unknown widget 'pgd2'; valid widgets: fgsm, pgd20, square")
    assert msg.endswith("did you mean 'pgd20'?")
    assert e.value.valid == ["fgsm", "pgd20", "square"]
    with pytest.raises(UnknownNameError) as e:
        reg.check(["fgsm", "zzzzzz"])
    assert "zzzzzz" in str(e.value) and "did you mean" not in str(e.value)


def test_mapping_is_live_and_read_only():
    reg = Registry("widget")
    view = reg.mapping()
    reg.register("x", 1)
    assert dict(view) == {"x": 1}
    with pytest.raises(TypeError):
        view["y"] = 2


def test_attack_wrappers_sit_on_the_registry():
    assert list_attacks() == ATTACKS.names() and "pgd20" in ATTACKS
    with pytest.raises(UnknownNameError, match="did you mean 'pgd20'"):
        check_attack_names(["fgsm", "pgd02"])
    with pytest.raises(UnknownNameError, match="unknown attack"):
        create_attack("nope", model=None)
    with pytest.raises(ValueError, match="already registered"):
        register_attack("pgd20")(Attack)


def test_registered_attack_defaults_apply_and_keywords_override():
    name = "_test-noop-attack"

    @register_attack(name, eps=2 / 255)
    class Noop(Attack):
        def perturb(self, x, y, generator=None):
            return x

    atk = create_attack(name, model=None)
    assert isinstance(atk, Noop) and atk.name == name and atk.eps == pytest.approx(2 / 255)
    assert create_attack(name, model=None, eps=4 / 255).eps == pytest.approx(4 / 255)


def test_recipe_registry_keeps_the_public_names():
    assert list(RECIPES) == [n for n, _ in RECIPE_REGISTRY.items()]
    assert {"paper-pgd", "budget-nfgsm", "budget-nfgsm-ft", "natural"} <= set(RECIPES)
    assert get_recipe("natural") is RECIPES["natural"]
    with pytest.raises(UnknownNameError, match="did you mean 'natural'"):
        get_recipe("natual")
    with pytest.raises(ValueError, match="already registered"):
        register_recipe(Recipe(name="natural", description="a second natural"))
    r = register_recipe(Recipe(name="_test-recipe", description="test", epochs=1))
    assert RECIPES["_test-recipe"] is r  # RECIPES is a live view


def test_every_registry_is_one_registry_class():
    for reg in (ATTACKS, ARCHITECTURES, QUANTIZER_REGISTRY, RECIPE_REGISTRY):
        assert isinstance(reg, Registry)
    assert list_models() == ARCHITECTURES.names()
