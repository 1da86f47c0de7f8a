"""The built-in case families, against first principles: each dtype's thresholds recomputed in mpmath and checked
on its grid, the probability edges against ml_dtypes.finfo, the recipes rerun, names, seeds and tags."""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from fractions import Fraction

import ml_dtypes
import mpmath
import numpy as np
import pytest

from cases import (
    DTYPES,
    SCALE_SIZES,
    Case,
    FloatFormat,
    builtin_cases,
    cast,
    float_format,
    logit_threshold_neighbours,
    logit_thresholds_for,
    prob_edges_for,
    round_to_format,
)

NEW_FAMILIES = ["logit_thresholds", "prob_edges", "labels", "weights_extra", "targets", "scale"]
SMALL_CASE_LIMIT = 200  # elements: the default audit stays fast


@contextmanager
def _exact() -> Iterator[None]:
    with mpmath.workprec(256):  # far beyond float64: no value computed here lies within reach of a tie
        yield


def _rounded(value: mpmath.mpf, fmt: FloatFormat) -> float:
    """`value` rounded to `fmt`: by mpmath to float64, then by round_to_format. Safe unless the float64 lands on a
    tie of `fmt`, which the exact boundary checks beside each use would expose."""
    return float(round_to_format(float(value), fmt))


def _sigmoid(x: float) -> mpmath.mpf:
    return 1 / (1 + mpmath.exp(-mpmath.mpf(x)))


def _softplus(x: float) -> mpmath.mpf:
    return mpmath.log1p(mpmath.exp(mpmath.mpf(x)))


def _case(name: str, seed: int = 0) -> Case:
    return next(c for c in builtin_cases(seed, NEW_FAMILIES) if c.name == name)


# ----------------------------------------------------------------------------------------- logit thresholds


@pytest.mark.parametrize("dtype", list(DTYPES))
def test_neighbours_are_adjacent_and_representable(dtype: str) -> None:
    fmt = float_format(dtype)
    exact = logit_thresholds_for(fmt)
    for name, (below, above) in logit_threshold_neighbours(fmt).items():
        assert float(round_to_format(below, fmt)) == below and float(round_to_format(above, fmt)) == above, name
        assert above - below == float(fmt.ulp(below)), f"{name}: {below!r} and {above!r} are not adjacent"
        # the float64 nearest the crossing lies between them (or on one, for float64 itself)
        assert below <= exact[name] <= above, f"{name}: {exact[name]!r} not in [{below!r}, {above!r}]"


@pytest.mark.parametrize("dtype", list(DTYPES))
def test_exp_thresholds(dtype: str) -> None:
    fmt = float_format(dtype)
    exact = logit_thresholds_for(fmt)
    near = logit_threshold_neighbours(fmt)
    s, normal, top = fmt.smallest_subnormal, fmt.smallest_normal, fmt.max_finite
    with _exact():
        # overflow from max + ½ulp(max) = max·(1 + 2**-p/(2 − 2**(1-p))) on: log max within 2**-p; both straddled
        rounding_top = mpmath.mpf(top) + mpmath.mpf(float(fmt.ulp(top))) / 2
        assert exact["exp_overflow"] == pytest.approx(math.log(top), abs=2.0**-fmt.precision)
        below, above = near["exp_overflow"]
        assert below < mpmath.log(top) < above
        assert mpmath.exp(above) >= rounding_top and _rounded(mpmath.exp(above), fmt) == math.inf
        assert mpmath.exp(below) < rounding_top and _rounded(mpmath.exp(below), fmt) <= top
        # underflow to 0 up to ½·smallest subnormal (ties to even: 0): exactly log(s/2)
        assert exact["exp_underflow"] == pytest.approx(math.log(s) - math.log(2.0), rel=2.0**-52)
        below, above = near["exp_underflow"]
        assert mpmath.exp(below) <= mpmath.mpf(s) / 2 and _rounded(mpmath.exp(below), fmt) == 0.0
        assert _rounded(mpmath.exp(above), fmt) == s
        # subnormal below smallest normal − ½·smallest subnormal = normal·(1 − 2**-p): log(normal) − 2**-p − …
        assert exact["exp_subnormal"] == pytest.approx(math.log(normal), abs=2.0 ** (1 - fmt.precision))
        below, above = near["exp_subnormal"]
        assert below < mpmath.log(normal) < above
        assert 0 < _rounded(mpmath.exp(below), fmt) < normal <= _rounded(mpmath.exp(above), fmt)


