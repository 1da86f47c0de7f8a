"""A row's findings signatures: which distinct problems one judged result shows.

A finding is one root cause: the same failure mode of the same quantity on the same region of inputs. Its
signature is (kind, quantity family, region, failure), and `finding_id` hashes it; frameworks, implementations,
dtypes, reductions, modes, checks and every number are attributes. Kinds:

- `nonfinite`: NaN or an infinity where the exact value is finite, or the reverse (element-wise);
- `precision`: a finite result beyond the tolerance (element-wise): "lost" (0.0 or no correct digit) or
  "imprecise" (some digits lost);
- `convention`: what a documented convention of the framework predicts (`deviation` rows; the region is the
  convention's id);
- `reduction`: a mean or sum that fails where its element-wise row does not (float16 counts and sums; a
  gradient of the mean whose elements fail where the element-wise gradient's do not);
- `dtype`: a result in another dtype than the inputs imply ("narrower result" loses precision);
- `broadcast`: inputs of mismatched shapes silently broadcast instead of raising;
- `raises`: an error on inputs inside the domain (the region says which: integer labels, an empty batch, …);
- `batch`: an element gives other bits inside a batch than alone;
- `path`: the compiled path disagrees with eager;
- `crash`, `timeout`: the worker died or stopped answering.

Element-wise rows name each group of failing elements (`failures`, by region and mode); a mean or sum joins the
groups of its element-wise row (the eager one, for a compiled mode that runs only the mean), so the same cause
in `none` and `mean` is one finding, and an alarm never joins a documented convention's finding.
"""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass
from typing import Any

import numpy as np

from cases import Case, float_format
from harness.findings.script import ulp_distance
from harness.verdict.domain import implied_dtype, shape_problem
from harness.verdict.regions import failure_modes, input_regions
from harness.verdict.tolerance import ALARMS, pass_ulp
from implementations import adapter_classes

__all__ = ["FINDING_STATUSES", "NONFINITE_FAILURES", "Signature", "finding_id", "signatures"]

FINDING_STATUSES = (*ALARMS, "deviation")  # the rows that make findings: alarms, then documented conventions
NONFINITE_FAILURES = frozenset({"NaN", "inf", "finite for inf", "wrong infinity", "not NaN"})
_COUNT_EDGE = 65_520  # float16 holds no integer from here on (it rounds to inf)


@dataclass(frozen=True, slots=True)
class Signature:
    """One problem a row shows, with the element (or case) that shows it."""

    kind: str
    family: str  # "loss", "gradient", or "call" (a problem of the call: both quantities)
    region: str
    failure: str
    example: dict[str, Any]

    @property
    def key(self) -> tuple[str, str, str, str]:
        return (self.kind, self.family, self.region, self.failure)


def finding_id(kind: str, family: str, region: str, failure: str) -> str:
    """A stable id for a signature: the same cause has it in every run, scope and machine."""
    return hashlib.sha256("|".join((kind, family, region, failure)).encode()).hexdigest()[:12]


def _family(quantity: str) -> str:
    """The quantity family: the loss, the gradient, or a further derivative by its own name (forward mode,
    with respect to y, the weights, the second derivative: each computed by other code)."""
    return "loss" if quantity == "loss" else "gradient" if quantity == "grad" else quantity


def _element(row: Any, **values: Any) -> dict[str, Any]:
    """An example: where it was found and its numbers (with `x` and `y`, one element and its own region)."""
    example = {"row_id": row.row_id, "impl": row.impl, "api": row.api, "form": row.input_form, "dtype": row.dtype,
               "case": row.case, "reduction": row.reduction, "mode": row.mode, "check": row.check, "n": int(row.n),
               **values}
    if "x" in example and "y" in example:
        example["region"] = _region(example["x"], example["y"], row.input_form, row.dtype)
    return example


@functools.lru_cache(maxsize=2**16)
def _region(x: Any, y: Any, input_form: str, dtype: str) -> str:
    """One element's region (findings ask for the same few inputs' again and again)."""
    return str(input_regions(np.array([x]), np.array([y]), input_form, dtype)[0])


def _ulp(got: float, expected: float, dtype: str) -> float:
    fmt = float_format(dtype)
    return ulp_distance(float(got), float(expected), fmt.precision, fmt.emin, fmt.max_finite)


def _worst(row: Any) -> tuple[str, str, dict[str, Any]] | None:
    """Region, failure mode and example of the row's worst element (a row of an older run, a batch or path
    check); None where the row points at no element (a scalar result, a result of the wrong shape)."""
    if not row.worst_index:
        return None
    region = _region(row.worst_x, row.worst_y, row.input_form, row.dtype)
    failure = str(failure_modes(np.array([row.got]), np.array([row.expected]))[0])
    index = json.loads(row.worst_index) if row.worst_index else []
    example = _element(row, index=index, x=row.worst_x, y=row.worst_y, got=row.got, expected=row.expected,
                       ulp=_ulp(row.got, row.expected, row.dtype))
    return region, failure, example


