"""Tiny-scale training runs (a few hundred images, seconds): the recipe machinery works."""

import csv

import pytest
import torch
import torch.nn.functional as F

from qrobench.data.cifar10 import load_cifar10_train
from qrobench.models import create_model
from qrobench.quant import quantized_layers, set_quant_mode
from qrobench.train import TrainConfig, get_recipe, train
from qrobench.train.export import export_to_zoo
from qrobench.train.trainer import training_loss
from qrobench.zoo import Zoo
from qrobench.zoo.naming import parse_zoo_name


@pytest.fixture(scope="module")
def train_data(data_dir):
    return load_cifar10_train(data_dir)


def _cfg(tmp_path, recipe, precision="fp", **kw):
    args = {"depth": 8}
    if precision != "fp":
        args["precision"] = precision
    return TrainConfig(name="t", architecture="preact_resnet", arch_args=args, recipe=recipe,
                       out_dir=tmp_path, train_n=256, val_n=64, progress=False, **kw)


def _log(tmp_path):
    with open(tmp_path / "log.csv") as f:
        return list(csv.DictReader(f))


def test_loss_decreases(tmp_path, train_data):
    r = get_recipe("natural").with_(epochs=4, lr=0.05, batch_size=64)
    train(_cfg(tmp_path, r), train_data)
    log = _log(tmp_path)
    assert len(log) == 4
    assert float(log[-1]["train_loss"]) < float(log[0]["train_loss"]) - 0.05


def test_binaryrelax_lambda_grows_and_hard_phase_is_exactly_quantized(tmp_path, train_data):
    r = get_recipe("budget-nfgsm").with_(epochs=3, br_hard_epoch=2, br_rho=1.5, batch_size=64)
    model = train(_cfg(tmp_path, r, precision="tnn"), train_data)
    log = _log(tmp_path)
    lams = [float(row["br_lambda"]) for row in log]
    assert lams == sorted(lams) and lams[-1] == pytest.approx(1.5 ** 2)
    assert [row["phase"] for row in log] == ["relax", "relax", "hard"]
    for _, layer in quantized_layers(model):
        assert len(torch.unique(layer.effective_weight())) <= 3
        assert len(torch.unique(layer.weight)) > 3  # the float master copy is still there
    set_quant_mode(model, "deployed")
    for _, layer in quantized_layers(model):
        assert len(torch.unique(layer.weight)) <= 3


def test_resume_gives_the_same_weights(tmp_path, train_data):
    r = get_recipe("budget-nfgsm").with_(epochs=2, br_hard_epoch=1, batch_size=64)
    full = train(_cfg(tmp_path / "a", r, precision="4bit"), train_data)
    train(_cfg(tmp_path / "b", r, precision="4bit", stop_after_epoch=1), train_data)
    assert len(_log(tmp_path / "b")) == 1
    resumed = train(_cfg(tmp_path / "b", r, precision="4bit"), train_data, resume=True)
    assert len(_log(tmp_path / "b")) == 2
    for (k, a), (_, b) in zip(full.state_dict().items(), resumed.state_dict().items(), strict=True):
        assert torch.equal(a, b), k


def test_export_load_evaluate_round_trip(tmp_path, train_data):
    r = get_recipe("budget-nfgsm").with_(epochs=1, br_hard_epoch=0, batch_size=64)
    model = train(_cfg(tmp_path / "run", r, precision="bnn"), train_data)
    x = train_data.x[:16]
    with torch.no_grad():
        before = model(x)
    export_to_zoo(model, "res8-bnn", "preact_resnet", {"depth": 8, "precision": "bnn"}, "bnn",
                  "test", {"command": "test"}, tmp_path / "zoo")
    loaded, card = Zoo(tmp_path / "zoo").load("res8-bnn")
    with torch.no_grad():
        assert torch.equal(before, loaded(x))
    assert card.training["command"] == "test"


def test_tradeoff_loss_equals_its_formula():
    torch.manual_seed(0)
    model = create_model("preact_resnet", depth=8).eval()
    x = torch.rand(6, 3, 32, 32)
    x_adv = (x + 0.03 * torch.randn_like(x)).clamp(0, 1)
    y = torch.tensor([0, 1, 2, 3, 4, 5])
    loss, _ = training_loss(model, x, x_adv, y, (8.0, 1.0))
    expected = 8 * F.cross_entropy(model(x_adv), y) + F.cross_entropy(model(x), y)
    assert torch.allclose(loss, expected)
    plain, _ = training_loss(model, x, x_adv, y, None)
    assert torch.allclose(plain, F.cross_entropy(model(x_adv), y))


