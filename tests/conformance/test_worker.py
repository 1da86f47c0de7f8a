"""The audit worker, run in this process over a pipe: its greeting, one message per cell of each piece it is
assigned, then Ready, until Stop."""

from __future__ import annotations

import multiprocessing as mp

import numpy as np

from cases import Case
from harness.conformance.messages import Assign, BatchComputed, Computed, NotSupported, Raised, Ready, Stop
from harness.conformance.plan import Job
from harness.conformance.worker import worker_main
from harness.workers.messages import Hello, LoadFailed

CASES = [Case("ok", "t", "logits", np.array([0.0, 1.0]), np.array([0.0, 1.0]), tags=("batch",)),
         Case("mismatch", "t", "logits", np.array([0.0, 1.0]), np.array([[0.0], [1.0]]))]


def _messages(framework: str, *pieces: list[Job]) -> list[object]:
    mine, theirs = mp.Pipe()
    for piece in pieces:
        mine.send(Assign(tuple(piece)))
    mine.send(Stop())
    worker_main(framework, 1, CASES, None, None, theirs)  # it returns on Stop
    found = []
    while mine.poll():
        found.append(mine.recv())
    return found


def test_one_message_per_cell_in_order() -> None:
    jobs = [Job(0, "float32", "numpy.logits", "cpu", ("none", "mean")),
            Job(0, "float32", "numpy.logits", "cpu", ("none",), check="batch"),
            Job(0, "float32", "numpy.logits", "gpu", ("sum",)),
            Job(1, "float32", "numpy.logits", "cpu", ("none",))]
    hello, *cells, ready = _messages("numpy", jobs[:2], jobs[2:])
    assert isinstance(hello, Hello) and hello.framework == "numpy" and hello.devices == ["cpu"]
    assert hello.load_seconds > 0 and hello.devices_seconds >= 0
    assert isinstance(cells[3], Ready) and isinstance(ready, Ready)  # after each piece
    assert ready.cpu_seconds > 0 and ready.peak_bytes > 2**20
    cells.pop(3)
    assert all(cell.seconds > 0 for cell in cells)
    assert [type(m) for m in cells] == [Computed, Computed, BatchComputed, NotSupported, Raised]
    assert isinstance(cells[0], Computed) and cells[0].output.loss.shape == (2,)
    assert isinstance(cells[1], Computed) and float(cells[1].output.loss) == np.float32(
        (np.log(2) + np.log1p(np.exp(-1.0))) / 2)
    assert isinstance(cells[3], NotSupported) and "CPU only" in cells[3].message
    assert isinstance(cells[4], Raised) and cells[4].error_type == "ValueError"


def test_a_framework_that_fails_to_load_says_so_and_stops() -> None:
    (failed,) = _messages("no-such-framework", [Job(0, "float32", "x.logits", "cpu", ("none",))])
    assert isinstance(failed, LoadFailed) and failed.error_type == "KeyError"
