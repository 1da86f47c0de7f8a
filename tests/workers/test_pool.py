"""The worker pool alone, without a framework: messages, a worker that dies, one that goes silent, one that
exceeds its memory, and the request/reply of the benchmark."""

from __future__ import annotations

import time

from harness.workers.pool import Lost, Received, WorkerPool
from tests.workers import pool_workers


def _events_until_lost(pool: WorkerPool, deadline_s: float = 60.0) -> tuple[list[object], Lost]:
    """Every message, then the loss: from `next_event`, or from `watch` between them (as the audit runs)."""
    received: list[object] = []
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        event = pool.next_event(timeout=0.2)
        if isinstance(event, Received):
            received.append(event.message)
        elif isinstance(event, Lost):
            return received, event
        lost = pool.watch()
        if lost:
            return received, lost[0]
    raise AssertionError(f"no loss within {deadline_s} s; received {received}")


def test_messages_then_a_death_by_signal() -> None:
    pool = WorkerPool()
    worker = pool.start("segfault", pool_workers.talk_then_segfault, 3)
    received, lost = _events_until_lost(pool)
    assert received == [0, 1, 2]  # nothing sent before the death is lost
    assert (lost.worker, lost.status, lost.why) == (worker, "crashed", "worker died with signal 11")
    assert pool.running == [] and not worker.process.is_alive()


def test_an_exit_code_is_reported() -> None:
    pool = WorkerPool()
    pool.start("exit", pool_workers.exit_with, 3)
    _, lost = _events_until_lost(pool)
    assert (lost.status, lost.why) == ("crashed", "worker exited with code 3")


def test_a_silent_worker_is_stopped_after_the_limit() -> None:
    pool = WorkerPool(silence_timeout=1.0, silence_name="the per-cell time limit")
    started = time.monotonic()
    worker = pool.start("hang", pool_workers.hello_then_hang)
    received, lost = _events_until_lost(pool)
    assert received == ["hello"]
    assert (lost.status, lost.why) == ("timeout", "no result for 1 s (the per-cell time limit)")
    assert 1.0 <= time.monotonic() - started < 30 and not worker.process.is_alive()  # killed, not waited for


def test_a_worker_over_the_memory_limit_is_killed() -> None:
    limit = 512 * 2**20
    pool = WorkerPool(memory_limit=limit)
    worker = pool.start("hoard", pool_workers.hoard_memory)
    received, lost = _events_until_lost(pool)
    assert received == ["hello"] and lost.status == "crashed"
    assert lost.why.startswith("killed at ") and lost.why.endswith("over the memory limit of 0.5 GiB")
    assert not worker.process.is_alive()


def test_ask_gets_each_reply_and_a_silent_worker_is_lost() -> None:
    pool = WorkerPool()
    echo = pool.start("echo", pool_workers.echo)
    assert pool.ask(echo, 21, timeout=30) == Received(echo, 42)
    assert pool.ask(echo, "ab", timeout=30) == Received(echo, "abab")
    hung = pool.start("hang", pool_workers.hello_then_hang)
    assert pool.receive(hung, timeout=30).message == "hello"
    lost = pool.ask(hung, "anything", timeout=0.5)
    assert isinstance(lost, Lost) and (lost.status, lost.why) == (
        "timeout", "worker gave no answer within 0.5 s (stopped)")
    assert pool.running == [echo]
    pool.close(goodbye=None)
    assert pool.running == [] and not echo.process.is_alive()


def test_stop_lets_a_worker_say_goodbye() -> None:
    pool = WorkerPool()
    echo = pool.start("echo", pool_workers.echo)
    pool.stop(echo, goodbye=None)  # no goodbye: the closed pipe ends it
    assert echo.process.exitcode is not None
    second = pool.start("echo-2", pool_workers.echo)
    pool.send(second, None)  # its own way out
    second.process.join(30)
    assert second.process.exitcode == 0
    pool.stop(second)
    assert pool.running == []


def test_close_without_waiting_ends_the_workers_let_go_on_a_thread() -> None:
    pool = WorkerPool()
    echo, hung = pool.start("echo", pool_workers.echo), pool.start("hang", pool_workers.hello_then_hang)
    assert pool.receive(hung, timeout=30).message == "hello"
    assert pool.ask(echo, 1, timeout=30) == Received(echo, 2)  # started: its goodbye ends it within the grace
    pool.release(echo, None)  # it exits on its goodbye
    pool.release(hung, None)  # it does not: the grace runs out and it is killed
    began = time.monotonic()
    pool.close(grace=1.0, wait=False)
    assert time.monotonic() - began < 0.5  # the caller carries on at once
    deadline = time.monotonic() + 30
    while None in (echo.process.exitcode, hung.process.exitcode) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert echo.process.exitcode == 0 and hung.process.exitcode == -9  # SIGKILL, after the grace
