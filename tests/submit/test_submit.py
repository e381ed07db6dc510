"""``qrobench submit``: an outside architecture end to end, and the checks that refuse bad entries.

The outside model is defined here, in the test's own module, and reached through
``--factory test_submit:small_cnn`` exactly as a user's ``package.module:factory``.
"""

import json

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import load_file

import qrobench
from qrobench.cli import main
from qrobench.quant.measure import infer_bits, measure_weights
from qrobench.zoo import Zoo, file_sha256


class SmallCNN(nn.Module):
    """Not a qrobench architecture: two convs, pooling, one linear layer."""

    def __init__(self, width: int = 16):
        super().__init__()
        self.c1 = nn.Conv2d(3, width, 3, padding=1)
        self.c2 = nn.Conv2d(width, 2 * width, 3, padding=1)
        self.fc = nn.Linear(2 * width * 8 * 8, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.c1(x)), 2)
        x = F.max_pool2d(F.relu(self.c2(x)), 2)
        return self.fc(x.flatten(1))


class NoisyCNN(SmallCNN):
    """Random at test time (input noise in eval mode), without qrobench's noise modules."""

    def forward(self, x):
        return super().forward(x + 0.02 * torch.randn_like(x))


def small_cnn(width: int = 16) -> nn.Module:
    return SmallCNN(width)


def noisy_cnn() -> nn.Module:
    return NoisyCNN()


def not_a_module():
    return "nope"


@pytest.fixture(scope="module")
def trained_cnn(data_dir):
    """SmallCNN after one epoch on 4,000 images: ~35 % clean, above the 20 % floor (seconds)."""
    from qrobench.data.cifar10 import load_cifar10_train

    torch.manual_seed(0)
    train = load_cifar10_train(data_dir)
    x, y = train.x[:4000], train.y[:4000]
    model = SmallCNN()
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    for _ in range(2):
        for i in range(0, len(y), 100):
            loss = F.cross_entropy(model(x[i:i + 100]), y[i:i + 100])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model.eval()


@pytest.fixture
def card_file(tmp_path):
    p = tmp_path / "card.json"
    p.write_text(json.dumps({"recipe": "Adam, 2 epochs on 4,000 images (test)", "license": "MIT",
                             "reference": "tests/test_submit.py", "training": {"epochs": 2}}))
    return p


