"""The body of every reproducer: real, linted functions that `repro` copies into the script with `source_of`, so
what runs is what is read and tested here. They need only NumPy. The script around them defines the framework
call `run(x, y, weight, pos_weight) -> (loss, grad)` (and, for a path row, `run_compiled`; for an identity the
partner side's call and inputs), the inputs, and `SETTINGS`: what the audit recorded and what the right answer is.

A reproducer exits 0 when the problem is still there (the discrepancy reproduces) and 1 when the framework now
gives the right answer, so it can stand in a framework's own test suite or a bisection as it is.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from cases.dtypes import ulp_in_format
from harness.verdict.ulp import same_values

__all__ = ["observe", "reproduce", "ulp_distance"]

Run = Callable[[Any, Any, Any, Any], tuple[Any, Any]]


def ulp_distance(got: float, exact: float, precision: int, emin: int, max_finite: float) -> float:
    """|got − exact| in ULPs of the format at the exact value; 0 for the same non-finite value, else inf when
    either is not finite (the judge's rules for one element)."""
    if not (math.isfinite(got) and math.isfinite(exact)):
        same = (math.isnan(got) and math.isnan(exact)) or got == exact
        return 0.0 if same else math.inf
    return abs(got - exact) / float(ulp_in_format(exact, precision, emin, max_finite))


def _pick(result: Any, index: tuple[int, ...]) -> float:
    return float(np.asarray(result, dtype=np.float64)[index])


def observe(run: Run, run_compiled: Run | None, x: np.ndarray, y: np.ndarray, weight: Any, pos_weight: Any,
            settings: dict[str, Any], partner: tuple[Any, ...] = ()) -> tuple[float, float, str]:
    """The framework's value where the audit looked, the value it should have been, and a line of context.
    For an identity, `run_compiled` is the partner side's call and `partner` its inputs."""
    quantity = 0 if settings["quantity"] == "loss" else 1
    worst = tuple(settings["worst"])
    if settings["check"] == "relation":
        assert run_compiled is not None
        base = np.asarray(run(x, y, weight, pos_weight)[quantity], dtype=np.float64) * settings["factor"]
        mapped = base.ravel()[::-1].reshape(base.shape) if settings["reversed"] and base.ndim else base
        other = run_compiled(*partner)[quantity]
        return _pick(other, worst), _pick(mapped, worst), f"the identity: {settings['statement']}"
    if settings["check"] == "batch":
        index = np.resize(np.arange(x.size), settings["batch_size"])
        alone = [run(x.ravel()[i:i + 1], y.ravel()[i:i + 1], None, None)[quantity] for i in range(x.size)]
        single = np.concatenate([np.asarray(a, dtype=np.float64).ravel() for a in alone])[index]
        batched = np.asarray(run(x.ravel()[index], y.ravel()[index], None, None)[quantity], dtype=np.float64)
        differ = np.flatnonzero(~same_values(batched, single))
        position = int(differ[0]) if differ.size else 0
        context = f"{differ.size} of {batched.size} batch positions differ from the element computed alone"
        return float(batched[position]), float(single[position]), context
    if settings["check"] == "path":
        assert run_compiled is not None
        eager, compiled = run(x, y, weight, pos_weight), run_compiled(x, y, weight, pos_weight)
        return _pick(compiled[quantity], worst), _pick(eager[quantity], worst), "compiled against eager"
    result = run(x, y, weight, pos_weight)[quantity]
    implied = tuple(settings["shape"])
    if np.shape(result) != implied:
        return math.nan, math.nan, f"a result of shape {np.shape(result)} where the inputs imply {implied}"
    return _pick(result, worst), float(settings["expected"]), "against the exact value"


def _one_path_raises(run: Run, run_compiled: Run, inputs: tuple[Any, ...]) -> int:
    """A compiled path that raises where eager computes, or the reverse: 0 while exactly one of them raises."""
    raised = []
    for name, call in (("eager", run), ("compiled", run_compiled)):
        try:
            call(*inputs)
            print(f"{name}: computed a result")
            raised.append(False)
        except Exception as exc:  # the framework's own answer on this path
            print(f"{name}: raised {type(exc).__name__}: {exc}")
            raised.append(True)
    reproduced = raised[0] != raised[1]
    print("reproduced: one path raises, the other computes" if reproduced else
          "NOT reproduced: both paths now agree on raising")
    return 0 if reproduced else 1


def dtype_name(values: Any) -> str:
    """A framework array's dtype by its NumPy name (`torch.bfloat16`, `<dtype: 'bfloat16'>` → bfloat16)."""
    text = str(getattr(values, "dtype", ""))
    return next((name for name in ("bfloat16", "float16", "float32", "float64") if name in text), text)


def _one_path_dtype(run: Run, run_compiled: Run, inputs: tuple[Any, ...], quantity: str, seen: list[str]) -> int:
    """A compiled result of another dtype than eager's: 0 while the two dtypes differ."""
    dtypes = []
    for name, call in (("eager", run), ("compiled", run_compiled)):
        seen.clear()
        call(*inputs)
        dtypes.append(seen[0 if quantity == "loss" else 1])
        print(f"{name}: the {quantity} is {dtypes[-1]}")
    differ = dtypes[0] != dtypes[1]
    print("reproduced: the compiled path returns another dtype" if differ else
          "NOT reproduced: both paths now return the same dtype")
    return 0 if differ else 1


def reproduce(run: Run, run_compiled: Run | None, x: np.ndarray, y: np.ndarray, weight: Any, pos_weight: Any,
              settings: dict[str, Any], partner: tuple[Any, ...] = (), seen: list[str] | None = None) -> int:
    """Run the framework and judge its answer: 0 when the recorded problem is there, 1 when it is gone (`seen`:
    where the script records the dtypes the framework returns, for a compiled path's dtype)."""
    if settings["recorded_error"] == "PathStatus":
        assert run_compiled is not None
        return _one_path_raises(run, run_compiled, (x, y, weight, pos_weight))
    if settings["recorded_error"] == "PathDtype":
        assert run_compiled is not None and seen is not None
        return _one_path_dtype(run, run_compiled, (x, y, weight, pos_weight), settings["quantity"], seen)
    try:
        got, right, context = observe(run, run_compiled, x, y, weight, pos_weight, settings, partner)
    except Exception as exc:  # the framework raised: what the audit recorded, or not
        print(f"raised {type(exc).__name__}: {exc}")
        same = type(exc).__name__ == settings["recorded_error"]
        print("reproduced: it raises as in the audit" if same else "NOT reproduced: the audit recorded no such error")
        return 0 if same else 1
    print(f"{settings['label']}: {context}")
    if math.isnan(right) and context.startswith("a result of shape"):
        print("reproduced: " + context)
        return 0
    error = ulp_distance(got, right, *settings["format"])
    print(f"  got       {got!r}\n  expected  {right!r}   error: {error:.4g} ULP (pass: ≤ {settings['pass_ulp']:g})")
    recorded = float(settings["recorded"])
    if got == recorded or (math.isnan(got) and math.isnan(recorded)):
        print("  the same output as the audit recorded")
    else:
        print(f"  the audit recorded {recorded!r}")
    if settings["check"] == "batch":  # the same bits, zeros' signs included
        wrong = not bool(same_values(np.array([got]), np.array([right]))[0])
    else:
        wrong = error > settings["pass_ulp"]
    print("reproduced: the framework is still off" if wrong else "NOT reproduced: the framework now gives the right "
          "answer")
    return 0 if wrong else 1
