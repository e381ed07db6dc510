import json
import pickle

import pytest
import torch
from safetensors.torch import load_file, save_file

from qrobench.errors import CheckpointError, ModelCardError, UnknownNameError
from qrobench.models import create_model, noise_seed
from qrobench.train.export import export_to_zoo
from qrobench.zoo import ModelCard, Zoo, file_sha256


def _export(tmp_path, name="res8-tnn", arch_args=None, precision="tnn"):
    torch.manual_seed(0)
    arch_args = arch_args or {"depth": 8, "precision": precision}
    m = create_model("preact_resnet", **arch_args)
    # give BN non-trivial statistics so that a lost buffer would change the logits
    m.train()
    with torch.no_grad():
        m(torch.rand(16, 3, 32, 32))
    card = export_to_zoo(m, name, "preact_resnet", arch_args, precision, "test", {}, tmp_path)
    return m.eval(), card


@pytest.mark.parametrize("precision", ["fp", "4bit", "tnn", "bnn"])
def test_export_load_round_trip_gives_identical_logits(tmp_path, precision):
    m, card = _export(tmp_path, f"res8-{precision}", precision=precision)
    loaded, card2 = Zoo(tmp_path).load(card.name)
    x = torch.rand(8, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(m(x), loaded(x))
    assert card2.sha256 == file_sha256(tmp_path / card.file)
    tensors = load_file(str(tmp_path / card.file))
    if precision != "fp":
        assert tensors["conv1.weight_codes"].dtype == torch.int8
        assert "conv1.weight" not in tensors


def test_stochastic_model_round_trip(tmp_path):
    args = {"depth": 8, "ensemble": 2, "noise_coef": 0.1, "precision": "4bit"}
    m, card = _export(tmp_path, "en8-4bit", arch_args=args, precision="4bit")
    loaded, _ = Zoo(tmp_path).load("en8-4bit")
    x = torch.rand(4, 3, 32, 32)
    with torch.no_grad(), noise_seed(m, 5):
        a = m(x)
    with torch.no_grad(), noise_seed(loaded, 5):
        b = loaded(x)
    assert torch.equal(a, b)


def test_hash_mismatch_is_refused(tmp_path):
    _, card = _export(tmp_path)
    with open(tmp_path / card.file, "ab") as f:
        f.write(b" ")
    with pytest.raises(CheckpointError, match="sha256"):
        Zoo(tmp_path).load(card.name)


def test_pickle_is_refused_even_with_the_right_hash(tmp_path):
    _, card = _export(tmp_path)
    bad = tmp_path / card.file
    bad.write_bytes(pickle.dumps({"x": 1}, protocol=2))
    d = json.loads((tmp_path / f"{card.name}.json").read_text())
    d["sha256"] = file_sha256(bad)
    (tmp_path / f"{card.name}.json").write_text(json.dumps(d))
    with pytest.raises(CheckpointError, match="pickle"):
        Zoo(tmp_path).load(card.name)


def test_too_many_levels_is_refused(tmp_path):
    _, card = _export(tmp_path)
    path = tmp_path / card.file
    t = load_file(str(path))
    t["layer1.0.conv1.weight_codes"][0, 0, 0, 0] = 2  # not a ternary code
    save_file(t, str(path))
    d = json.loads((tmp_path / f"{card.name}.json").read_text())
    d["sha256"] = file_sha256(path)
    (tmp_path / f"{card.name}.json").write_text(json.dumps(d))
    with pytest.raises(CheckpointError, match="distinct codes"):
        Zoo(tmp_path).load(card.name)


def test_card_with_missing_fields_names_them(tmp_path):
    _, card = _export(tmp_path)
    d = json.loads((tmp_path / f"{card.name}.json").read_text())
    del d["sha256"], d["license"]
    (tmp_path / f"{card.name}.json").write_text(json.dumps(d))
    with pytest.raises(ModelCardError, match="sha256, license"):
        Zoo(tmp_path).card(card.name)


def test_card_field_types_are_checked():
    good = {"name": "a", "architecture": "preact_resnet", "arch_args": {}, "ensemble": 1,
            "noise_coef": 0.0, "precision": "fp", "quantizer": "none", "recipe": "r",
            "dataset": "cifar10", "sha256": "0" * 64, "file": "a.safetensors", "license": "MIT",
            "reference": "x"}
    assert ModelCard.from_dict(good).name == "a"
    with pytest.raises(ModelCardError, match="ensemble"):
        ModelCard.from_dict({**good, "ensemble": "two"})
    with pytest.raises(ModelCardError, match="64 lowercase hex"):
        ModelCard.from_dict({**good, "sha256": "abc"})


def test_unknown_model_lists_valid_names(tmp_path):
    _export(tmp_path)
    with pytest.raises(UnknownNameError, match="res8-tnn"):
        Zoo(tmp_path).load("nope")


def test_exporting_the_same_weights_gives_the_same_sha256(tmp_path):
    """A card's hash must name the weights, not the order safetensors happened to write its
    metadata in (it is random from one save to the next)."""
    from qrobench.zoo.checkpoint import save_deployed

    m, _ = _export(tmp_path / "first")
    shas = {save_deployed(m, tmp_path / f"copy{i}.safetensors", metadata={"name": "x", "precision": "tnn",
                                                                        "extra": "y"})
            for i in range(8)}
    assert len(shas) == 1