@pytest.mark.parametrize("dtype", list(DTYPES))
def test_sigmoid_thresholds(dtype: str) -> None:
    fmt = float_format(dtype)
    exact = logit_thresholds_for(fmt)
    near = logit_threshold_neighbours(fmt)
    p, s = fmt.precision, fmt.smallest_subnormal
    with _exact():
        # σ(x) rounds to 1 iff 1 − σ(x) = σ(−x) ≤ 2**-(p+1) (half the gap below 1; the tie goes to even 1)
        assert exact["sigmoid_one"] == pytest.approx(math.log(2.0 ** (p + 1) - 1), rel=2.0**-52)
        below, above = near["sigmoid_one"]
        assert _sigmoid(-above) <= mpmath.ldexp(1, -(p + 1)) < _sigmoid(-below)
        assert _rounded(_sigmoid(above), fmt) == 1.0
        assert _rounded(_sigmoid(below), fmt) == 1.0 - 2.0**-p
        # σ(x) rounds to 0 iff σ(x) ≤ s/2
        below, above = near["sigmoid_zero"]
        assert _sigmoid(below) <= mpmath.mpf(s) / 2 < _sigmoid(above)
        assert _rounded(_sigmoid(below), fmt) == 0.0 and _rounded(_sigmoid(above), fmt) == s
        assert exact["sigmoid_zero"] == pytest.approx(float(-mpmath.log(2 / mpmath.mpf(s) - 1)), rel=2.0**-52)


@pytest.mark.parametrize("dtype", list(DTYPES))
def test_softplus_thresholds(dtype: str) -> None:
    fmt = float_format(dtype)
    near = logit_threshold_neighbours(fmt)
    s, normal = fmt.smallest_subnormal, fmt.smallest_normal
    with _exact():
        below, above = near["softplus_subnormal"]
        assert _softplus(below) < normal - s / 2 <= _softplus(above)
        assert 0 < _rounded(_softplus(below), fmt) < normal <= _rounded(_softplus(above), fmt)
        below, above = near["softplus_zero"]
        assert _softplus(below) <= mpmath.mpf(s) / 2 < _softplus(above)
        assert _rounded(_softplus(below), fmt) == 0.0 and _rounded(_softplus(above), fmt) == s


def test_float32_thresholds_match_known_constants() -> None:
    exact = logit_thresholds_for(float_format("float32"))
    assert exact["exp_overflow"] == pytest.approx(88.72283905206835, abs=2e-7)  # log(FLT_MAX)
    assert exact["exp_underflow"] == pytest.approx(-103.97207708399179, rel=1e-15)  # log(2**-150)
    assert exact["sigmoid_one"] == pytest.approx(17.328679513998633, abs=1e-7)  # log(2**25)
    assert logit_threshold_neighbours(float_format("float32"))["sigmoid_one"][1] == 17.32868003845215


@pytest.mark.parametrize("dtype", list(DTYPES))
def test_threshold_case_contents(dtype: str) -> None:
    fmt = float_format(dtype)
    case = _case(f"logit_thresholds_{dtype}")
    assert case.dtypes == (dtype,) and case.input_form == "logits" and "batch" in case.tags
    assert ("path" in case.tags) == (dtype == "float32")
    assert case.size <= SMALL_CASE_LIMIT
    np.testing.assert_array_equal(round_to_format(case.x, fmt), case.x)  # every input is exact in the dtype
    xs = set(case.x.tolist())
    for below, above in logit_threshold_neighbours(fmt).values():
        assert {below, above, -below, -above} <= xs
    for magnitude in (fmt.max_finite, fmt.smallest_normal, fmt.smallest_subnormal, math.inf):
        assert {magnitude, -magnitude} <= xs
    for x in xs:
        assert sorted(case.y[case.x == x].tolist()) == [0.0, 0.5, 1.0], f"x={x!r} does not meet y = 0, 0.5, 1"
    nan_case = _case("logit_nan")
    assert np.isnan(nan_case.x).sum() == 3 and "invalid" in nan_case.tags


# ----------------------------------------------------------------------------------------- probabilities


@pytest.mark.parametrize("dtype", list(DTYPES))
def test_prob_edges(dtype: str) -> None:
    fmt = float_format(dtype)
    info = ml_dtypes.finfo(fmt.numpy_dtype)
    inside, outside = prob_edges_for(fmt)
    expected = [0.0, float(info.smallest_subnormal), float(info.smallest_normal), 0.5, 1.0 - float(info.epsneg), 1.0]
    assert inside == expected
    assert outside == [-float(info.smallest_subnormal), 1.0 + float(info.eps)]
    # 1 − epsneg is the largest number below 1: halfway to 1 rounds (ties to even) to 1
    assert float(round_to_format(1.0 - float(info.epsneg) / 2, fmt)) == 1.0
    case, invalid = _case(f"prob_edges_{dtype}"), _case(f"prob_outside_{dtype}")
    for c, values in ((case, inside), (invalid, outside)):
        assert c.input_form == "probs" and c.dtypes == (dtype,)
        np.testing.assert_array_equal(cast(c.x, dtype).astype(np.float64), c.x)  # exact in the dtype, no rounding
        assert sorted(set(c.x.tolist())) == sorted(values) and c.size == 3 * len(values)
        assert set(c.y.tolist()) == {0.0, 0.5, 1.0}
    assert "invalid" in invalid.tags and ((invalid.x < 0) | (invalid.x > 1)).all()