def _elementwise(row: Any) -> list[Signature]:
    """The failing groups of an element-wise reference row (`failures`; where none is stored, as in a row of
    schema 1, its worst element, if the row fails for an element)."""
    if "result has shape" in row.error_message:  # no element to point at: the result's shape is wrong
        return [_reduced(row)]
    stored = getattr(row, "failures", None)
    groups = json.loads(stored) if stored else []
    # no failing group stored (a row of schema 1), yet the row fails and not for its dtype: its worst element
    if not groups and row.status in ("fail", "nonfinite") and row.error_type != "OutDtype" \
            and (worst := _worst(row)) is not None:
        groups = [{"region": worst[0], "mode": worst[1], "count": 1, **worst[2]}]
    out = []
    for group in groups:  # region and mode from the element itself: the words of this version, not the run's
        values = {k: (float(group[k]) if k != "index" else group[k])
                  for k in ("index", "x", "y", "got", "expected", "ulp") if k in group}
        example = _element(row, count=int(group.get("count", 1)), **values)
        mode = str(failure_modes(np.array([example["got"]]), np.array([example["expected"]]))[0])
        kind = "nonfinite" if mode in NONFINITE_FAILURES else "precision"
        out.append(Signature(kind, _family(row.quantity), example["region"], mode, example))
    return out


def _call_region(row: Any, case: Case | None) -> str:
    """Where a raised error or a dead worker happened, in words of the inputs (labels' dtype, an empty or 0-d
    batch, …), else the case family's."""
    if case is None:
        return f"{row.family} inputs"
    if case.y_dtype is not None:
        return f"{case.y_dtype} labels"
    if case.size == 0:
        return "empty inputs"
    if case.x.ndim == 0:
        return "0-d inputs"
    return f"{row.family} inputs"


def _dtype(row: Any, case: Case | None) -> Signature:
    """A result in another dtype than the inputs imply (x's for the gradient; x's and a float label's promoted
    together for the loss)."""
    implied = implied_dtype(case.inputs(row.dtype), row.quantity) if case is not None else row.dtype
    precision = float_format(row.out_dtype).precision
    region = ("narrower result" if precision < float_format(row.dtype).precision
              else "label dtype not promoted" if precision < float_format(implied).precision else "wider result")
    return Signature("dtype", "call", region, "dtype", _element(row, out_dtype=row.out_dtype, implied=implied))


def _broadcast(row: Any, case: Case | None) -> Signature:
    problem = shape_problem(case.inputs(row.dtype)) if case is not None else None
    region = ("weight does not broadcast" if problem and problem.startswith("weight")
              else "pos_weight does not broadcast" if problem and problem.startswith("pos_weight")
              else "x and y shapes differ")
    return Signature("broadcast", "call", region, "broadcast", _element(row, message=row.error_message))


_SHAPED_LIKE_WEIGHTS = ("grad_weight", "grad_pos_weight")


def _of_weights(row: Any) -> Signature:
    """A derivative with respect to a weight: the case family's inputs, the worst entry's failure."""
    failure = str(failure_modes(np.array([row.got]), np.array([row.expected]))[0])
    kind = "nonfinite" if failure in NONFINITE_FAILURES else "precision"
    example = _element(row, got=row.got, expected=row.expected, ulp=_ulp(row.got, row.expected, row.dtype))
    return Signature(kind, _family(row.quantity), f"{row.family} inputs", failure, example)


def _size_region(n: int) -> str:
    return "empty inputs" if n == 0 else "n ≥ 65 520 elements" if n >= _COUNT_EDGE else "n < 65 520 elements"


def _reduced(row: Any) -> Signature:
    region = _size_region(row.n)
    failure = ("wrong shape" if "result has shape" in row.error_message
               else str(failure_modes(np.array([row.got]), np.array([row.expected]))[0]))
    example = _element(row, got=row.got, expected=row.expected, ulp=_ulp(row.got, row.expected, row.dtype),
                       message=row.error_message)
    return Signature("reduction", _family(row.quantity), region, failure, example)


