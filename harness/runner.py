"""The conformance matrix: plan it, run each framework in its own worker process, judge every result.

The runner never names a framework: what an adapter can do (dtypes, implementations, input forms) is data on
its class, and what it did is what its worker reported.
"""

from __future__ import annotations

import hashlib
import json
import math
import multiprocessing as mp
import queue as queue_module
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cases import Case, float_format
from harness.compare import Judgement, judge
from harness.domain import domain_violation
from harness.oracle import Reference, cache_dir, reference
from harness.worker import Job, describe, worker_main
from implementations import REDUCTIONS, Adapter, Output

__all__ = [
    "CONFORMANCE_COLUMNS",
    "Progress",
    "discover",
    "row_id",
    "run_conformance",
]

CONFORMANCE_COLUMNS = [
    "run_id", "row_id", "framework", "framework_version", "impl", "api", "input_form", "device", "dtype",
    "out_dtype", "case", "family", "reduction", "quantity", "check", "mode", "n", "status", "deviation",
    "max_ulp_error", "max_abs_error", "max_rel_error", "n_bad", "worst_index", "worst_x", "worst_y", "got",
    "expected", "error_type", "error_message",
]
QUANTITIES = ("loss", "grad")
Progress = Callable[[int, int, str], None]  # (done, total, what)
_Key = tuple[str, int, str, str, str]  # impl, case index, dtype, device, reduction


def row_id(impl: str, case: str, dtype: str, device: str, reduction: str, quantity: str,
           check: str = "reference", mode: str = "eager") -> str:
    """Stable hash of a row's key: the same cell of the matrix has the same id in every run."""
    key = "|".join((impl, case, dtype, device, reduction, quantity, check, mode))
    return hashlib.sha256(key.encode()).hexdigest()[:16]


@dataclass
class _Plan:
    cases: list[Case]
    adapters: dict[str, type[Adapter]]
    dtypes: list[str]
    devices: list[str]
    reductions: tuple[str, ...]
    jobs: dict[str, list[Job]] = field(default_factory=dict)
    keys: dict[str, set[_Key]] = field(default_factory=dict)


def _cells(plan: _Plan, adapter: type[Adapter]) -> Iterable[tuple[str, int, str, str]]:
    for impl in adapter.implementations:
        for index, case in enumerate(plan.cases):
            if case.input_form != impl.input_form:
                continue
            for dtype in plan.dtypes:
                for device in plan.devices:
                    yield impl.impl, index, dtype, device


def _base_row(plan: _Plan, adapter: type[Adapter], key: _Key, version: str) -> dict[str, Any]:
    impl_id, index, dtype, device, reduction = key
    case = plan.cases[index]
    impl = adapter.implementation(impl_id)
    try:
        api = impl.api_for(case.pos_weight is not None)
    except Exception:
        api = impl.api
    return {
        "framework": adapter.framework, "framework_version": version, "impl": impl_id, "api": api,
        "input_form": impl.input_form, "device": device, "dtype": dtype, "out_dtype": "", "case": case.name,
        "family": case.family, "reduction": reduction, "check": "reference", "mode": "eager", "n": case.size,
        "status": "", "deviation": "", "max_ulp_error": math.nan, "max_abs_error": math.nan,
        "max_rel_error": math.nan, "n_bad": 0, "worst_index": "", "worst_x": math.nan, "worst_y": math.nan,
        "got": math.nan, "expected": math.nan, "error_type": "", "error_message": "",
    }


def _finish(row: dict[str, Any], quantity: str) -> dict[str, Any]:
    row = dict(row, quantity=quantity)
    row["row_id"] = row_id(row["impl"], row["case"], row["dtype"], row["device"], row["reduction"], quantity)
    return row


def _status_rows(base: dict[str, Any], status: str, error_type: str = "", message: str = "") -> list[dict[str, Any]]:
    row = dict(base, status=status, error_type=error_type, error_message=message)
    return [_finish(row, quantity) for quantity in QUANTITIES]


