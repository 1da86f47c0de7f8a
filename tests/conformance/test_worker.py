"""The audit worker, run in this process over a pipe: its greeting, one message per cell of each piece it is
assigned, then Ready, until Stop."""

from __future__ import annotations

import multiprocessing as mp
from types import SimpleNamespace
from typing import Any

import numpy as np

from cases import Case
from harness.conformance.messages import Assign, BatchComputed, Computed, NotSupported, Raised, Ready, Stop
from harness.conformance.plan import BATCH_SIZE, Job
from harness.conformance.worker import run_jobs, worker_main
from harness.workers.messages import Hello, LoadFailed, load_framework

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


def test_the_batch_check_computes_an_element_alone_once_per_piece() -> None:
    adapter, _ = load_framework("numpy", 1)
    assert adapter is not None
    compute, sizes = adapter.compute, []

    def counted(*args: Any, **kwargs: Any) -> Any:
        sizes.append(args[1]["x"].size)
        return compute(*args, **kwargs)

    adapter.compute = counted  # type: ignore[method-assign]
    cases = [Case("a", "t", "logits", np.array([0.0, 1.0, 0.0, -0.0]), np.ones(4), tags=("batch",)),
             Case("b", "t", "logits", np.array([1.0, 2.0]), np.array([1.0, 0.0]), tags=("batch",))]
    sent: list[Any] = []
    channel = SimpleNamespace(send=sent.append)  # run_jobs only sends
    run_jobs(adapter, cases, [Job(i, "float32", "numpy.logits", "cpu", ("none",), check="batch") for i in (0, 1)],
             channel)  # type: ignore[arg-type]
    first, second = sent
    # alone: 0, 1 and -0 (other bits than 0) with y = 1 in "a"; in "b" (1, 1) again, (2, 0) new; and two batches
    assert sorted(sizes) == [1, 1, 1, 1, BATCH_SIZE, BATCH_SIZE]
    for message, case in ((first, cases[0]), (second, cases[1])):
        assert isinstance(message, BatchComputed)
        one_by_one = [compute(adapter.implementation("numpy.logits"),
                              {"x": case.x[i:i + 1].astype(np.float32), "y": case.y[i:i + 1].astype(np.float32)},
                              "none", "cpu") for i in range(case.x.size)]
        assert np.array_equal(message.alone.loss, np.concatenate([out.loss for out in one_by_one]))
        assert np.array_equal(message.alone.grad, np.concatenate([out.grad for out in one_by_one]))
    assert first.alone.grad[3] == first.alone.grad[0] and np.signbit(first.alone.grad[0]) and first.alone.loss[0] \
        == np.float32(np.log(2))
