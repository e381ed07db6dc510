"""The protocol vocabulary: one precision type, one ε parser and formatter, the battery rules."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from qrobench.protocol import (
    CLEAN_ACC_FLOOR,
    EOT_ATTACKS,
    PRECISION_TOKENS,
    STANDARD_BATTERY,
    STOCHASTIC_REPEATS,
    battery_for,
    default_repeats,
    eps_tag,
    eps_text,
    is_precision_token,
    parse_eps,
    parse_eps_list,
    precision,
    precision_bits,
    precision_for_bits,
)
from qrobench.quant.quantizers import get_quantizer


def test_named_precisions_have_the_protocols_bits_levels_and_codes():
    got = {t: (precision(t).bits, precision(t).levels) for t in ("fp", "4bit", "tnn", "bnn")}
    assert got == {"fp": (32, None), "4bit": (4, 15), "tnn": (2, 3), "bnn": (1, 2)}
    assert precision("4bit").code_range == (-7, 7)
    assert precision("tnn").code_range == precision("bnn").code_range == (-1, 1)
    assert precision("6bit").code_range == (-31, 31) and precision("6bit").levels == 63
    with pytest.raises(ValueError):
        precision("fp").code_range  # noqa: B018 - float weights have no codes
    for bad in ("9bit", "1bit", "ternary", ""):
        with pytest.raises(ValueError, match="unknown precision"):
            precision(bad)


def test_tokens_bits_and_mixed():
    assert PRECISION_TOKENS == ("fp", "mixed", "4bit", "tnn", "bnn")  # widest first: plot order
    assert all(is_precision_token(t) for t in PRECISION_TOKENS) and is_precision_token("3bit")
    assert not is_precision_token("int4")
    assert precision_for_bits(32) == "fp" and precision_for_bits(5) == "5bit"
    assert precision_bits("tnn") == 2.0 and precision_bits("mixed") is None and precision_bits(None) is None


weights = arrays("float32", st.integers(8, 200),
                 elements=st.floats(-2, 2, width=32, allow_nan=False, allow_infinity=False)
                 ).filter(lambda a: (abs(a) > 1e-6).any()).map(torch.from_numpy)


@settings(max_examples=40, deadline=None)
@given(weights, st.sampled_from(["bnn", "tnn", "4bit", "2bit", "3bit", "5bit", "8bit"]))
def test_every_quantizer_stays_inside_its_precisions_code_range_and_levels(w, token):
    """The quantizers and the vocabulary agree: what a quantizer emits is what loading accepts."""
    p = precision(token)
    codes = get_quantizer(token)(w).codes
    lo, hi = p.code_range
    assert int(codes.min()) >= lo and int(codes.max()) <= hi
    assert len(torch.unique(codes)) <= p.levels


def test_eps_parse_and_format_round_trip():
    assert parse_eps("8/255") == 8 / 255 and parse_eps(" 0.5 ") == 0.5
    assert parse_eps_list("2/255, 4/255,8/255") == [2 / 255, 4 / 255, 8 / 255]
    for bad, msg in (("8/0", "number or a fraction"), ("x", "number or a fraction"), ("8", r"\(0, 1\]"),
                     ("0", r"\(0, 1\]")):
        with pytest.raises(ValueError, match=msg):
            parse_eps(bad)
    with pytest.raises(ValueError, match="twice"):
        parse_eps_list("8/255,8/255")
    assert [eps_text(e) for e in (8 / 255, 2 / 255, 0.5, 1.0, 0.0123456)] == \
        ["8/255", "2/255", "1/2", "1", "0.0123456"]
    assert eps_tag(8 / 255) == "8-255" and eps_tag(0.0123456) == "0.01235"
    for k in range(1, 33):
        assert parse_eps(f"{k}/255") == k / 255 and eps_text(parse_eps(f"{k}/255")) == str(
            __import__("fractions").Fraction(k, 255))


def test_battery_rules():
    assert STANDARD_BATTERY == ("fgsm", "pgd20", "cw", "square") and CLEAN_ACC_FLOOR == 0.20
    assert battery_for(False) == [*STANDARD_BATTERY, "aa"]
    assert battery_for(True) == [*STANDARD_BATTERY, "eot-pgd20", "aa-rand"]
    assert battery_for(True, ["pgd20"]) == ["pgd20", "eot-pgd20"]
    assert battery_for(True, ["pgd20", "aa-rand"]) == ["pgd20", "aa-rand"]  # already has EOT
    assert set(EOT_ATTACKS) == {"eot-pgd20", "aa-rand"}
    assert default_repeats(True) == STOCHASTIC_REPEATS == 3 and default_repeats(False) == 1