def _judged_row(base: dict[str, Any], case: Case, dtype: str, quantity: str, got: np.ndarray | None,
                out_dtype: str | None, ref: Reference) -> dict[str, Any]:
    reduction = base["reduction"]
    row = dict(base, out_dtype=out_dtype or "")
    if got is None:
        return _finish(dict(row, status="error", error_message=f"no {quantity} returned"), quantity)
    if ref.undefined is not None:
        message = (f"returned a result of shape {got.shape} although the inputs have no BCE value "
                   f"({ref.undefined}): a silent broadcast")
        return _finish(dict(row, status="fail", error_type="SilentBroadcast", error_message=message), quantity)
    hi, lo, band = ref.loss(reduction) if quantity == "loss" else ref.grad(reduction)
    reduced_over = ref.n if (quantity == "loss" and reduction != "none") else None
    verdict: Judgement = judge(got, hi, lo, band, float_format(dtype), reduced_over)
    row.update(status=verdict.status, max_ulp_error=verdict.max_ulp_error, max_abs_error=verdict.max_abs_error,
               max_rel_error=verdict.max_rel_error, n_bad=verdict.n_bad, got=verdict.got,
               expected=verdict.expected, error_message=verdict.message)
    if verdict.worst_index is not None:
        inputs = case.inputs(dtype)
        row["worst_index"] = json.dumps(list(verdict.worst_index))
        row["worst_x"] = float(np.asarray(inputs.x, dtype=np.float64)[verdict.worst_index])
        row["worst_y"] = float(np.asarray(inputs.y, dtype=np.float64)[verdict.worst_index])
    return _finish(row, quantity)


def _result_rows(plan: _Plan, adapter: type[Adapter], key: _Key, version: str, message: tuple[Any, ...],
                 ref: Reference) -> list[dict[str, Any]]:
    base = _base_row(plan, adapter, key, version)
    _, index, dtype, _, _ = key
    case = plan.cases[index]
    kind = message[0]
    if kind == "unsupported":
        return _status_rows(base, "unsupported", "Unsupported", message[3])
    if kind == "raised":
        outside = domain_violation(case.inputs(dtype), case.input_form)
        status = "rejected" if outside else "error"
        note = f" (input outside the domain: {outside})" if outside else ""
        return _status_rows(base, status, message[3], message[4] + note)
    output: Output = message[3]
    base["api"] = output.api
    return [
        _judged_row(base, case, dtype, "loss", output.loss, output.out_dtype, ref),
        _judged_row(base, case, dtype, "grad", output.grad, output.grad_dtype, ref),
    ]


def _context() -> Any:
    return mp.get_context("spawn")


def discover(adapters: dict[str, type[Adapter]], threads: int = 1, timeout: float = 120.0) -> dict[str, Any]:
    """Load each installed framework in a worker and return {name: (versions, devices) or an error string}."""
    ctx = _context()
    found: dict[str, Any] = {}
    for name, adapter in adapters.items():
        if not adapter.is_available():
            found[name] = "not installed"
            continue
        channel = ctx.Queue()
        process = ctx.Process(target=describe, args=(name, threads, channel), daemon=True)
        process.start()
        try:
            message = channel.get(timeout=timeout)
        except queue_module.Empty:
            message = ("load_failed", name, "Timeout", f"no answer within {timeout:g} s", "")
        process.join(timeout=5)
        if process.is_alive():
            process.kill()
        found[name] = (message[2], message[3]) if message[0] == "hello" else f"{message[2]}: {message[3]}"
    return found