def _submit(capsys, out, ckpt, *extra):
    code = main(["submit", "--name", "cnn-test", "--checkpoint", str(ckpt), "--n", "40",
                 "--attacks", "fgsm,pgd20", "--output-dir", str(out), "--device", "cpu", "--quiet", *extra])
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def test_outside_architecture_end_to_end(trained_cnn, data_dir, tmp_path, card_file, capsys, monkeypatch):
    monkeypatch.setenv("QROBENCH_DATA", str(data_dir))
    ckpt = tmp_path / "cnn.pt"
    torch.save(trained_cnn.state_dict(), ckpt)  # read back with torch.load(weights_only=True)
    out = tmp_path / "repo"
    code, stdout, err = _submit(capsys, out, ckpt, "--factory", "test_submit:small_cnn", "--card", str(card_file))
    assert code == 0, err
    card = json.loads((out / "model_zoo" / "cnn-test.json").read_text())
    result = json.loads((out / "results" / "zoo" / "cnn-test.json").read_text())
    stored = out / "model_zoo" / "cnn-test.safetensors"
    assert card["architecture"] == "factory:test_submit:small_cnn"
    assert card["sha256"] == file_sha256(stored) == result["card_sha256"]
    assert card["extra"]["submission"]["checkpoint_sha256"] == file_sha256(ckpt)
    assert card["license"] == "MIT" and card["training"] == {"epochs": 2}
    assert set(load_file(str(stored))) == set(trained_cnn.state_dict())
    # the standard protocol: ε = 8/255 (the leaderboard's), the battery asked for, one pass
    assert result["eps"] == pytest.approx(8 / 255) and set(result["robust_acc"]) == {"fgsm", "pgd20"}
    assert result["clean_acc"] >= 0.2 and not result["stochastic"] and result["repeats"] == 1
    # measured from the weights: every conv is float here
    assert result["precision"] == "fp" and result["bits"] == 32 and result["compression"] == pytest.approx(1.0)
    assert result["n_params"] == sum(p.numel() for p in trained_cnn.parameters())
    assert "submitted" in result["flags"]
    assert "cnn-test.safetensors" in stdout
    assert not list((out / "model_zoo").glob(".*"))  # no staging file left behind

    # the entry shows on the leaderboard, and the stored files reload to the same model
    code = main(["leaderboard", "--results-dir", str(out / "results"), "--zoo-dir", str(out / "model_zoo"),
                 "--no-plots"])
    assert code == 0
    lb = json.loads((out / "results" / "leaderboard.json").read_text())
    assert [r["model"] for r in lb["rows"] if r["status"] == "measured"] == ["cnn-test"]
    again, _ = Zoo(out / "model_zoo").load("cnn-test")  # the one loader takes factory entries too
    via_api = qrobench.load_model("cnn-test", zoo_dir=out / "model_zoo")
    x = torch.rand(4, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(again(x), trained_cnn(x)) and torch.equal(via_api(x), trained_cnn(x))


def test_quantization_statistics_come_from_the_weights(trained_cnn, data_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("QROBENCH_DATA", str(data_dir))
    model = SmallCNN()
    model.load_state_dict(trained_cnn.state_dict())
    with torch.no_grad():  # ternary convs: {-s, 0, s}
        for conv in (model.c1, model.c2):
            w = conv.weight
            keep = w.abs() >= 0.7 * w.abs().mean()
            conv.weight.copy_(torch.sign(w) * keep * (w.abs() * keep).sum() / keep.sum())
    ckpt = tmp_path / "tern.safetensors"
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(ckpt))
    lying = tmp_path / "lying.json"
    lying.write_text(json.dumps({"recipe": "x", "license": "MIT", "reference": "y", "precision": "fp"}))
    code, _, err = _submit(capsys, tmp_path / "a", ckpt, "--factory", "test_submit:small_cnn",
                           "--card", str(lying), "--min-clean-acc", "0")
    assert code == 2 and "precision = 'fp' but the submission measures 'tnn'" in err
    assert not (tmp_path / "a" / "results").exists()

    code, _, err = _submit(capsys, tmp_path / "b", ckpt, "--factory", "test_submit:small_cnn", "--min-clean-acc", "0")
    assert code == 0, err
    r = json.loads((tmp_path / "b" / "results" / "zoo" / "cnn-test.json").read_text())
    st = measure_weights(model)
    assert r["precision"] == "tnn" and r["bits"] == 2
    assert r["sparsity"] == pytest.approx(st.sparsity) and st.sparsity > 0.2
    assert r["size_bytes"] < r["fp32_bytes"] and "no-card" in r["flags"]


def test_random_model_is_detected_and_gets_eot(trained_cnn, data_dir, tmp_path, card_file, capsys, monkeypatch):
    monkeypatch.setenv("QROBENCH_DATA", str(data_dir))
    ckpt = tmp_path / "noisy.pt"
    torch.save(trained_cnn.state_dict(), ckpt)
    code = main(["submit", "--name", "noisy", "--checkpoint", str(ckpt), "--factory", "test_submit:noisy_cnn",
                 "--card", str(card_file), "--n", "20", "--attacks", "fgsm", "--output-dir", str(tmp_path),
                 "--device", "cpu", "--quiet"])
    assert code == 0, capsys.readouterr().err
    r = json.loads((tmp_path / "results" / "zoo" / "noisy.json").read_text())
    assert r["stochastic"] and r["repeats"] == 3 and set(r["robust_acc"]) == {"fgsm", "eot-pgd20"}
    assert r["attacks"]["eot-pgd20"]["eot_iter"] > 1 and "no-eot" not in r["flags"]
    assert len(r["per_seed"]) == 3 and "±" in capsys.readouterr().out


def test_qrobench_architecture_float_state_dict_is_quantized_on_submission(tiny_trained, data_dir, tmp_path,
                                                                          card_file, capsys, monkeypatch):
    monkeypatch.setenv("QROBENCH_DATA", str(data_dir))
    ckpt = tmp_path / "res8.pt"
    torch.save(tiny_trained.state_dict(), ckpt)
    code, _, err = _submit(capsys, tmp_path, ckpt, "--arch", "preact_resnet", "--arch-args",
                           '{"depth": 8, "precision": "4bit"}', "--card", str(card_file))
    assert code == 0, err
    model, card = Zoo(tmp_path / "model_zoo").load("cnn-test")  # a plain zoo entry
    assert card.precision == "4bit" and "quantized on submission" in card.extra["submission"]["loaded_as"]
    tensors = load_file(str(tmp_path / "model_zoo" / "cnn-test.safetensors"))
    assert tensors["conv1.weight_codes"].dtype == torch.int8
    r = json.loads((tmp_path / "results" / "zoo" / "cnn-test.json").read_text())
    assert r["bits"] == 4 and r["precision"] == "4bit" and r["sparsity"] > 0


def test_near_constant_model_is_refused_and_nothing_is_written(data_dir, tmp_path, card_file, capsys, monkeypatch):
    monkeypatch.setenv("QROBENCH_DATA", str(data_dir))
    dead = SmallCNN()
    with torch.no_grad():
        for p in dead.parameters():
            p.zero_()
    ckpt = tmp_path / "dead.pt"
    torch.save(dead.state_dict(), ckpt)
    out = tmp_path / "repo"
    (out / "results" / "zoo").mkdir(parents=True)
    keep = out / "results" / "zoo" / "other.json"
    keep.write_text('{"kept": true}')
    code, _, err = _submit(capsys, out, ckpt, "--factory", "test_submit:small_cnn", "--card", str(card_file))
    assert code == 2 and "below the floor of 20 %" in err and err.count("\n") == 1
    assert sorted(p.name for p in (out / "model_zoo").iterdir()) == []
    assert [p.name for p in (out / "results" / "zoo").iterdir()] == ["other.json"]
    assert keep.read_text() == '{"kept": true}'


@pytest.mark.parametrize("card,message", [
    ({"license": "MIT", "reference": "r"}, "missing field(s) recipe"),
    ({"recipe": "r", "license": 3, "reference": "r"}, "field 'license' must be a str"),
    ({"recipe": "r", "license": "MIT", "reference": "r", "dataset": "mnist"}, "must be 'cifar10'"),
    ({"recipe": "r", "license": "MIT", "reference": "r", "sha256": "0" * 64}, "does not match --checkpoint"),
    ({"recipe": "r", "license": "MIT", "reference": "r", "name": "other"}, "names the model 'other'"),
])
def test_bad_cards_are_refused_field_by_field(tmp_path, capsys, card, message):
    ckpt = tmp_path / "m.pt"
    torch.save(SmallCNN().state_dict(), ckpt)
    cp = tmp_path / "card.json"
    cp.write_text(json.dumps(card))
    code, _, err = _submit(capsys, tmp_path, ckpt, "--factory", "test_submit:small_cnn", "--card", str(cp))
    assert code == 2 and message in err and "Traceback" not in err
    assert not (tmp_path / "model_zoo").exists()


@pytest.mark.parametrize("args,message", [
    (["--factory", "test_submit:not_a_module"], "not a torch.nn.Module"),
    (["--factory", "no_such_pkg.mod:f"], "cannot import 'no_such_pkg.mod'"),
    (["--factory", "test_submit"], "must look like package.module:factory"),
    (["--factory", "test_submit:small_cnn", "--arch-args", '{"width": 8}'], "does not fit the architecture"),
    (["--arch", "preact_resnet"], "does not fit the architecture"),
    (["--arch", "resnet9000"], "unknown architecture 'resnet9000'"),
])
def test_bad_models_are_refused_in_one_line(tmp_path, capsys, args, message):
    ckpt = tmp_path / "m.pt"
    torch.save(SmallCNN().state_dict(), ckpt)
    code, _, err = _submit(capsys, tmp_path, ckpt, *args)
    assert code == 2 and message in err and err.count("\n") == 1


def test_pickled_objects_are_not_loaded(tmp_path, capsys):
    ckpt = tmp_path / "whole_model.pt"
    torch.save(SmallCNN(), ckpt)  # a pickled module, not a state dict
    code, _, err = _submit(capsys, tmp_path, ckpt, "--factory", "test_submit:small_cnn")
    assert code == 2 and "weights_only=True" in err


def test_bit_width_inference_on_plain_tensors():
    torch.manual_seed(0)
    w = torch.randn(16, 8, 3, 3)
    assert infer_bits(w) == (32, "fp")
    assert infer_bits(torch.sign(w) * 0.3) == (1, "bnn")
    assert infer_bits(torch.sign(w) * (w.abs() > 0.5) * 0.3) == (2, "tnn")
    codes = torch.randint(-7, 8, w.shape).float()
    assert infer_bits(codes * 0.01) == (4, "4bit")
    assert infer_bits(2 * codes * 0.01) == (4, "4bit")  # on a grid whose smallest step is not ±1
