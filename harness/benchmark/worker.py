"""The benchmark worker: one process of one framework, pinned to the CPUs every framework gets, timing what the
runner asks.

It answers one request at a time over its own duplex pipe, so that the runner can make frameworks take turns
(A B C D A B C D …) while the others wait idle. Inputs are generated here from the same seed (the same bytes
for every framework) and moved to the device once, before any timing.
"""

from __future__ import annotations

import gc
import os
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

import numpy as np

from cases import bench_inputs, bytes_read
from harness.benchmark.kernel import Kernel, KernelUnavailable, build_kernel
from harness.benchmark.messages import (
    CrossCheck,
    Failed,
    Fixed,
    OwnTimed,
    Prepare,
    Prepared,
    Release,
    Released,
    Reply,
    Request,
    Stop,
    TimeBlock,
    Timed,
)
from harness.benchmark.plan import KERNEL, BenchConfig, KernelConfig, ReadConfig
from harness.benchmark.timing import BlockOptions, Timer, calibrate, first_call, resident_peak, synced, time_block
from harness.workers.messages import Hello, LoadFailed, load_framework
from harness.workers.process import die_with_parent, one_line, redirect_output
from implementations import Adapter, Unsupported

__all__ = ["BenchSession", "bench_worker_main"]


class BenchSession:
    """What the worker holds between requests: its adapter (or the speed-of-light kernel), inputs by size, and the
    prepared timed calls. `timer` is the clock of every block (a test's fake clock, or perf_counter)."""

    def __init__(self, adapter: Adapter | None, seed: int, options: BlockOptions, kernel: Kernel | None = None,
                 timer: Timer = time.perf_counter, threads: int = 1) -> None:
        self._adapter = adapter
        self.threads = threads
        self.kernel = kernel
        self.seed = seed
        self.options = options
        self.timer = timer
        self.inputs: dict[tuple[str, str, int], dict[str, np.ndarray]] = {}
        self.calls: dict[Any, tuple[Callable[[], None], int, int]] = {}  # key → (call, rounds, iterations)
        self.functions: dict[BenchConfig, Callable[[], Any]] = {}  # the framework's call, unsynced, for its timer

    @property
    def adapter(self) -> Adapter:
        if self._adapter is None:
            raise Unsupported("this worker times the speed-of-light kernel, not a framework")
        return self._adapter

    def answer(self, request: Request) -> Reply:
        """The reply to one request; what the framework cannot do or raises is a `Failed` reply."""
        try:
            match request:
                case Prepare(config=BenchConfig() as config, fixed=fixed):
                    return self.prepare(config, fixed)
                case Prepare(config=ReadConfig() as read, fixed=fixed):
                    return self.prepare_read(read, fixed)
                case Prepare(config=KernelConfig() as kernel, fixed=fixed):
                    return self.prepare_kernel(kernel, fixed)
                case TimeBlock(config=config):
                    return self.block(config)
                case CrossCheck(config=config):
                    return self.own_timer(config)
                case Release():
                    self.release()
                    return Released()
        except (Unsupported, KernelUnavailable) as exc:
            return Failed(type(exc).__name__, str(exc))
        except Exception as exc:  # the framework's own failure on this configuration
            return Failed(type(exc).__name__, one_line(exc))
        return Failed("BadRequest", f"the worker cannot answer {type(request).__name__}")

    def prepare(self, config: BenchConfig, fixed: Fixed | None = None) -> Prepared:
        """Build the call, time its first call on its own, measure one fresh call's peak memory, calibrate.

        `fixed` (rounds, iterations): what the first process of this framework calibrated; a further process
        times with the same, after one block of warm-up, so that every sweep's block is alike (and it skips the
        peak memory, which the first process measured)."""
        adapter = self.adapter
        if config.dtype not in adapter.dtypes:
            raise Unsupported(f"{adapter.framework} has no {config.dtype}")
        impl = adapter.implementation(config.impl)
        function = adapter.bench_function(impl, self._inputs(config.input_form, config.dtype, config.n),
                                          config.device, config.mode, config.direction)  # type: ignore[arg-type]
        self.functions[config] = function
        call = synced(function, lambda result: adapter.sync(result, config.device))
        compile_s = first_call(call, self.timer)
        if fixed is not None:
            return Prepared(compile_s, *self._warmed(config, call, fixed))
        peak, peak_note = self._peak(function, call, config.device)
        return Prepared(compile_s, *self._calibrated(config, call), peak, peak_note)

    def _inputs(self, input_form: str, dtype: str, n: int) -> dict[str, np.ndarray]:
        key = (input_form, dtype, n)
        if key not in self.inputs:
            self.inputs[key] = bench_inputs(n, input_form, dtype, self.seed)  # type: ignore[arg-type]
        return self.inputs[key]

    def prepare_read(self, read: ReadConfig, fixed: Fixed | None = None) -> Prepared:
        function = self.adapter.read_function(bytes_read(read.n, read.dtype), read.device)
        if function is None:
            raise Unsupported(f"{self.adapter.framework} has no read kernel on {read.device!r}")
        call = synced(function, lambda result: self.adapter.sync(result, read.device))
        compile_s = first_call(call, self.timer)
        return Prepared(compile_s, *(self._calibrated(read, call) if fixed is None else
                                     self._warmed(read, call, fixed)))

    def prepare_kernel(self, config: KernelConfig, fixed: Fixed | None = None) -> Prepared:
        """The speed-of-light kernel on the group's bytes; the first process also judges its results against the
        exact reference, and a kernel that misses the pass tolerance is no limit (`KernelUnavailable`, with its
        errors)."""
        if self.kernel is None:
            raise KernelUnavailable("this worker has no speed-of-light kernel")
        if config.device != "cpu":
            raise Unsupported(f"the speed-of-light kernel runs on the CPU, not {config.device!r}")
        arrays = self._inputs("logits", config.dtype, config.n)
        function = self.kernel.function(arrays["x"], arrays["y"], config.direction)
        call = synced(function, lambda result: None)
        compile_s = first_call(call, self.timer)
        if fixed is not None:
            return Prepared(compile_s, *self._warmed(config, call, fixed))
        accurate, accuracy = self.kernel.accuracy(arrays["x"], arrays["y"], config.direction)
        if not accurate:
            raise KernelUnavailable(f"the kernel misses the pass tolerance: {accuracy}")
        return Prepared(compile_s, *self._calibrated(config, call), accuracy=accuracy)

    def _calibrated(self, key: Any, call: Callable[[], None]) -> Fixed:
        warm = calibrate(call, self.options, self.timer)
        self.calls[key] = (call, len(warm.data), warm.iterations)
        return len(warm.data), warm.iterations

    def _warmed(self, key: Any, call: Callable[[], None], fixed: Fixed) -> Fixed:
        rounds, iterations = fixed
        time_block(call, rounds, iterations, self.options, self.timer)  # warm-up: the first process calibrated
        self.calls[key] = (call, rounds, iterations)
        return rounds, iterations

    def _peak(self, function: Callable[[], Any], call: Callable[[], None], device: str) -> tuple[int | None, str]:
        try:
            if device == "cpu":
                return resident_peak(call), "resident-set high-water mark of one call above the set before it"
            return self.adapter.allocator_peak(device, function), f"{self.adapter.framework} allocator statistics"
        except (Unsupported, OSError) as exc:
            return None, str(exc)

    def block(self, key: BenchConfig | ReadConfig | KernelConfig) -> Timed:
        call, rounds, iterations = self.calls[key]
        measured = time_block(call, rounds, iterations, self.options, self.timer)
        return Timed(measured.iterations, measured.data)

    def own_timer(self, config: BenchConfig, min_run_time: float | None = None) -> OwnTimed:
        """The framework's own timer on a prepared configuration, for `min_run_time` seconds (default: about as
        long as a block of rounds)."""
        adapter = self.adapter
        seconds = adapter.native_timer(self.functions[config], config.device, self.threads,
                                       self.options.max_time if min_run_time is None else min_run_time)
        return OwnTimed(adapter.native_timer_label(config.device), seconds)

    def release(self) -> None:
        self.calls.clear()
        self.functions.clear()
        self.inputs.clear()
        gc.collect()


