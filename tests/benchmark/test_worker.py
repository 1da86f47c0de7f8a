"""The benchmark worker's answers: one reply per request, what the framework cannot do a `Failed` reply, and
the worker loop over a pipe until `Stop`."""

from __future__ import annotations

import multiprocessing as mp
import os
from typing import Any

from harness.benchmark.messages import Failed, Prepare, Prepared, Release, Released, Stop, TimeBlock, Timed
from harness.benchmark.plan import BenchConfig, ReadConfig
from harness.benchmark.timing import BlockOptions
from harness.benchmark.worker import BenchSession, bench_worker_main
from harness.workers.messages import Hello
from implementations.numpy_adapter import NumpyAdapter

TINY = BlockOptions(min_rounds=2, max_time=0.002, min_time=1e-4)
CONFIG = BenchConfig("numpy", "numpy.logits", "logits", "eager", "forward", "cpu", "float32", 100)


def _session() -> BenchSession:
    adapter = NumpyAdapter()
    adapter.load(1)
    return BenchSession(adapter, seed=0, options=TINY)


def test_each_request_gets_its_reply() -> None:
    session = _session()
    prepared = session.answer(Prepare(CONFIG))
    assert isinstance(prepared, Prepared) and prepared.rounds_per_block >= 2 and prepared.peak_memory_note
    timed = session.answer(TimeBlock(CONFIG))
    assert isinstance(timed, Timed) and len(timed.data) == prepared.rounds_per_block
    read = session.answer(Prepare(ReadConfig("numpy", "cpu", "float32", 100), fixed=(2, 3)))
    assert read == Prepared(read.compile_s, 2, 3)
    assert session.answer(Release()) == Released() and session.calls == {}


def test_what_the_framework_cannot_do_is_a_failed_reply() -> None:
    session = _session()
    assert session.answer(Prepare(CONFIG._replace(device="gpu"))) == Failed(
        "Unsupported", "numpy runs on the CPU only, not 'gpu'")
    assert session.answer(Prepare(CONFIG._replace(mode="jax.jit"))) == Failed(
        "Unsupported", "numpy has no mode 'jax.jit'; it has: eager")
    missing = session.answer(TimeBlock(CONFIG))  # never prepared
    assert isinstance(missing, Failed) and missing.error_type == "KeyError"


def test_the_worker_greets_answers_and_stops() -> None:
    mine, theirs = mp.Pipe()
    for request in (Prepare(CONFIG), TimeBlock(CONFIG), Stop()):
        mine.send(request)
    cpus = sorted(os.sched_getaffinity(0))  # in this process, which it pins: to the CPUs it has already
    bench_worker_main("numpy", cpus, 1, 0, TINY, None, theirs)  # it returns on Stop
    replies = [mine.recv() for _ in range(3)]
    assert [type(r) for r in replies] == [Hello, Prepared, Timed] and not mine.poll()


class _Spy(NumpyAdapter):
    """The NumPy adapter, counting its computations and the syncs that follow them."""

    def __init__(self) -> None:
        self.log: list[str] = []

    def bench_function(self, *args: Any, **kwargs: Any) -> Any:
        inner = super().bench_function(*args, **kwargs)

        def counted() -> Any:
            self.log.append("run")
            return inner()

        return counted

    def sync(self, result: Any, device: str) -> None:
        assert isinstance(result, tuple)  # what the bench function returned: (loss, grad)
        self.log.append("sync")


def test_worker_session_syncs_after_every_call_and_keeps_the_first_out() -> None:
    adapter = _Spy()
    adapter.load(1)
    session = BenchSession(adapter, seed=0, options=TINY)
    config = BenchConfig("numpy", "numpy.logits", "logits", "eager", "forward_backward", "cpu", "float32", 100)
    prepared = session.prepare(config)
    assert prepared.compile_s > 0 and prepared.rounds_per_block >= TINY.min_rounds
    runs_before = adapter.log.count("run")
    block = session.block(config)
    assert len(block.data) == prepared.rounds_per_block and block.iterations == prepared.iterations
    assert adapter.log.count("run") == adapter.log.count("sync")
    assert adapter.log == ["run", "sync"] * (len(adapter.log) // 2)  # each call waits before the next starts
    timed_calls = len(block.data) * block.iterations
    assert adapter.log.count("run") - runs_before >= timed_calls


def test_a_further_process_times_the_first_one_s_rounds_after_a_warm_up() -> None:
    adapter = _Spy()
    adapter.load(1)
    session = BenchSession(adapter, seed=0, options=TINY)
    config = BenchConfig("numpy", "numpy.logits", "logits", "eager", "forward", "cpu", "float32", 100)
    prepared = session.prepare(config, fixed=(3, 7))
    # no calibration and no peak memory (the first process measured them): the given rounds and iterations
    assert prepared.rounds_per_block == 3 and prepared.iterations == 7 and prepared.peak_memory_bytes is None
    # the first call, then one warm-up block: 3 rounds of 7 calls, and the untimed call pytest-benchmark makes for
    # the result when a round loops
    block_calls = 3 * 7 + 1
    assert adapter.log.count("run") == 1 + block_calls
    block = session.block(config)
    assert len(block.data) == 3 and block.iterations == 7
    assert adapter.log.count("run") == 1 + 2 * block_calls