# ----------------------------------------------------------------------------------------- labels, weights, targets


def test_labels() -> None:
    valid = {0.0, 1.0, 0.5, 1e-30, 1.0 - 2.0**-40, 0.3}
    for form in ("logits", "probs"):
        assert set(_case(f"labels_{form}").y.tolist()) == valid
        assert set(_case(f"labels_outside_{form}").y.tolist()) == {-0.1, 1.1}
        assert np.isnan(_case(f"labels_nan_{form}").y).all()
    assert set(_case("labels_logits").x.tolist()) == {-30.0, -2.0, 0.0, 2.0, 30.0}
    # the reference follows the rounded label: 1e-30 is 0 in float16, 1 − 2**-40 is 1 in float32
    y16 = _case("labels_logits").inputs("float16").y.astype(np.float64)
    assert 1e-30 not in set(y16.tolist()) and 0.0 in set(y16.tolist())
    assert 1.0 - 2.0**-40 not in set(_case("labels_logits").inputs("float32").y.astype(np.float64).tolist())


def test_weights_extra() -> None:
    zero, negative = _case("weight_zero").weight, _case("weight_negative").weight
    assert zero is not None and (zero == 0).any() and (zero != 0).any()
    assert negative is not None and (negative < 0).any()
    zero_pw = _case("pos_weight_zero")
    assert zero_pw.pos_weight is not None and (zero_pw.pos_weight == 0).all()
    all_0d = _case("weight_0d_all_0d")
    assert all_0d.x.shape == all_0d.y.shape == () and all_0d.weight is not None and all_0d.weight.shape == ()
    both = _case("weight_rows_pos_weight_classes")
    assert both.weight is not None and both.pos_weight is not None
    assert both.weight.shape == (both.x.shape[0], 1) and both.pos_weight.shape == (both.x.shape[-1],)
    small = _case("pos_weight_below_one").inputs("float32")
    assert small.pos_weight is not None and (small.y == 1).all()
    # 1 + (p - 1)·1 in float32 is not p for any of them: the digits the fuzzer found torch's BCE losing
    one = np.float32(1)
    assert ((one + (small.pos_weight - one)) != small.pos_weight).all()
    for name, attr in (("weight_not_broadcastable", "weight"), ("pos_weight_not_broadcastable", "pos_weight")):
        case = _case(name)
        assert case.x.shape == (2, 4) and "invalid" in case.tags
        with pytest.raises(ValueError, match="broadcast"):
            np.broadcast_shapes(getattr(case, attr).shape, case.x.shape)


@pytest.mark.parametrize(("name", "y_dtype"), [("targets_int64_logits", np.int64), ("targets_int64_probs", np.int64),
                                               ("targets_bool_logits", np.bool_), ("targets_bool_probs", np.bool_)])
def test_integer_and_bool_targets(name: str, y_dtype: type) -> None:
    case = _case(name)
    for dtype in DTYPES:
        inputs = case.inputs(dtype)
        assert inputs.y.dtype == np.dtype(y_dtype) and inputs.x.dtype == DTYPES[dtype].numpy_dtype
        np.testing.assert_array_equal(inputs.y.astype(np.float64), case.y)


@pytest.mark.parametrize("form", ["logits", "probs"])
def test_float64_labels_against_narrow_inputs(form: str) -> None:
    case = _case(f"targets_float64_{form}")
    assert case.dtypes == ("float32", "float16", "bfloat16")
    inputs = case.inputs("float16")
    assert inputs.y.dtype == np.float64 and inputs.x.dtype == np.float16
    np.testing.assert_array_equal(inputs.y, case.y)  # labels unrounded
    assert not np.array_equal(cast(case.y, "float16").astype(np.float64), case.y)  # float16 could not hold them


# ----------------------------------------------------------------------------------------- scale and recipes


