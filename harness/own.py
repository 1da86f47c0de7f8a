"""Your own BCE against the exact reference: `check_loss` runs the built-in families (or given cases) through a
function of yours in this process and groups what it got wrong into findings (the fixture `bce_check` fails a
test with them); `registered_callables` names functions for an audit's workers (`audit --callable`)."""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cases import DTYPES, Case
from harness import options as choice
from harness.conformance.here import run_here
from harness.findings import build_findings
from harness.options import FUZZ_QUANTITIES, UsageError
from harness.store.folder import RunStore
from harness.store.schema import CONFORMANCE_COLUMNS
from harness.verdict.tolerance import STATUSES
from implementations import Adapter, adapter_classes
from implementations.own import CALLABLES_ENV, BadCallable, OwnSpec, framework_of, label_of, module_of, own_adapter

__all__ = ["CHECK_FAILS_ON", "LossCheck", "check_loss", "registered_callables", "run_callables"]

CHECK_FAILS_ON = ("fail", "nonfinite", "error", "crashed", "timeout")
_SHOWN = 10  # findings written out in a failure's summary
_INLINE = 16  # a case up to this many elements is written out in a repro call


@dataclass(frozen=True, slots=True)
class LossCheck:
    """What `check_loss` found: every row (the audit's columns), the findings (rank order), and the statuses that
    fail it."""

    name: str
    spec: OwnSpec
    adapter: type[Adapter]
    rows: pd.DataFrame
    findings: pd.DataFrame
    fail_on: tuple[str, ...]
    cases: dict[str, Case]

    @property
    def failing(self) -> pd.DataFrame:
        return self.findings[self.findings["status"].isin(self.fail_on)]

    @property
    def passed(self) -> bool:
        return self.failing.empty

    def counts(self) -> str:
        counts = self.rows["status"].value_counts()
        return ", ".join(f"{status} {count}" for status, count in counts.items())

    def summary(self) -> str:
        """The verdict for people: the counts, then each failing finding with its minimal element and the call
        that reproduces it."""
        failing = self.failing
        head = (f"{self.name} ({self.spec.framework}, {self.spec.form}): {len(failing)} failing finding(s) in "
                f"{len(self.rows)} rows ({self.counts()})")
        lines = [head]
        for number, finding in enumerate(failing.head(_SHOWN).itertuples(index=False), 1):
            lines += [f"{number}. [{finding.status}] {finding.title}",
                      f"   where: {_listed(finding.dtypes)}; {_listed(finding.quantities)}; reductions "
                      f"{_listed(finding.reductions)}; {finding.rows} row(s)",
                      f"   minimal: {self._minimal(finding)}",
                      f"   repro: {self._call(finding)}"]
        if len(failing) > _SHOWN:
            lines.append(f"... and {len(failing) - _SHOWN} more (LossCheck.findings has them all)")
        return "\n".join(lines)

    def _minimal(self, finding: Any) -> str:
        if finding.minimal != "element":
            case = self.cases.get(str(finding.example_case))
            shapes = "" if case is None else f": x {case.x.shape}, y {case.y.shape}"
            return f"the inputs of case {finding.example_case}{shapes}, in {finding.example_dtype} " \
                   f"({finding.example_reduction})"
        where = f"x={_number(finding.x)}, y={_number(finding.y)}"
        for name in ("weight", "pos_weight"):
            if _present(getattr(finding, name)):
                where += f", {name}={_number(getattr(finding, name))}"
        ulp = f" ({_number(finding.ulp_error)} ULP)" if finding.ulp_error == finding.ulp_error else ""
        return (f"{where} in {finding.example_dtype} ({finding.example_reduction}): got {_number(finding.got)}, "
                f"exact {_number(finding.expected)}{ulp}")

    def _call(self, finding: Any) -> str:
        """The one call that shows the finding: the function on the minimal element as 1-element arrays."""
        case = self.cases.get(str(finding.example_case))
        dtype = str(finding.example_dtype)
        inputs = None if case is None else case.inputs(dtype)
        if finding.minimal != "element" and (inputs is None or inputs.x.size > _INLINE or inputs.y.size > _INLINE):
            return f"{self.spec.function}(x, y) on case {finding.example_case}'s inputs (LossCheck.cases has them)"

        def array(values: Any, dtype_name: str) -> str:
            flat = np.asarray(values, dtype=np.float64)
            text = self.adapter.literal(f"[{', '.join(_number(v) for v in flat.ravel())}]", dtype_name)
            return text if flat.ndim == 1 else f"{text}.reshape({flat.shape})"

        given: dict[str, Any]
        if finding.minimal != "element" and inputs is not None:
            given = {"x": inputs.x, "y": inputs.y, "weight": inputs.weight, "pos_weight": inputs.pos_weight}
        else:
            given = {name: [getattr(finding, name)] for name in ("x", "y", "weight", "pos_weight")
                     if name in ("x", "y") or _present(getattr(finding, name))}
        given = {name: values for name, values in given.items() if values is not None}
        dtypes = {"y": dtype if inputs is None else inputs.y.dtype.name}
        arguments = [array(given.pop("x"), dtype), array(given.pop("y"), dtypes["y"])]
        arguments += [f"{name}={array(values, dtype)}" for name, values in given.items()]
        reduction = str(finding.example_reduction)
        if not self.spec.reduction and reduction != "none":
            arguments.append(f"reduction={reduction!r}")
        quantities = [str(q) for q in finding.quantities if q != "loss"]
        then = f"  # then {', '.join(quantities)} of its sum by autodiff" if quantities else ""
        return f"{self.spec.function}({', '.join(arguments)}){then}"


