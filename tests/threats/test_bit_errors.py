"""Random bit errors in the stored words: the formats round-trip, errors flip bits at the rate
asked, the record holds one seed per pattern, and the model is restored afterwards."""

import json

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from qrobench.cli import main
from qrobench.data.cifar10 import EvalData
from qrobench.errors import QrobenchError
from qrobench.models.registry import create_model
from qrobench.quant.layers import set_quant_mode
from qrobench.threats.bit_errors import (
    attacked_name,
    evaluate_bit_errors,
    evaluate_bit_errors_attacked,
    flip,
    rate_name,
    with_errors,
)
from qrobench.threats.codes_io import (
    FLOAT32,
    SIGN_MAGNITUDE,
    TWOS_COMPLEMENT,
    decode,
    encode,
    stored_layers,
)


@given(bits=st.integers(1, 8), data=st.data())
@settings(max_examples=60, deadline=None)
def test_sign_magnitude_round_trips_every_code_and_stays_in_range(bits, data):
    k = 2 ** (bits - 1) - 1
    codes = torch.tensor(data.draw(st.lists(st.sampled_from([-1, 1]) if bits == 1 else st.integers(-k, k),
                                            min_size=1, max_size=50)))
    words = encode(codes, bits, SIGN_MAGNITUDE)
    assert words.min() >= 0 and words.max() < 2 ** bits
    assert torch.equal(decode(words, bits, SIGN_MAGNITUDE), codes)
    # any word decodes to a code the format allows: errors never leave the layer's range
    every = torch.arange(2 ** bits)
    back = decode(every, bits, SIGN_MAGNITUDE)
    assert back.abs().max() <= max(k, 1)


def test_twos_complement_and_float32_round_trip():
    codes = torch.arange(-128, 128)
    assert torch.equal(decode(encode(codes, 8, TWOS_COMPLEMENT), 8, TWOS_COMPLEMENT), codes)
    w = torch.randn(1000)
    assert torch.equal(decode(encode(w, 32, FLOAT32), 32, FLOAT32), w)
    # the top bit of a float32 word is its sign
    assert torch.equal(decode(encode(w, 32, FLOAT32) ^ (1 << 31), 32, FLOAT32), -w)


def test_flips_happen_at_the_rate_asked():
    g = torch.Generator().manual_seed(0)
    words = torch.zeros(100_000, dtype=torch.int64)
    assert torch.equal(flip(words, 4, 0.0, g), words)
    assert torch.equal(flip(words, 4, 1.0, g), torch.full_like(words, 15))
    bad = flip(words, 4, 0.01, g)
    n = sum(int((bad >> b & 1).sum()) for b in range(4))  # Binomial(400,000, 0.01): 4,000 ± 63
    assert abs(n - 4000) < 5 * 63


@pytest.fixture
def ternary():
    torch.manual_seed(0)
    m = create_model("preact_resnet", depth=8, precision="tnn").eval()
    set_quant_mode(m, "deployed")
    return m


def test_errors_write_the_codes_and_restore(ternary):
    layers, what = stored_layers(ternary)
    assert "sign-magnitude" in what and {la.bits for la in layers} == {2}
    before = {la.name: la.module.weight.detach().clone() for la in layers}
    flipped = with_errors(layers, 0.05, torch.Generator().manual_seed(1))
    total = sum(la.words.numel() * 2 for la in layers)
    assert abs(flipped - 0.05 * total) < 5 * (0.05 * 0.95 * total) ** 0.5
    for la in layers:  # still ternary values {-s, 0, s}
        assert set(torch.unique(la.module.weight / la.scale).round().tolist()) <= {-1.0, 0.0, 1.0}
    from qrobench.threats.bit_errors import restore

    restore(layers)
    assert all(torch.equal(la.module.weight, before[la.name]) for la in layers)


def test_record_of_a_float_model(tiny_trained, test_points):
    model = create_model("preact_resnet", depth=8)
    model.load_state_dict(tiny_trained.state_dict())
    model.eval()
    data = EvalData(test_points.x[:100], test_points.y[:100], test_points.source)
    r = evaluate_bit_errors(model, data, rates=(1e-6, 1e-2), patterns=4, float_as=FLOAT32)
    low, high = rate_name(1e-6), rate_name(1e-2)
    assert r.threat_model == "bit-errors" and r.repeats == 4 and list(r.attacks) == [low, high]
    assert all(0 <= s.robust_acc[a] <= s.clean_acc for s in r.per_seed for a in r.attacks)
    # every column and the clean pass are timed (console and leaderboard show the seconds)
    assert r.clean_time_s > 0 and all(r.wall_time_s[a] > 0 for a in r.attacks)
    # exponent flips in float32 words are catastrophic: 1 % of the bits wreck the network, while
    # at 1e-6 (a couple of the tiny network's ~2.5 M bits per pattern) most patterns leave it intact
    assert r.robust_acc[high] <= 0.25 and r.robust_acc[low] >= r.robust_acc[high] + 0.1
    # the model comes back as it came: its float weights, not the int8 post-training codes the threat stored
    with torch.no_grad():
        assert torch.equal(model(data.x), tiny_trained(data.x))
    with pytest.raises(QrobenchError, match="fractions"):
        evaluate_bit_errors(model, data, rates=(2.0,))


