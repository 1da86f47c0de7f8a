"""What each installed framework is here (versions, devices), found by loading it in a worker of its own (the
framework's import never touches this process), and kept in the cache for the next time."""

from __future__ import annotations

import hashlib
import json
import os
from multiprocessing.connection import Connection
from pathlib import Path

from harness.store.environment import cache_root, machine_fingerprint
from harness.workers.messages import Hello, LoadFailed, load_framework
from harness.workers.pool import Lost, Received, Worker, WorkerPool
from harness.workers.process import redirect_output
from implementations import Adapter

__all__ = ["describe", "discover", "known_devices"]


def describe(framework: str, threads: int, channel: Connection) -> None:
    """Worker: load the framework and say what it is."""
    redirect_output("/dev/null")
    channel.send(load_framework(framework, threads)[1])


def discover(adapters: dict[str, type[Adapter]], threads: int = 1, timeout: float = 120.0) -> dict[str, Hello | str]:
    """Load each installed framework in a worker (all at once): {name: its Hello, or why it is not there}."""
    pool = WorkerPool()
    try:
        workers = {name: pool.start(f"describe-{name}", describe, name, threads)
                   for name, adapter in adapters.items() if adapter.is_available()}
        return {name: _described(pool, workers[name], timeout) if name in workers
                else adapter.unavailable_reason() for name, adapter in adapters.items()}
    finally:
        pool.close()  # no worker outlives the discovery, whatever happened


def _described(pool: WorkerPool, worker: Worker, timeout: float) -> Hello | str:
    match pool.receive(worker, timeout):
        case Received(message=Hello() as hello):
            return hello
        case Received(message=LoadFailed() as failed):
            return failed.describe()
        case Received(message=other):
            return f"the worker said {type(other).__name__}, not hello"
        case Lost(why=why):
            return f"the worker was lost: {why}"
    raise AssertionError("unreachable")


def _cache_file(name: str, adapter: type[Adapter], machine: str) -> Path:
    """Where one framework's devices are kept: keyed by its installed versions and the machine's fingerprint, so
    a new release, or a cache copied to a machine with other GPUs, is discovered again."""
    key = json.dumps({"framework": name, "versions": adapter.distribution_versions(), "machine": machine},
                     sort_keys=True)
    return cache_root() / "devices" / f"{name}-{hashlib.sha256(key.encode()).hexdigest()[:16]}.json"


def _cached(file: Path) -> Hello | None:
    try:
        stored = json.loads(file.read_text(encoding="utf-8"))
        return Hello(stored["framework"], dict(stored["versions"]), list(stored["devices"]), 0)
    except (OSError, ValueError, KeyError, TypeError):  # absent or damaged: discovered again
        return None


def known_devices(adapters: dict[str, type[Adapter]], use_cache: bool = True) -> dict[str, Hello | str]:
    """`discover`, with what an earlier discovery found on this machine for the same installed versions read
    from the cache (`.bce-cache/devices/`) instead of importing the framework again. Failures are not cached."""
    machine = machine_fingerprint()
    files = {name: _cache_file(name, adapter, machine) for name, adapter in adapters.items()}
    found: dict[str, Hello | str] = {}
    for name in adapters:
        cached = _cached(files[name]) if use_cache and adapters[name].is_available() else None
        if cached is not None:
            found[name] = cached
    fresh = discover({name: adapter for name, adapter in adapters.items() if name not in found})
    for name, hello in fresh.items():
        if isinstance(hello, Hello) and use_cache:
            files[name].parent.mkdir(parents=True, exist_ok=True)
            temporary = files[name].with_suffix(f".{os.getpid()}.tmp")
            temporary.write_text(json.dumps({"framework": name, "versions": hello.versions,
                                             "devices": hello.devices}), encoding="utf-8")
            os.replace(temporary, files[name])
    return {name: found.get(name) or fresh[name] for name in adapters}
