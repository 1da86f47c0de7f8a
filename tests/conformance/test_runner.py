"""The runner: rows at once for what cannot run, jobs split between workers by case, a dead worker's job alone
lost, and a real run of a small matrix through the pool."""

from __future__ import annotations

import numpy as np

from cases import Case, builtin_cases
from harness.conformance.plan import Cell, Job
from harness.conformance.runner import Settings, Share, remaining_jobs, run_conformance, split_jobs
from harness.store.schema import CellKey, ConformanceRow
from implementations import Adapter, adapter_classes
from implementations.numpy_adapter import NumpyAdapter


class Missing(Adapter):
    framework = "notinstalled"
    distributions = ("notinstalled",)
    implementations = NumpyAdapter.implementations

    @classmethod
    def is_available(cls) -> bool:
        return False


def test_missing_framework_gives_unavailable_rows_with_the_fix() -> None:
    rows: list[ConformanceRow] = []
    run_conformance(builtin_cases(families=["seed"]), {"notinstalled": Missing}, ["float32"], ["cpu"],
                    emit=rows.extend)
    assert len(rows) == 3 * 3 * 2  # 3 implementations × 3 reductions × 2 quantities
    assert {row.status for row in rows} == {"unavailable"}
    assert rows[0].error_message == ("notinstalled is not installed; install it "
                                     "(pip install 'bce-harness[notinstalled]')")


def _jobs(cases: int) -> list[Job]:
    return [Job(i, "float32", "numpy.logits", "cpu", ("none", "mean", "sum")) for i in range(cases)]


def test_jobs_are_split_by_case_and_narrowed_to_what_is_pending() -> None:
    shares = split_jobs("numpy", [*_jobs(3), Job(0, "float32", "numpy.logits", "cpu", ("mean",), mode="x")], 2)
    assert [share.id for share in shares] == ["numpy#0", "numpy#1"]
    by_case = {job.case_index: share.id for share in shares for job in share.jobs}
    assert by_case[0] == "numpy#0"  # the case with a compiled job is the biggest: alone in the first share
    assert sorted(job.case_index for job in shares[1].jobs) == [1, 2]
    pending = {Cell("numpy.logits", 1, "float32", "cpu", "sum")}
    assert remaining_jobs(_jobs(3), pending) == [Job(1, "float32", "numpy.logits", "cpu", ("sum",))]


def test_a_lost_worker_s_culprit_is_its_first_pending_job() -> None:
    jobs = _jobs(2)
    share = Share("numpy", "numpy", jobs, {c for job in jobs for c in job.cells()})
    share.pending -= set(jobs[0].cells()[:2])  # the first job's none and mean were answered
    assert share.in_progress() == [jobs[0].cells()[2]]
    fresh = share.restarted()
    assert fresh.restarts == 1 and fresh.pending == share.pending and fresh.jobs[0].reductions == ("sum",)


def test_a_small_matrix_runs_through_the_pool_and_resumes_without_repeats() -> None:
    case = Case("c", "test", "logits", np.array([0.0, -30.0]), np.array([0.0, 0.0]), tags=("batch",))
    numpy = {"numpy": adapter_classes()["numpy"]}
    rows: list[ConformanceRow] = []
    report = run_conformance([case], numpy, ["float32"], ["cpu"], emit=rows.extend, settings=Settings(jobs=1))
    # numpy's 2 logits implementations × (3 reductions + the batch check) × 2 quantities
    assert len(rows) == 16 and len({row.row_id for row in rows}) == 16
    assert report["workers"]["numpy"]["devices"] == ["cpu"] and report["faults"] == []
    stable = {row.row_id: row.status for row in rows if row.impl == "numpy.logits"}
    assert set(stable.values()) == {"pass"}
    recorded = frozenset(CellKey.of(row.record()) for row in rows if row.reduction != "sum")
    again: list[ConformanceRow] = []
    run_conformance([case], numpy, ["float32"], ["cpu"], emit=again.extend, recorded=recorded)
    assert {row.reduction for row in again} == {"sum"} and len(again) == 2 * 2