def bench_worker_main(framework: str, cpus: list[int], threads: int, seed: int, options: BlockOptions,
                      log_path: str | None, channel: Connection) -> None:
    """Pin to `cpus`, load the framework with `threads` threads, then answer requests until told to `Stop`."""
    die_with_parent()
    redirect_output(log_path)
    try:
        if hasattr(os, "sched_setaffinity"):  # before the import: XLA sizes its thread pool to these CPUs
            os.sched_setaffinity(0, cpus)
    except OSError as exc:
        channel.send(LoadFailed(framework, "OSError", f"cannot pin to CPUs {cpus}: {exc.strerror}"))
        return
    if framework == KERNEL:
        kernel, hello = _load_kernel(threads)
        channel.send(hello)
        session = BenchSession(None, seed, options, kernel, threads=threads)
        if kernel is None:
            return
    else:
        adapter, hello = load_framework(framework, threads)
        channel.send(hello)
        if adapter is None:
            return
        session = BenchSession(adapter, seed, options, threads=threads)
    while not isinstance(request := channel.recv(), Stop):
        channel.send(session.answer(request))


def _load_kernel(threads: int) -> tuple[Kernel | None, Hello | LoadFailed]:
    """Build (or find built) the speed-of-light kernel: it, and its hello, or why there is none."""
    began = time.perf_counter()
    try:
        kernel = Kernel(build_kernel(), threads)
    except (KernelUnavailable, OSError) as exc:
        return None, LoadFailed(KERNEL, type(exc).__name__, str(exc))
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    return kernel, Hello(KERNEL, {"compiler": kernel.build.version}, ["cpu"], os.getpid(), cpus,
                         {"openmp": kernel.threads}, time.perf_counter() - began)
