"""Every registered quantizer keeps the promises its registry entry makes (Brevitas-style
properties): values on the grid codes·scale, codes inside the code range, at most ``levels``
distinct values, and quantizing a quantized tensor changes nothing."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from qrobench.protocol import precision
from qrobench.quant import QUANTIZER_REGISTRY, QUANTIZERS, get_quantizer, register_quantizer

# (token, ternary convention): every registered quantizer, both ternary conventions
CASES = [(t, c) for t in QUANTIZER_REGISTRY.names()
         for c in (("ref", "twn") if "convention" in QUANTIZER_REGISTRY.get(t).options else ("ref",))]

weights = arrays(
    "float32", st.integers(1, 300),
    elements=st.floats(-4, 4, width=32, allow_nan=False, allow_infinity=False, allow_subnormal=False),
).map(torch.from_numpy)


def test_cases_cover_the_protocol_precisions():
    tokens = {t for t, _ in CASES}
    assert {"bnn", "tnn", "4bit"} | {f"{b}bit" for b in range(2, 9)} <= tokens


@pytest.mark.parametrize("token", QUANTIZER_REGISTRY.names())
def test_entry_agrees_with_the_protocol(token):
    spec, p = QUANTIZER_REGISTRY.get(token), precision(token)
    assert (spec.levels, spec.code_range) == (p.levels, p.code_range)
    assert QUANTIZERS[token] is spec


@settings(max_examples=40, deadline=None)
@given(w=weights, case=st.sampled_from(CASES))
def test_values_on_grid_codes_in_range_at_most_levels(w, case):
    token, convention = case
    spec = QUANTIZER_REGISTRY.get(token)
    q = get_quantizer(token, convention)(w)
    assert q.codes.dtype == torch.int8 and q.codes.shape == w.shape
    lo, hi = spec.code_range
    assert int(q.codes.min()) >= lo and int(q.codes.max()) <= hi
    out = q.dequantize()
    assert len(torch.unique(q.codes)) <= spec.levels and len(torch.unique(out)) <= spec.levels
    assert torch.isfinite(out).all() and float(q.scale) >= 0
    if float(q.scale) > 0:  # every value is an integer code times the one scale
        k = out / q.scale
        assert torch.allclose(k, k.round(), atol=1e-4) and torch.equal(k.round().to(torch.int8), q.codes)
    # sign is kept: no weight changes sign (zeros may appear)
    assert torch.all(out * w >= 0)


@settings(max_examples=40, deadline=None)
@given(w=weights, case=st.sampled_from(CASES))
def test_idempotent(w, case):
    token, convention = case
    quant = get_quantizer(token, convention)
    q1 = quant(w)
    out1 = q1.dequantize()
    q2 = quant(out1)
    assert torch.equal(q2.codes, q1.codes)
    if (token, convention) == ("tnn", "ref"):
        # the authors' convention divides by the total count, so requantizing shrinks the
        # scale by the kept fraction (same codes): a fixed point only when nothing is zeroed
        kept = float((q1.codes != 0).float().mean())
        assert torch.allclose(q2.scale, q1.scale * kept, rtol=1e-5, atol=1e-12)
    else:
        assert torch.allclose(q2.dequantize(), out1, rtol=1e-5, atol=1e-7)


def test_registration_must_agree_with_the_protocol():
    with pytest.raises(ValueError, match="disagree"):
        register_quantizer("4bit", levels=16)(lambda w: None)
    with pytest.raises(ValueError, match="float"):
        register_quantizer("fp")(lambda w: None)
    with pytest.raises(ValueError, match="give levels and code_range"):
        register_quantizer("_test-nolevels")(lambda w: None)
    with pytest.raises(ValueError, match="cannot lie"):
        register_quantizer("_test-toomany", levels=5, code_range=(-1, 1))(lambda w: None)
    assert "_test-nolevels" not in QUANTIZER_REGISTRY and "_test-toomany" not in QUANTIZER_REGISTRY


def test_unknown_precision_is_a_value_error_with_a_suggestion():
    with pytest.raises(ValueError, match="did you mean '8bit'"):
        get_quantizer("9bit")
