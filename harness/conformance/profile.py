"""Where an audit's time went: per framework and phase (import, device discovery, compute per mode, judging,
journal), and in the runner's own process (plan, references, waiting, consolidation). It goes to meta.json as
`profile` and into report.md, so that every change can state its cost as before and after."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

__all__ = ["FrameworkProfile", "Profile"]


def _seconds(value: float) -> float:
    return round(value, 2)


@dataclass
class FrameworkProfile:
    """One framework's phases, summed over its workers. `compute` and `cells` are by mode (the batch check as
    `batch`); `wall` is the workers' lifetimes, `cpu` their CPU seconds (user and system) as they last said, and
    `compiles` what the framework says it compiled (programs, from its cache, seconds compiling and lowering)."""

    workers: int = 0
    load: float = 0.0
    devices: float = 0.0
    compute: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    cells: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    judge: float = 0.0
    journal: float = 0.0
    wall: float = 0.0
    cpu: dict[str, float] = field(default_factory=dict)  # per worker, the latest figure
    compiles: dict[str, dict[str, float]] = field(default_factory=dict)  # per worker, the adapter's compile_stats
    peak_bytes: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {"workers": self.workers, "import_s": _seconds(self.load), "devices_s": _seconds(self.devices),
                "compute_s": {mode: _seconds(s) for mode, s in sorted(self.compute.items())},
                "cells": dict(sorted(self.cells.items())), "judge_s": _seconds(self.judge),
                "journal_s": _seconds(self.journal), "wall_s": _seconds(self.wall),
                "cpu_s": _seconds(sum(self.cpu.values())), "peak_mib": round(self.peak_bytes / 2**20),
                "compiler": self._compiler()}

    def _compiler(self) -> dict[str, float]:
        """The workers' compile counters, summed (counts as integers, seconds rounded)."""
        total: dict[str, float] = defaultdict(float)
        for stats in self.compiles.values():
            for name, value in stats.items():
                total[name] += value
        return {name: (_seconds(v) if name.endswith("_s") else int(v)) for name, v in sorted(total.items())}


@dataclass
class Profile:
    """The whole run's: each framework's, the references', and the runner's own phases (`main`)."""

    frameworks: dict[str, FrameworkProfile] = field(default_factory=lambda: defaultdict(FrameworkProfile))
    main: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    references: dict[str, float] = field(default_factory=lambda: defaultdict(float))

    @contextmanager
    def timing(self, framework: str, phase: str) -> Iterator[None]:
        """Add the seconds of the block to the framework's `phase` (judge or journal) and to the runner's."""
        began = time.perf_counter()
        try:
            yield
        finally:
            spent = time.perf_counter() - began
            setattr(self.frameworks[framework], phase, getattr(self.frameworks[framework], phase) + spent)
            self.main[phase] += spent

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Add the seconds of the block to the runner's own phase `name`."""
        began = time.perf_counter()
        try:
            yield
        finally:
            self.main[name] += time.perf_counter() - began

    def as_dict(self) -> dict[str, Any]:
        return {"main": {f"{name}_s": _seconds(s) for name, s in sorted(self.main.items())},
                "references": {name: (_seconds(v) if name == "seconds" else int(v))
                               for name, v in sorted(self.references.items())},
                "frameworks": {name: p.as_dict() for name, p in sorted(self.frameworks.items())}}
