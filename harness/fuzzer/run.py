"""A fuzz run from start to minimal cases: the searches (one per dtype and input form), then each distinct
failure shrunk, its onset found, and written as a case that `audit --cases` replays."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from cases import Case, float_format
from harness.fuzzer.probe import Prober
from harness.fuzzer.search import Found, Search, SearchResult, search
from harness.fuzzer.shrink import Minimal, shrink
from implementations import DERIVATIVES

__all__ = ["FuzzOutcome", "minimal_case", "run_fuzz"]

Progress = Callable[[int, int, str], None]


@dataclass
class FuzzOutcome:
    """What a fuzz run found: the minimal failures, and each search's figures."""

    minimal: list[Minimal] = field(default_factory=list)
    searches: list[dict[str, Any]] = field(default_factory=list)
    stopped_early: bool = False
    search_seconds: float = 0.0
    shrink_seconds: float = 0.0
    workers: dict[str, dict[str, int]] = field(default_factory=dict)  # per framework: probes, cells, restarts


def _summary(plan: Search, result: SearchResult) -> dict[str, Any]:
    return {"dtype": plan.dtype, "input_form": plan.input_form, "impls": list(plan.impls),
            "examples": result.examples, "seconds": round(result.seconds, 2), "stopped_early": result.stopped_early,
            "distinct_failures": len(result.found), "best_targets": {k: round(v, 3) for k, v in result.best.items()}}


def run_fuzz(prober: Prober, plans: Sequence[Search], max_examples: int, seed: int, budget: float | None = None,
             progress: Progress | None = None) -> FuzzOutcome:
    """Every search, then every distinct failure (finding × implementation, first seen) shrunk. The budget bounds
    the searches; what they found is shrunk whatever it costs (a failure found is never dropped)."""
    outcome = FuzzOutcome()
    began = time.monotonic()
    deadline = None if budget is None else began + budget
    found: dict[tuple[str, str], Found] = {}
    for plan in plans:
        result = search(prober, plan, max_examples, seed, deadline, progress)
        outcome.searches.append(_summary(plan, result))
        outcome.stopped_early |= result.stopped_early
        for key, failure in result.found.items():
            found.setdefault(key, failure)
    outcome.search_seconds = time.monotonic() - began
    dtypes = sorted({plan.dtype for plan in plans}, key=lambda d: -float_format(d).precision)
    kept: dict[tuple[str, ...], Minimal] = {}
    for count, (_, failure) in enumerate(sorted(found.items()), 1):
        if progress is not None:
            progress(count, len(found), f"shrinking {failure.problem.config.impl}")
        minimal = shrink(prober, failure, dtypes)
        kept.setdefault((minimal.problem.finding_id, minimal.problem.config.impl), minimal)
    outcome.minimal = list(kept.values())
    outcome.shrink_seconds = time.monotonic() - began - outcome.search_seconds
    outcome.workers = {name: {"probes": prober.calls[name], "cells": prober.cells[name],
                              "restarts": prober.restarts[name]} for name in sorted(prober.calls)}
    return outcome


def minimal_case(minimal: Minimal, seed: int, runs_on: str | None = None) -> Case:
    """The minimal failure as a case for `--cases`: named by implementation and finding, limited to the dtype it
    fails in, its implementation, reduction, mode and quantity in its tags and description (with "path" for a
    compiled mode and "derivative" for a further derivative, so that the audit runs them)."""
    problem, config = minimal.problem, minimal.problem.config
    tags = ["fuzz", f"impl:{config.impl}", f"reduction:{config.reduction}", f"mode:{config.mode}",
            f"quantity:{config.quantity}", f"device:{config.device}"]
    tags += ["path"] if config.mode != "eager" else []
    tags += ["derivative"] if config.quantity in DERIVATIVES else []
    tags += [runs_on] if runs_on else []
    kind, _, region, failure = problem.key
    onset = f"; onset: {minimal.onset.text()}" if minimal.onset else ""
    on = "" if config.device == "cpu" else f" on {config.device} (replay with --devices {config.device})"
    description = (f"fuzz (seed {seed}): {config.describe()}{on}: {problem.status}, {kind} {failure} ({region})"
                   f"{onset}; "
                   f"first seen in {minimal.found.case.name} ({minimal.found.problem.config.describe()}), shrunk: "
                   f"{', '.join(minimal.steps) or 'as found'}")
    return Case(f"fuzz-{config.impl}-{problem.finding_id}", "fuzz", minimal.case.input_form, minimal.case.x,
                minimal.case.y, minimal.case.weight, minimal.case.pos_weight, description=description,
                tags=tuple(tags), dtypes=(config.dtype,))