def test_cli(tiny_zoo, data_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("QROBENCH_DATA", str(data_dir))
    out = tmp_path / "be.json"
    assert main(["run", "--model", "res8-fp", "--threat-model", "bit-errors", "--n", "50", "--patterns", "2",
                 "--zoo-dir", str(tiny_zoo), "--output", str(out), "--quiet"]) == 0
    d = json.loads(out.read_text())
    assert d["threat_model"] == "bit-errors" and set(d["attacks"]) == {rate_name(p) for p in (1e-4, 1e-3, 5e-3, 1e-2)}
    assert "int8" in d["attacks"]["ber-0.1%"]["stored"] and len(d["per_seed"]) == 2
    capsys.readouterr()
    assert main(["run", "--model", "res8-fp", "--threat-model", "bit-flip", "--attacks", "pgd20",
                 "--zoo-dir", str(tiny_zoo), "--output", str(out)]) == 2
    assert "runs no input attacks" in capsys.readouterr().err
    assert main(["run", "--model", "res8-fp", "--threat-model", "bit-errors", "--attacks", "pgd20,cw",
                 "--zoo-dir", str(tiny_zoo), "--output", str(out)]) == 2
    assert "one input attack" in capsys.readouterr().err
    assert json.loads(out.read_text())["threat_model"] == "bit-errors"  # the refusals left the result alone
    attacked = tmp_path / "be_pgd.json"
    assert main(["run", "--model", "res8-fp", "--threat-model", "bit-errors", "--attacks", "pgd20", "--n", "40",
                 "--patterns", "2", "--zoo-dir", str(tiny_zoo), "--output", str(attacked), "--quiet"]) == 0
    d = json.loads(attacked.read_text())
    assert list(d["attacks"]) == ["pgd20@ber-0.1%"] and d["attacks"]["pgd20@ber-0.1%"]["attack"] == "pgd20"
    assert d["eps"] == pytest.approx(8 / 255) and d["norm"] == "Linf" and len(d["per_seed"]) == 2


def test_an_attack_under_errors_meets_the_same_patterns(tiny_trained, test_points):
    """pgd20 under bit errors hits the model holding exactly the unattacked record's patterns: with
    a vanishing ε it scores what the errors alone score, point for point; at 8/255 only points the
    errors left correct can survive."""
    model = create_model("preact_resnet", depth=8)
    model.load_state_dict(tiny_trained.state_dict())
    model.eval()
    data = EvalData(test_points.x[:60], test_points.y[:60], test_points.source)
    rate = 1e-2  # a tiny network has few bits: a rate at which patterns differ
    alone = evaluate_bit_errors(model, data, rates=(rate,), patterns=3)
    none = evaluate_bit_errors_attacked(model, data, rate=rate, patterns=3, eps=1e-7)
    strong = evaluate_bit_errors_attacked(model, data, rate=rate, patterns=3)
    name = attacked_name("pgd20", rate)
    assert none.attacks[name]["pattern_seeds"].endswith("the unattacked record's patterns at this rate")
    for a, n, s in zip(alone.masks(rate_name(rate)), none.masks(name), strong.masks(name), strict=True):
        assert (n == a).all()
        assert not (s & ~a).any()
    assert none.masks("clean")[0].tolist() == alone.masks("clean")[0].tolist()
    assert all(s.wall_time_s[name] > 0 and s.clean_time_s > 0 for s in strong.per_seed)
    # the model comes back as it came: its float weights, not the int8 post-training codes the threat stored
    with torch.no_grad():
        assert torch.equal(model(data.x), tiny_trained(data.x))


def test_an_attack_under_errors_needs_an_input_gradient():
    """A torch.ao int8 model runs on integer kernels: its twin would not hold the errors."""
    import warnings

    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(), torch.nn.Flatten(),
                              torch.nn.Linear(4 * 30 * 30, 10)).eval()
    x = torch.rand(8, 3, 32, 32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prepared = prepare_fx(net, get_default_qconfig_mapping("x86"), (x[:2],))
        prepared(x)
        int8 = convert_fx(prepared)
    with pytest.raises(QrobenchError, match="integer kernels"):
        evaluate_bit_errors_attacked(int8, EvalData(x, torch.zeros(8, dtype=torch.long), "random"), patterns=1)


def test_the_leaderboard_tables_bit_errors_apart(tiny_zoo, data_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("QROBENCH_DATA", str(data_dir))
    res = tmp_path / "results"
    assert main(["run", "--model", "res8-fp", "--attacks", "fgsm", "--n", "50", "--zoo-dir", str(tiny_zoo),
                 "--output", str(res / "zoo" / "res8-fp.json"), "--quiet"]) == 0
    assert main(["run", "--model", "res8-fp", "--threat-model", "bit-errors", "--n", "50", "--patterns", "2",
                 "--zoo-dir", str(tiny_zoo), "--output", str(res / "threats" / "bit-errors" / "res8-fp.json"),
                 "--quiet"]) == 0
    assert main(["run", "--model", "res8-fp", "--threat-model", "bit-errors", "--attacks", "pgd20", "--n", "50",
                 "--patterns", "1", "--zoo-dir", str(tiny_zoo), "--quiet",
                 "--output", str(res / "threats" / "bit-errors" / "res8-fp__bit-errors+pgd20.json")]) == 0
    assert main(["leaderboard", "--results-dir", str(res), "--zoo-dir", str(tiny_zoo), "--no-plots"]) == 0
    md = (res / "leaderboard.md").read_text()
    assert "## Bit errors in the stored weights" in md and "int8 PTQ" in md
    # the attacked record is a column of its model's row, marked where its patterns differ
    table = md.split("## Bit errors in the stored weights")[1]
    assert "pgd20 at 0.1 % (robust %)" in table and "(n = 50, 1 pattern)" in table
    assert len([line for line in table.splitlines() if line.startswith("| res8-fp")]) == 1
    assert "pgd20 under bit errors 0.1 %" in md
    lb = json.loads((res / "leaderboard.json").read_text())
    assert [r["model"] for r in lb["rows"]] == ["res8-fp"]  # one row: the bit errors are not a rival result
    html = (res / "leaderboard.html").read_text()
    assert "Bit errors in the stored weights" in html