def run_conformance(
    cases: Sequence[Case],
    adapters: dict[str, type[Adapter]],
    dtypes: Sequence[str],
    devices: Sequence[str],
    *,
    reductions: Sequence[str] = REDUCTIONS,
    jobs: int = 2,
    threads: int = 1,
    use_cache: bool = True,
    silence_timeout: float = 600.0,
    log_dir: Path | None = None,
    emit: Callable[[list[dict[str, Any]]], None],
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Run the matrix; every row goes to `emit` as soon as it is judged. Returns what the workers reported.

    Frameworks that are not installed give `unavailable` rows, dtypes an adapter lacks give `unsupported` rows;
    the rest run in up to `jobs` worker processes at once, each with `threads` threads, while this process
    computes the references. Each worker's own output goes to `log_dir/<framework>.log` when given.
    """
    plan = _Plan(list(cases), dict(adapters), list(dtypes), list(devices), tuple(reductions))
    report: dict[str, Any] = {"workers": {}}
    runnable: list[str] = []
    total = sum(1 for a in adapters.values() for _ in _cells(plan, a)) * len(plan.reductions)
    done = 0

    def advance(count: int, what: str) -> None:
        nonlocal done
        done += count
        if progress is not None:
            progress(done, total, what)

    for name, adapter in plan.adapters.items():
        available = adapter.is_available()
        version = adapter.installed_version() or ""
        jobs_here: list[Job] = []
        for impl_id, index, dtype, device in _cells(plan, adapter):
            keys = [(impl_id, index, dtype, device, r) for r in plan.reductions]
            if not available:
                for key in keys:
                    emit(_status_rows(_base_row(plan, adapter, key, version), "unavailable", "",
                                      f"{name} is not installed; install it (e.g. pip install 'bce-harness[{name}]')"))
                advance(len(keys), name)
            elif dtype not in adapter.dtypes:
                for key in keys:
                    emit(_status_rows(_base_row(plan, adapter, key, version), "unsupported", "Unsupported",
                                      f"{name} has no {dtype}"))
                advance(len(keys), name)
            else:
                jobs_here.append(Job(index, dtype, impl_id, device, plan.reductions))
                plan.keys.setdefault(name, set()).update(keys)
        if jobs_here:
            plan.jobs[name] = jobs_here
            runnable.append(name)
        report["workers"][name] = {"available": available, "installed_version": version}

    ctx = _context()
    channel = ctx.Queue()
    waiting = list(runnable)
    running: dict[str, Any] = {}
    last_heard: dict[str, float] = {}
    versions: dict[str, str] = {}

    def start_workers() -> None:
        while waiting and len(running) < max(1, jobs):
            name = waiting.pop(0)
            log_path = None if log_dir is None else str(log_dir / f"{name}.log")
            compile_cache = str(cache_dir().parent / "compiled" / name) if use_cache else None
            process = ctx.Process(target=worker_main, name=f"bce-{name}", daemon=True,
                                  args=(name, threads, plan.cases, plan.jobs[name], channel, log_path, compile_cache))
            process.start()
            running[name] = process
            last_heard[name] = time.monotonic()

    start_workers()

    # The references, computed here while the workers import their frameworks.
    references: dict[tuple[int, str], Reference] = {}
    needed = sorted({(job.case_index, job.dtype) for name in runnable for job in plan.jobs[name]})
    for count, (index, dtype) in enumerate(needed, 1):
        case = plan.cases[index]
        references[(index, dtype)] = reference(case.inputs(dtype), case.input_form, use_cache=use_cache)
        if progress is not None:
            progress(done, total, f"reference {count}/{len(needed)}")

    def close_worker(name: str, status: str, why: str) -> None:
        process = running.pop(name)
        if process.is_alive():
            process.kill()
        process.join(timeout=10)
        remaining = sorted(plan.keys.get(name, set()))
        adapter = plan.adapters[name]
        for key in remaining:
            emit(_status_rows(_base_row(plan, adapter, key, versions.get(name, "")), status, "", why))
        plan.keys[name] = set()
        advance(len(remaining), name)
        report["workers"][name]["ended"] = status if remaining else "done"

    while running or waiting:
        try:
            message = channel.get(timeout=1.0)
        except queue_module.Empty:
            now = time.monotonic()
            for name, process in list(running.items()):
                if not process.is_alive():
                    code = process.exitcode
                    why = (f"worker died with signal {-code}" if code is not None and code < 0
                           else f"worker exited with code {code}")
                    close_worker(name, "crashed", why)
                elif now - last_heard[name] > silence_timeout:
                    close_worker(name, "timeout", f"no result for {silence_timeout:g} s")
            start_workers()
            continue
        kind, name = message[0], message[1]
        last_heard[name] = time.monotonic()
        adapter = plan.adapters[name]
        if kind == "hello":
            versions[name] = message[2].get(name, "")
            report["workers"][name].update(versions=message[2], devices=message[3])
        elif kind == "load_failed":
            report["workers"][name]["load_error"] = f"{message[2]}: {message[3]}"
            close_worker(name, "error", f"{name} failed to load: {message[2]}: {message[3]}")
            start_workers()
        elif kind == "done":
            close_worker(name, "crashed", "the worker ended without a result for this cell")
            start_workers()
        else:
            cell: _Key = message[2]
            rows = _result_rows(plan, adapter, cell, versions.get(name, ""), message, references[(cell[1], cell[2])])
            plan.keys[name].discard(cell)
            emit(rows)
            advance(1, name)
    return report
