"""The worker pool: starts worker processes, hands on their messages, watches them, and stops them.

Both pipelines use it. The audit lets several workers run at once and reads whatever message comes next
(`next_event`), watching each for death, memory and silence (`watch`); the benchmark asks one worker at a time
and waits for its reply (`ask`). Either way a worker that dies, hangs or grows past the memory limit becomes a
`Lost` event with the reason, and the pool has already stopped it: what the loss costs is the pipeline's call.

Each worker has its own duplex pipe (no lock shared with other workers), so a crash, a hang or a kill of one
framework cannot touch another or this process. Processes are spawned, never forked: a framework's threads
must not be copied half-way through something.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from typing import Any, cast

from harness.workers.process import death, resident_bytes

__all__ = ["Event", "Lost", "Received", "Worker", "WorkerPool"]


@dataclass(eq=False)
class Worker:
    """One worker process and the parent's end of its pipe."""

    name: str
    process: BaseProcess
    channel: Connection
    started: float
    last_heard: float

    @property
    def pid(self) -> int | None:
        return self.process.pid


@dataclass(frozen=True, slots=True)
class Received:
    """A message from a worker."""

    worker: Worker
    message: Any


@dataclass(frozen=True, slots=True)
class Lost:
    """A worker that died ("crashed", with the signal or exit code), went silent ("timeout") or held more memory
    than allowed ("crashed"); the pool has stopped it."""

    worker: Worker
    status: str
    why: str


Event = Received | Lost


class WorkerPool:
    """The running workers of one pipeline.

    Args:
        silence_timeout: seconds a worker may go without a message before `watch` stops it (None: no limit).
        memory_limit: bytes of resident memory a worker may hold before `watch` stops it (None: no limit).
        silence_name: what the silence limit is called in the reason of a timeout (for the rows that carry it).
    """

    def __init__(self, *, silence_timeout: float | None = None, memory_limit: int | None = None,
                 silence_name: str = "the time limit") -> None:
        self.silence_timeout = silence_timeout
        self.memory_limit = memory_limit
        self.silence_name = silence_name
        self._context = mp.get_context("spawn")
        self._running: list[Worker] = []
        self._leaving: list[Worker] = []

    @property
    def running(self) -> list[Worker]:
        return list(self._running)

    def start(self, name: str, target: Callable[..., None], *args: Any) -> Worker:
        """Spawn `target(*args, channel)` as worker `name` (its end of the pipe comes last)."""
        mine, theirs = self._context.Pipe(duplex=True)
        process = self._context.Process(target=target, name=f"bce-{name}", args=(*args, theirs), daemon=True)
        process.start()
        theirs.close()  # the worker holds the only other end: its death closes the pipe
        now = time.monotonic()
        worker = Worker(name, process, mine, now, now)
        self._running.append(worker)
        return worker

    def send(self, worker: Worker, message: Any) -> None:
        """Send a message; a worker that is gone is found out by the next receive (or `watch`)."""
        with contextlib.suppress(OSError):
            worker.channel.send(message)

    def receive(self, worker: Worker, timeout: float) -> Event:
        """The worker's next message; if it dies, or says nothing for `timeout` seconds, the loss (it is stopped)."""
        try:
            if worker.channel.poll(timeout):
                return self._received(worker)
        except (EOFError, OSError):
            return self._died(worker)
        return self._lose(worker, "timeout", f"worker gave no answer within {timeout:g} s (stopped)")

    def ask(self, worker: Worker, request: Any, timeout: float) -> Event:
        """Send `request` and wait for the reply, as `receive` does."""
        self.send(worker, request)
        return self.receive(worker, timeout)

    def next_event(self, timeout: float = 1.0) -> Event | None:
        """The next message from any running worker (or the loss of one whose pipe closed); None after `timeout`
        seconds without either."""
        by_channel = {worker.channel: worker for worker in self._running}
        for ready in wait(list(by_channel), timeout=timeout):
            worker = by_channel[cast(Connection, ready)]
            try:
                return self._received(worker)
            except (EOFError, OSError):  # the pipe closed: the worker is gone
                return self._died(worker)
        return None

    def watch(self) -> list[Lost]:
        """Stop every worker that died, stayed silent past the limit or holds more memory than allowed."""
        now, lost = time.monotonic(), []
        self._leaving = [worker for worker in self._leaving if worker.process.is_alive()]  # reaps those gone
        for worker in self.running:
            if not worker.process.is_alive() and not self._has_message(worker):
                lost.append(self._died(worker))
            elif self.silence_timeout is not None and now - worker.last_heard > self.silence_timeout:
                lost.append(self._lose(worker, "timeout", f"no result for {self.silence_timeout:g} s "
                                                          f"({self.silence_name})"))
            elif self.memory_limit is not None and (used := resident_bytes(worker.pid)) > self.memory_limit:
                lost.append(self._lose(worker, "crashed", f"killed at {used / 2**30:.1f} GiB resident, over the "
                                                          f"memory limit of {self.memory_limit / 2**30:.1f} GiB"))
        return lost

    def stop(self, worker: Worker, goodbye: Any = None, grace: float = 10.0) -> None:
        """End a worker: send `goodbye` if given, give it `grace` seconds to exit, then kill it."""
        if goodbye is not None:
            self.send(worker, goodbye)
        worker.channel.close()
        _end([worker], time.monotonic() + grace)
        if worker in self._running:
            self._running.remove(worker)

    def release(self, worker: Worker, goodbye: Any) -> None:
        """Let a worker go without waiting for it: send `goodbye` (on which it exits by itself) and stop watching
        it; `close` makes sure it ends (or, without waiting, has that done on a thread). The caller carries on at
        once, while the worker tears down."""
        self.send(worker, goodbye)
        worker.channel.close()
        if worker in self._running:
            self._running.remove(worker)
        self._leaving.append(worker)

    def close(self, goodbye: Any = None, grace: float = 2.0, wait: bool = True) -> None:
        """Stop every worker still running, and give those let go `grace` seconds in all to end before they are
        killed (they have said all they had to say: what is left is their framework's teardown). With `wait`
        false that happens on a thread of its own while the caller carries on (the interpreter waits for it
        before it exits)."""
        for worker in self.running:
            self.stop(worker, goodbye)
        leaving, self._leaving = self._leaving, []
        if wait:
            _end(leaving, time.monotonic() + grace)
        elif leaving:
            threading.Thread(target=_end, args=(leaving, time.monotonic() + grace), name="bce-teardown").start()

    def _received(self, worker: Worker) -> Received:
        message = worker.channel.recv()
        worker.last_heard = time.monotonic()
        return Received(worker, message)

    @staticmethod
    def _has_message(worker: Worker) -> bool:
        try:
            return worker.channel.poll()
        except (EOFError, OSError):
            return False

    def _died(self, worker: Worker) -> Lost:
        worker.process.join(timeout=5)
        return self._lose(worker, "crashed", death(worker.process))

    def _lose(self, worker: Worker, status: str, why: str) -> Lost:
        self.stop(worker, grace=0.0)  # a worker that is lost is not waited for
        return Lost(worker, status, why)


def _end(workers: list[Worker], deadline: float) -> None:
    """Wait for each worker to end until `deadline`; kill those still there."""
    for worker in workers:
        worker.process.join(timeout=max(0.0, deadline - time.monotonic()))
        if worker.process.is_alive():
            worker.process.kill()
            worker.process.join(timeout=10)
