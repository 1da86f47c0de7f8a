"""What every worker process says first, in either pipeline: what it loaded, or why it could not."""

from __future__ import annotations

import os
import time
import traceback
from dataclasses import dataclass, field

from harness.workers.process import adapter_instance
from implementations import Adapter

__all__ = ["Hello", "LoadFailed", "load_framework"]


@dataclass(frozen=True, slots=True)
class Hello:
    """The framework loaded: its versions (and its companions'), the devices it sees, its CPUs and thread pools,
    and the seconds its import (with its configuration) and its device discovery took."""

    framework: str
    versions: dict[str, str]
    devices: list[str]
    pid: int
    cpus: list[int] = field(default_factory=list)
    threads: dict[str, int] = field(default_factory=dict)
    load_seconds: float = 0.0
    devices_seconds: float = 0.0


@dataclass(frozen=True, slots=True)
class LoadFailed:
    """The framework failed to import or configure: every job of this worker is an error."""

    framework: str
    error_type: str
    message: str
    trace: str = ""

    def describe(self) -> str:
        return f"{self.error_type}: {self.message}"


def load_framework(framework: str, threads: int,
                   compile_cache: str | None = None) -> tuple[Adapter | None, Hello | LoadFailed]:
    """Load the framework's adapter in this process: the adapter and its Hello, or None and why it failed."""
    began = time.perf_counter()
    try:
        adapter = adapter_instance(framework)
        versions = adapter.load(threads, compile_cache)
        loaded = time.perf_counter()
        devices = adapter.devices()
        discovered = time.perf_counter()
        settings = adapter.thread_settings()
    except Exception as exc:  # the framework's own failure, reported, never raised past the worker
        return None, LoadFailed(framework, type(exc).__name__, str(exc)[:2000], traceback.format_exc()[-4000:])
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    return adapter, Hello(framework, versions, devices, os.getpid(), cpus, settings, loaded - began,
                          discovered - loaded)
