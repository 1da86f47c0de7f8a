"""Worker processes, shared by both pipelines: the pool that starts, watches and stops them, what every worker
does for itself, the greeting it sends first, and the discovery of what each framework is here."""

from harness.workers.devices import discover, known_devices
from harness.workers.messages import Hello, LoadFailed
from harness.workers.pool import Event, Lost, Received, Worker, WorkerPool

__all__ = ["Event", "Hello", "LoadFailed", "Lost", "Received", "Worker", "WorkerPool", "discover", "known_devices"]
