"""The benchmark worker: one process of one framework, pinned to the CPUs every framework gets, timing what the
runner asks.

It answers one request at a time over its own duplex pipe, so that the runner can make frameworks take turns
(A B C D A B C D …) while the others wait idle. Inputs are generated here from the same seed (the same bytes
for every framework) and moved to the device once, before any timing.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

import numpy as np

from cases import bench_inputs
from harness.matrix import BenchConfig
from harness.timing import BlockOptions, calibrate, first_call, resident_peak, synced, time_block
from harness.worker import adapter_instance, one_line, redirect_output
from implementations import Adapter, Unsupported

__all__ = ["BenchSession", "bench_worker_main"]


class BenchSession:
    """What the worker holds between requests: its adapter, inputs by size, and the prepared timed calls."""

    def __init__(self, adapter: Adapter, seed: int, options: BlockOptions) -> None:
        self.adapter = adapter
        self.seed = seed
        self.options = options
        self.inputs: dict[tuple[str, str, int], dict[str, np.ndarray]] = {}
        self.calls: dict[Any, tuple[Callable[[], None], int, int]] = {}  # key → (call, rounds, iterations)

    def prepare(self, config: BenchConfig, fixed: tuple[int, int] | None = None) -> dict[str, Any]:
        """Build the call, time its first call on its own, measure one fresh call's peak memory, calibrate.

        `fixed` (rounds, iterations): what the first process of this framework calibrated; a further process
        times with the same, after one block of warm-up, so that every sweep's block is alike (and it skips the
        peak memory, which the first process measured)."""
        adapter = self.adapter
        if config.dtype not in adapter.dtypes:
            raise Unsupported(f"{adapter.framework} has no {config.dtype}")
        key = (config.input_form, config.dtype, config.n)
        if key not in self.inputs:
            self.inputs[key] = bench_inputs(config.n, config.input_form, config.dtype, self.seed)  # type: ignore[arg-type]
        impl = adapter.implementation(config.impl)
        function = adapter.bench_function(impl, self.inputs[key], config.device, config.mode,
                                          config.direction)  # type: ignore[arg-type]
        call = synced(function, lambda result: adapter.sync(result, config.device))
        compile_s = first_call(call)
        if fixed is not None:
            return {"compile_s": compile_s, **self._warmed(config, call, fixed)}
        peak, peak_note = self._peak(function, call, config.device)
        return {"compile_s": compile_s, "peak_memory_bytes": peak, "peak_memory_note": peak_note,
                **self._calibrated(config, call)}

    def prepare_read(self, key: Any, nbytes: int, device: str, fixed: tuple[int, int] | None = None
                     ) -> dict[str, Any]:
        function = self.adapter.read_function(nbytes, device)
        if function is None:
            raise Unsupported(f"{self.adapter.framework} has no read kernel on {device!r}")
        call = synced(function, lambda result: self.adapter.sync(result, device))
        compile_s = first_call(call)
        timing = self._calibrated(key, call) if fixed is None else self._warmed(key, call, fixed)
        return {"compile_s": compile_s, **timing}

    def _calibrated(self, key: Any, call: Callable[[], None]) -> dict[str, Any]:
        warm = calibrate(call, self.options)
        self.calls[key] = (call, len(warm.data), warm.iterations)
        return {"rounds_per_block": len(warm.data), "iterations": warm.iterations}

    def _warmed(self, key: Any, call: Callable[[], None], fixed: tuple[int, int]) -> dict[str, Any]:
        rounds, iterations = fixed
        time_block(call, rounds, iterations, self.options)  # warm-up, as calibration is in the first process
        self.calls[key] = (call, rounds, iterations)
        return {"rounds_per_block": rounds, "iterations": iterations}

    def _peak(self, function: Callable[[], Any], call: Callable[[], None], device: str) -> tuple[int | None, str]:
        try:
            if device == "cpu":
                return resident_peak(call), "resident-set high-water mark of one call above the set before it"
            return self.adapter.allocator_peak(device, function), f"{self.adapter.framework} allocator statistics"
        except (Unsupported, OSError) as exc:
            return None, str(exc)

    def block(self, key: Any) -> dict[str, Any]:
        call, rounds, iterations = self.calls[key]
        measured = time_block(call, rounds, iterations, self.options)
        return {"iterations": measured.iterations, "data": measured.data}

    def release(self) -> None:
        self.calls.clear()
        self.inputs.clear()
        gc.collect()


def bench_worker_main(framework: str, cpus: list[int], threads: int, seed: int, options: BlockOptions,
                      channel: Connection, log_path: str | None = None) -> None:
    """Pin to `cpus`, load the framework with `threads` threads, then answer requests until told to stop.

    Requests: ("prepare", config[, fixed]), ("read", key, nbytes, device[, fixed]), ("block", key), ("release",),
    ("stop",).
    Each gets one reply: ("ok", payload), ("unsupported", message) or ("raised", type, message).
    """
    redirect_output(log_path)
    try:
        if hasattr(os, "sched_setaffinity"):  # before the import: XLA sizes its thread pool to these CPUs
            os.sched_setaffinity(0, cpus)
        adapter = adapter_instance(framework)
        versions = adapter.load(threads)
        devices = adapter.devices()
    except Exception as exc:
        channel.send(("raised", type(exc).__name__, one_line(exc)))
        return
    affinity = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    channel.send(("ok", {"versions": versions, "devices": devices, "cpus": affinity,
                         "threads": adapter.thread_settings(), "pid": os.getpid()}))
    session = BenchSession(adapter, seed, options)
    handlers: dict[str, Callable[..., dict[str, Any]]] = {
        "prepare": session.prepare, "read": session.prepare_read, "block": session.block,
    }
    while True:
        request = channel.recv()
        if request[0] == "stop":
            return
        if request[0] == "release":
            session.release()
            channel.send(("ok", {}))
            continue
        try:
            payload = handlers[request[0]](*request[1:])
        except Unsupported as exc:
            channel.send(("unsupported", str(exc)))
        except Exception as exc:
            channel.send(("raised", type(exc).__name__, one_line(exc)))
        else:
            channel.send(("ok", payload))
