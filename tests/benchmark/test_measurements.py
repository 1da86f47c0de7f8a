"""What a benchmark measured, and the same rebuilt from its journal: whole groups kept, a later record wins."""

from __future__ import annotations

from harness.benchmark.measurements import Measurements, group_keys, journal_what
from harness.benchmark.messages import Failed, Prepared, Timed
from harness.benchmark.plan import BenchConfig, KernelConfig, ReadConfig

A = BenchConfig("numpy", "numpy.logits", "logits", "eager", "forward", "cpu", "float32", 100)
B = A._replace(direction="forward_backward")
READ = ReadConfig("numpy", "cpu", "float32", 100)
GROUP = ("cpu", "float32", 100)
KERNELS = [KernelConfig("cpu", "float32", 100, "forward"), KernelConfig("cpu", "float32", 100, "forward_backward")]
CHECKED = {"event": "checked", "group": list(GROUP), "retimed": [], "unstable": []}


def _journal(key: BenchConfig | ReadConfig | KernelConfig, *blocks: list[float]) -> list[dict[str, object]]:
    prepared = {"event": "prepared", **journal_what(key), **Prepared(0.5, 2, 10).record()}
    return [prepared, *({"event": "block", **journal_what(key), "sweep": s, "process": 0, "iterations": 10,
                         "data": data} for s, data in enumerate(blocks))]


def test_a_group_is_its_configurations_one_read_per_framework_and_the_kernel() -> None:
    assert group_keys(GROUP, [A, B]) == [A, B, READ, *KERNELS]
    assert group_keys(GROUP, [A]) == [A, READ, KERNELS[0]]  # the kernel in the directions the group times
    on_gpu = [A._replace(device="gpu")]
    assert group_keys(("gpu", "float32", 100), on_gpu) == [*on_gpu, READ._replace(device="gpu")]  # memory only


def test_the_journal_rebuilds_what_was_measured() -> None:
    records = [*_journal(A, [1.0, 3.0], [2.0, 2.0]), *_journal(READ, [0.5, 0.5], [0.25, 0.75]),
               {"event": "prepared", **journal_what(B), "error": ["Unsupported", "no such mode"]},
               *_journal(KERNELS[0], [0.1, 0.1], [0.3, 0.3]),
               {"event": "prepared", **journal_what(KERNELS[1]), "error": ["KernelUnavailable", "no C compiler"]}]
    measured = Measurements.replayed(records, sweeps=2)
    assert measured.prepared[A] == Prepared(0.5, 2, 10) and measured.data(A) == [1.0, 3.0, 2.0, 2.0]
    assert measured.problems == {B: ("Unsupported", "no such mode"), KERNELS[1]: ("KernelUnavailable", "no C compiler")}
    assert not measured.finished(GROUP, [A, B], sweeps=2)  # its stability was not decided yet
    measured = Measurements.replayed([*records, CHECKED], sweeps=2)
    assert measured.finished(GROUP, [A, B], sweeps=2) and not measured.finished(GROUP, [A, B], sweeps=3)
    assert measured.baselines() == [{"framework": "numpy", "device": "cpu", "dtype": "float32", "n": 100,
                                     "median_s": 0.5, "rounds": 4}]
    assert measured.kernels() == [
        {"device": "cpu", "dtype": "float32", "n": 100, "direction": "forward", "median_s": 0.2, "rounds": 4,
         "accuracy": ""},
        {"device": "cpu", "dtype": "float32", "n": 100, "direction": "forward_backward",
         "error": ["KernelUnavailable", "no C compiler"]}]


def test_a_group_timed_again_replaces_what_it_had() -> None:
    records = [*_journal(A, [1.0, 1.0]), *_journal(A, [4.0, 4.0], [5.0, 5.0])]
    measured = Measurements.replayed(records, sweeps=2)
    assert measured.data(A) == [4.0, 4.0, 5.0, 5.0]
    measured.forget([A])
    assert A not in measured.prepared and measured.data(A) == []


def test_a_failed_reply_is_a_problem_and_a_result_is_kept() -> None:
    measured = Measurements()
    assert measured.note(A, Prepared(0.1, 3, 1)) and measured.note(A, Timed(1, (2.0, 3.0)))
    assert not measured.note(B, Failed("WorkerLost", "the numpy worker died"))
    assert measured.data(A) == [2.0, 3.0] and measured.problems[B] == ("WorkerLost", "the numpy worker died")
