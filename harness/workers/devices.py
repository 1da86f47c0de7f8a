"""What each installed framework is here (versions, devices), found by loading it in a worker of its own: the
framework's import never touches this process."""

from __future__ import annotations

from multiprocessing.connection import Connection

from harness.workers.messages import Hello, LoadFailed, load_framework
from harness.workers.pool import Lost, Received, WorkerPool
from harness.workers.process import redirect_output
from implementations import Adapter

__all__ = ["describe", "discover"]


def describe(framework: str, threads: int, channel: Connection) -> None:
    """Worker: load the framework and say what it is."""
    redirect_output("/dev/null")
    channel.send(load_framework(framework, threads)[1])


def discover(adapters: dict[str, type[Adapter]], threads: int = 1, timeout: float = 120.0) -> dict[str, Hello | str]:
    """Load each installed framework in a worker (all at once): {name: its Hello, or why it is not there}."""
    pool = WorkerPool()
    workers = {name: pool.start(f"describe-{name}", describe, name, threads)
               for name, adapter in adapters.items() if adapter.is_available()}
    found: dict[str, Hello | str] = {}
    for name in adapters:
        if name not in workers:
            found[name] = "not installed"
            continue
        match pool.receive(workers[name], timeout):
            case Received(message=Hello() as hello):
                found[name] = hello
            case Received(message=LoadFailed() as failed):
                found[name] = failed.describe()
            case Received(message=other):
                found[name] = f"the worker said {type(other).__name__}, not hello"
            case Lost(why=why):
                found[name] = f"the worker was lost: {why}"
    pool.close()
    return found