def _bits(values: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(values, dtype=np.float64).view(np.uint64)


@pytest.mark.parametrize("seed", [0, 12345])
def test_recipes_regenerate_inputs_bit_for_bit(seed: int) -> None:
    with_recipe = [c for c in builtin_cases(seed) if c.recipe]
    assert {c.name for c in with_recipe} == {c.name for c in builtin_cases(seed, ["scale"])}
    for case in with_recipe:
        namespace: dict[str, object] = {"np": np}
        exec(case.recipe, namespace)
        for attr in ("x", "y"):
            regenerated = namespace[attr]
            assert isinstance(regenerated, np.ndarray)
            np.testing.assert_array_equal(_bits(regenerated), _bits(getattr(case, attr)), err_msg=case.name)


def test_scale_cases() -> None:
    everything = builtin_cases(0, ["scale"])
    cases = [c for c in everything if c.size in SCALE_SIZES]
    assert {c.size for c in cases if c.input_form == "logits"} == set(SCALE_SIZES) == {10**3, 10**4, 10**5, 10**6}
    assert {c.size for c in cases if c.input_form == "probs"} == {10**5, 10**6}
    assert all(c.dtypes == ("float16", "bfloat16") and set(np.unique(c.y)) == {0.0, 1.0} for c in cases)
    # float16 logits around float16's largest integers: its count is 65504 up to 65519, inf from 65520
    edges = {c.x.shape: c for c in everything if c.size not in SCALE_SIZES}
    assert set(edges) == {(65_535,), (65_536,), (65_537,), (232, 304)}
    assert all(c.dtypes == ("float16",) and c.input_form == "logits" and c.y.shape == c.x.shape
               for c in edges.values())
    with np.errstate(over="ignore"):
        assert [float(np.float16(c.size)) for c in edges.values()] == [np.inf] * 4
    # the exact sum of the float16 loss passes float16's largest number (65504) from n = 1e5 on, not at 1e4
    for case in cases:
        if case.input_form == "logits" and case.size <= 10**5:
            x = case.inputs("float16").x.astype(np.float64)
            total = float(np.sum(np.logaddexp(0.0, np.where(case.y == 1, -x, x))))
            assert (total > 65504.0) == (case.size >= 10**5), f"{case.name}: loss sum {total}"


def test_full_cases_are_the_1e4_and_1e6_ones() -> None:
    cases = builtin_cases(0)
    assert {c.name for c in cases if "full" in c.tags} == {c.name for c in cases if c.size in (10**4, 10**6)}
    assert len([c for c in cases if "full" in c.tags]) == 3


# ----------------------------------------------------------------------------------------- across families


def test_names_unique_and_small_cases_small() -> None:
    cases = builtin_cases(0)
    names = [c.name for c in cases]
    assert len(names) == len(set(names)), sorted(n for n in names if names.count(n) > 1)
    for case in builtin_cases(0, NEW_FAMILIES):
        assert case.family == "scale" or case.size <= SMALL_CASE_LIMIT, f"{case.name} has {case.size} elements"
    for kept in ("seed_logits", "seed_probs", "large_logits", "mismatch_logits"):
        assert kept in names


def test_path_tag_at_most_once_per_form_and_family() -> None:
    """Compiled paths cost seconds per graph: one small case per family and form, but for the contexts family,
    which exists for them (every case of it small)."""
    seen: set[tuple[str, str]] = set()
    for case in builtin_cases(0):
        if "path" in case.tags and case.family == "contexts":
            assert case.size <= SMALL_CASE_LIMIT
        elif "path" in case.tags:
            key = (case.family, case.input_form)
            assert key not in seen, f"second 'path' case in {key}: {case.name}"
            assert case.size <= SMALL_CASE_LIMIT
            seen.add(key)
    assert ("logit_thresholds", "logits") in seen and ("seed", "probs") in seen


def _fingerprint(cases: list[Case]) -> dict[str, tuple[bytes, ...]]:
    def raw(value: np.ndarray | None) -> bytes:
        return b"" if value is None else value.tobytes() + str(value.shape).encode()

    return {c.name: (raw(c.x), raw(c.y), raw(c.weight), raw(c.pos_weight), c.recipe.encode()) for c in cases}


def test_deterministic_in_the_seed() -> None:
    first, again, other = (_fingerprint(builtin_cases(s)) for s in (7, 7, 8))
    assert first == again
    changed = {name for name in first if first[name] != other[name]}
    assert changed, "the seed changes nothing"
    assert not any(name.startswith(("logit_thresholds", "prob_edges", "labels")) for name in changed)
    assert {c.name for c in builtin_cases(0, ["scale"])} <= changed


@pytest.mark.parametrize("family", NEW_FAMILIES)
def test_family_registered_and_cases_named_after_it(family: str) -> None:
    cases = builtin_cases(0, [family])
    assert cases and all(c.family == family for c in cases)
    assert all(c.description for c in cases)


def test_large_means_overflow_only_in_their_sum() -> None:
    large = {case.name: case for case in builtin_cases(families=["overflow"])}
    for name, fmt in DTYPES.items():
        case = large[f"overflow_mean_{name}"]
        x = case.inputs(name).x.astype(np.float64)
        assert case.dtypes == (name,) and (case.y == 0).all()
        total = sum(Fraction(v) for v in x.tolist())  # exactly: each loss is x itself here, softplus(x) = x
        assert total > Fraction(fmt.max_finite) >= total / 2 > 0