def test_zoo_names_parse():
    z = parse_zoo_name("enres20-tnn-tradeoff")
    assert (z.architecture, z.precision, z.loss) == ("enresnet20", "tnn", "tradeoff")
    assert z.arch_args == {"precision": "tnn"}
    assert parse_zoo_name("res20-fp-natural").loss == "natural"
    with pytest.raises(Exception, match="arch"):
        parse_zoo_name("vgg-fp")


def test_natural_recipe_selects_on_clean_accuracy_adversarial_ones_on_pgd():
    from qrobench.train.trainer import selection_score

    # a natural model's PGD-10 accuracy is ~0 at every epoch: selecting on it picks noise
    assert selection_score(get_recipe("natural"), val_clean=0.80, val_pgd=0.00) == 0.80
    assert selection_score(get_recipe("budget-nfgsm"), val_clean=0.80, val_pgd=0.40) == 0.40


def test_card_names_the_training_images_that_selected_the_checkpoint():
    from types import SimpleNamespace

    from qrobench.train.cli import _held_out_text

    assert _held_out_text(SimpleNamespace(train_n=None, val_n=1000), 50000) == "last 1000 training images"
    assert _held_out_text(SimpleNamespace(train_n=49500, val_n=1000), 50000) == "last 1000 training images"
    subset = _held_out_text(SimpleNamespace(train_n=12000, val_n=1000), 50000)
    assert subset.startswith("training images 12001-13000"), subset


def test_ft_suffix_names_a_fine_tuned_mixed_plan_only():
    z = parse_zoo_name("res20-mixed-ft")
    assert (z.precision, z.loss, z.fine_tuned) == ("mixed", "adversarial", True)
    assert not parse_zoo_name("res20-mixed").fine_tuned
    with pytest.raises(Exception, match="-ft suffix"):
        parse_zoo_name("res20-4bit-ft")


def test_mixed_ft_fine_tunes_the_plan_quantize_would_choose(tmp_path, data_dir, capsys):
    """``train <arch>-mixed-ft --avg-bits B --init-from F`` trains the very per-layer plan that
    ``quantize --from F --avg-bits B`` exports, so the two differ only in the fine-tuning."""
    import json
    import shutil
    from pathlib import Path

    from qrobench.cli import main
    from qrobench.protocol import precision_for_bits

    zoo = tmp_path / "zoo"
    zoo.mkdir()
    for f in Path("model_zoo").glob("res20-fp.*"):
        shutil.copy(f, zoo)
    common = ["--zoo-dir", str(zoo), "--data-dir", str(data_dir)]
    assert main(["quantize", "res20-mixed", "--from", "res20-fp", "--avg-bits", "3", "--zoo-dir", str(zoo)]) == 0
    assert main(["train", "res20-mixed-ft", "--recipe", "budget-nfgsm-ft", "--epochs", "1", "--init-from",
                 "res20-fp", "--avg-bits", "3", "--train-n", "64", "--val-n", "32", "--work-dir",
                 str(tmp_path / "w"), "--quiet", *common]) == 0
    post, tuned = (json.loads((zoo / f"{m}.json").read_text()) for m in ("res20-mixed", "res20-mixed-ft"))
    assert tuned["arch_args"]["layer_bits"] == post["arch_args"]["layer_bits"]
    assert len(set(tuned["arch_args"]["layer_bits"].values())) > 1  # a real mix, not one width
    assert tuned["training"]["command"].endswith("--avg-bits 3 --train-n 64")
    assert tuned["training"]["plan"]["avg_bits"] <= 3
    model, _ = Zoo(zoo).load("res20-mixed-ft")  # the checkpoint deploys Q(W) at those widths
    plan = post["arch_args"]["layer_bits"]
    for name, m in quantized_layers(model):
        assert m.precision == precision_for_bits(plan[name]), name
        assert m.weight.unique().numel() <= 2 ** plan[name] - 1 + (plan[name] == 1), name
    capsys.readouterr()
    assert main(["train", "res20-mixed-ft", "--init-from", "res20-fp", *common]) == 2
    assert "with --avg-bits B --init-from" in capsys.readouterr().err
    assert main(["train", "res20-4bit", "--avg-bits", "4", "--init-from", "res20-fp", *common]) == 2
    assert "--avg-bits plans mixed precision" in capsys.readouterr().err