def _listed(values: Any) -> str:
    return ", ".join(str(value) for value in values)


def _present(value: Any) -> bool:
    return value is not None and value == value


def _number(value: Any) -> str:
    """A float as Python reads it back: float('inf'), float('nan') for the non-finite."""
    number = float(value)
    return repr(number) if number == number and abs(number) != float("inf") else f"float({str(number)!r})"


def _spec(function: Callable[..., Any], input_form: str, framework: str | None, reduction: str | None,
          name: str | None) -> OwnSpec:
    if not callable(function):
        raise UsageError(f"bce_check: {function!r} is not callable; pass your loss function")
    try:
        chosen = framework or framework_of(function)
        return OwnSpec(module_of(function), label_of(function, name), input_form, chosen, reduction or "").checked()
    except BadCallable as exc:
        raise UsageError(str(exc)) from None


def check_loss(function: Callable[..., Any], *, input_form: str = "logits", framework: str | None = None,
               dtypes: Sequence[str] | None = None, families: Sequence[str] | None = None,
               cases: str | Path | Sequence[Case] | None = None, reduction: str | None = None,
               devices: Sequence[str] | None = None, quantities: Sequence[str] = ("loss", "grad"),
               fail_on: str | Sequence[str] = CHECK_FAILS_ON, name: str | None = None, use_cache: bool = True,
               seed: int = 0) -> LossCheck:
    """Check your own BCE against the exact reference, in this process.

    Args:
        function: takes `(x, y)` (and `weight=`, `pos_weight=` when it names them) as NumPy arrays or tensors of
            `framework`, and returns the per-element loss; with a `reduction` parameter it is called with
            "none", "mean" and "sum" and returns that reduced loss.
        input_form: "logits" or "probs": what x is.
        framework: numpy, torch, jax or tensorflow (default: the one its code uses). Its autodiff gives the
            gradient, judged too (NumPy has none: the loss only).
        dtypes: NumPy names (default: all four); families, cases: as `audit` (default: every built-in family).
        reduction: the one reduction the function returns, when it has no `reduction` parameter.
        devices: cpu (default) and/or gpu.
        quantities: loss and grad (default), and any of the further derivatives (grad_fwd, grad_y, grad_weight,
            grad_pos_weight, grad2), judged on the cases tagged "derivative".
        fail_on: the statuses that fail the check.
    """
    spec = _spec(function, input_form, framework, reduction, name)
    chosen_dtypes = choice.choose("dtype", dtypes, list(DTYPES))
    chosen_devices = choice.chosen_devices(devices)
    chosen_quantities = choice.choose("quantity", quantities, list(FUZZ_QUANTITIES))
    failing = (fail_on,) if isinstance(fail_on, str) else tuple(fail_on)
    choice.choose("status of fail_on", failing, list(STATUSES))
    all_cases = [case for case in choice.chosen_cases(cases, families, seed) if case.input_form == input_form]
    kind = own_adapter(spec, adapter_classes()[spec.framework], function)
    adapter = kind().attach()
    missing = sorted(set(chosen_devices) - set(adapter.devices()))
    if missing:
        raise UsageError(f"{spec.framework} has no {missing[0]} here; check on {', '.join(adapter.devices())}")
    rows = run_here(adapter, all_cases, chosen_dtypes, chosen_devices, use_cache=use_cache, run_id="check",
                    quantities=chosen_quantities)
    table = pd.DataFrame([row.record() for row in rows], columns=CONFORMANCE_COLUMNS)
    by_name = {case.name: case for case in all_cases}
    findings, _ = build_findings(table, by_name, run_dir="")
    if dtypes is not None:
        _warn_unchecked(table, chosen_dtypes)
    return LossCheck(spec.name, spec, kind, table, findings, failing, by_name)


def _warn_unchecked(table: pd.DataFrame, dtypes: Sequence[str]) -> None:
    """A dtype asked for by name that no row judged (all unsupported) is said, not passed in silence."""
    for dtype in dtypes:
        rows = table[table["dtype"] == dtype]
        if not rows.empty and (rows["status"] == "unsupported").all():
            why = rows["error_message"].value_counts().index[0]
            warnings.warn(f"bce_check: nothing was checked in {dtype}: {why}", UserWarning, stacklevel=3)


def run_callables(run_dir: str | Path) -> list[str]:
    """The user's functions an audit's run folder was made with (its meta.json's `callables`)."""
    return list(RunStore(run_dir).read_meta().get("callables") or [])


@contextlib.contextmanager
def registered_callables(specs: Sequence[str]) -> Iterator[list[OwnSpec]]:
    """The user's functions (`module:function[:form[:framework]]`) known to the registry, in this process and in
    the workers it starts, while the block runs; yields their specs (resolved: `text()` names the framework). A
    bad spec, or a name that clashes, is a `UsageError`."""
    try:
        parsed = [OwnSpec.parse(text) for text in specs]
    except BadCallable as exc:
        raise UsageError(str(exc)) from None
    before = os.environ.get(CALLABLES_ENV)
    if parsed or before is not None:
        os.environ[CALLABLES_ENV] = ";".join(spec.text() for spec in parsed)
    try:
        adapter_classes()  # a clash of names is found here, before any work
        yield parsed
    except BadCallable as exc:
        raise UsageError(str(exc)) from None
    finally:
        if before is None:
            os.environ.pop(CALLABLES_ENV, None)
        else:
            os.environ[CALLABLES_ENV] = before