def _compared(row: Any) -> Signature:
    """A batch or path row: the worst element's region (a reduced path row: "reduced")."""
    worst = _worst(row)
    if worst is None:
        reduced = _reduced(row)
        worst = ("reduced", reduced.failure, reduced.example)
    region, failure, example = worst
    if row.check == "batch":  # the cause is the batch's code path (SIMD body or tail), wherever the element lies
        return Signature("batch", _family(row.quantity), "element inside a batch", "differs", example)
    if row.check == "relation":
        return Signature("relation", _family(row.quantity), f"{row.relation}, {region}", failure,
                         {**example, "relation": row.relation, "message": row.error_message})
    if row.error_type == "PathDtype":  # the compiled path promotes mixed dtypes otherwise than eager
        return Signature("path", "call", "result dtype differs from eager", "dtype",
                         _element(row, out_dtype=row.out_dtype, message=row.error_message))
    if row.error_type == "PathStatus":  # raises on one path only: no element to point at
        return Signature("path", "call", "raises on one path only", "raises",
                         _element(row, message=row.error_message, error_type=row.error_type))
    return Signature(row.check, _family(row.quantity), region, failure, example)


def signatures(row: Any, case: Case | None, elementwise: dict[tuple[Any, ...], list[Signature]]) -> list[Signature]:
    """The problems one alarm row shows. `elementwise` holds the signatures of the element-wise (`none`) rows by
    (impl, case, dtype, device, quantity, mode): a mean or sum shares the problems of its element-wise row (of
    the eager one, for a compiled mode that runs only the mean)."""
    if row.status == "deviation":
        worst = _worst(row)
        example = worst[2] if worst is not None else _element(row, got=row.got, expected=row.expected)
        return [Signature("convention", _family(row.quantity), row.deviation, "documented", example)]
    if row.status in ("error", "crashed", "timeout"):
        kind = {"error": "raises", "crashed": "crash", "timeout": "timeout"}[row.status]
        return [Signature(kind, "call", _call_region(row, case), kind,
                          _element(row, message=row.error_message, error_type=row.error_type))]
    if row.error_type == "SilentBroadcast":
        return [_broadcast(row, case)]
    dtype = [_dtype(row, case)] if row.error_type == "OutDtype" else []
    if row.check != "reference":
        return [*dtype, _compared(row)]
    found = _reference(row, elementwise)
    if dtype and dtype[0].region != "wider result":  # lost digits are the narrower dtype's: that is the finding
        found = [s for s in found if s.failure not in ("lost", "imprecise")]
    if (compute := _narrower_computation(row)) is not None:
        found = [_as_narrower(signature, compute) for signature in found]
    return dtype + found


@functools.cache
def _compute_dtypes() -> dict[str, str]:
    """impl → the dtype it computes in whatever its inputs' (`Implementation.compute_dtype`), where it has one."""
    return {impl.impl: impl.compute_dtype for adapter in adapter_classes().values() for impl in adapter.implementations
            if impl.compute_dtype}


def _narrower_computation(row: Any) -> str | None:
    """The dtype the row's implementation computes in, where it is narrower than the row's."""
    compute = _compute_dtypes().get(row.impl)
    if compute and float_format(compute).precision < float_format(row.dtype).precision:
        return compute
    return None


def _as_narrower(signature: Signature, compute: str) -> Signature:
    """Lost digits that the dtype computed in explains (the result is right to that dtype's pass tolerance): the
    narrower computation's finding, not one of its own."""
    example = signature.example
    if signature.kind != "precision" or "got" not in example:
        return signature
    if _ulp(example["got"], example["expected"], compute) > pass_ulp(None):
        return signature
    return Signature("dtype", "call", "narrower computation", "dtype", {**example, "compute_dtype": compute})


def _reference(row: Any, elementwise: dict[tuple[Any, ...], list[Signature]]) -> list[Signature]:
    """A reference row's problems: its elements' for `none`; a mean or sum shares those of its element-wise row,
    and what its element-wise row lacks is the reduction's (a float16 count or sum)."""
    if row.quantity in _SHAPED_LIKE_WEIGHTS:  # summed over what each weight broadcasts to: no element of x
        return [_of_weights(row)]
    if row.reduction == "none":
        return _elementwise(row)
    key = (row.impl, row.case, row.dtype, row.device, row.quantity)
    joined = [s for s in elementwise.get((*key, row.mode), elementwise.get((*key, "eager"), []))
              if s.kind != "convention"]  # an alarm is never filed under a documented convention
    if row.quantity in ("loss", "grad_fwd"):  # a scalar: forward mode along ones reduces like the loss
        return joined or [_reduced(row)]
    shared, out = {s.key for s in joined}, dict[tuple[str, str, str, str], Signature]()
    for signature in _elementwise(row):  # a gradient is element-wise under every reduction
        if signature.key not in shared:
            signature = Signature("reduction", signature.family, _size_region(row.n), signature.failure,
                                  signature.example)
        out.setdefault(signature.key, signature)
    return list(out.values())
