"""The runner: rows at once for what cannot run, work handed out in pieces of one shape, dtype and mode, another
worker only where it pays, a dead worker's job alone lost, and a real run of a small matrix through the pool."""

from __future__ import annotations

import numpy as np

from cases import Case, builtin_cases
from harness.conformance.plan import Cell, Job
from harness.conformance.runner import Backlog, Settings, Share, remaining_jobs, run_conformance, units_of
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


def _case(name: str, size: int, weight: np.ndarray | None = None) -> Case:
    return Case(name, "t", "logits", np.zeros(size), np.zeros(size), weight=weight)


def test_work_goes_out_in_pieces_of_one_shape_dtype_and_mode_heaviest_first() -> None:
    cases = [_case("a", 4), _case("b", 4), _case("c", 5), _case("w", 4, weight=np.ones(4))]
    jobs = [*_jobs(4), Job(2, "float32", "numpy.logits", "cpu", ("mean",), mode="x"),
            Job(1, "float64", "numpy.logits", "cpu", ("none",)),
            Job(0, "float32", "numpy.logits", "cpu", ("none",), check="batch"),
            Job(2, "float32", "numpy.logits", "cpu", ("none",), check="batch")]
    units = units_of(jobs, cases)
    assert [[(job.case_index, job.dtype, job.mode, job.check) for job in unit] for unit in units] == [
        [(2, "float32", "x", "reference")],  # compiled: 10 per cell
        [(0, "float32", "eager", "batch"), (2, "float32", "eager", "batch")],  # the batch checks of a dtype: 5 each
        [(0, "float32", "eager", "reference"), (1, "float32", "eager", "reference"),
         (3, "float32", "eager", "reference")],  # one shape of x and y (a weight's shape aside): 9 cells
        [(2, "float32", "eager", "reference")],  # (5,) is another shape
        [(1, "float64", "eager", "reference")],  # and float64 another dtype
    ]
    assert sorted(map(repr, (job for unit in units for job in unit))) == sorted(map(repr, jobs))  # all, once


def test_pending_cells_narrow_the_jobs_and_a_lost_worker_s_culprit_is_its_first() -> None:
    pending = {Cell("numpy.logits", 1, "float32", "cpu", "sum")}
    assert remaining_jobs(_jobs(3), pending) == [Job(1, "float32", "numpy.logits", "cpu", ("sum",))]
    jobs = _jobs(2)
    share = Share("numpy#0", "numpy")
    share.assign(jobs)
    share.pending -= set(jobs[0].cells()[:2])  # the first job's none and mean were answered
    assert share.in_progress() == [jobs[0].cells()[2]]
    share.assign(_jobs(1))  # a new piece goes after what is still pending
    assert [(job.case_index, job.reductions) for job in share.jobs] == [(0, ("sum",)), (1, ("none", "mean", "sum")),
                                                                        (0, ("none", "mean", "sum"))]


def test_another_worker_starts_only_when_its_part_of_the_rest_pays_for_its_import() -> None:
    backlog = Backlog("numpy", [_jobs(10)])  # 30 eager cells left
    assert not backlog.worth_another_worker()  # nothing measured yet
    backlog.live, backlog.load_seconds = 1, 2.0
    backlog.busy, backlog.done_weight = 0.5, 30  # 1/60 s per cell: half of the rest is 0.25 s, not 3 imports
    assert not backlog.worth_another_worker()
    backlog.busy = 30.0  # 1 s per cell: half of the rest is 15 s, more than 3 × 2 s
    assert backlog.worth_another_worker()
    backlog.units = []
    assert not backlog.worth_another_worker()


def test_a_small_matrix_runs_through_the_pool_and_resumes_without_repeats() -> None:
    case = Case("c", "test", "logits", np.array([0.0, -30.0]), np.array([0.0, 0.0]), tags=("batch",))
    numpy = {"numpy": adapter_classes()["numpy"]}
    rows: list[ConformanceRow] = []
    report = run_conformance([case], numpy, ["float32"], ["cpu"], emit=rows.extend, settings=Settings(jobs=1))
    # numpy's 2 logits implementations × (3 reductions + the batch check) × 2 quantities
    assert len(rows) == 16 and len({row.row_id for row in rows}) == 16
    assert report["workers"]["numpy"]["devices"] == ["cpu"] and report["faults"] == []
    profile = report["profile"]
    numpy_profile = profile["frameworks"]["numpy"]
    assert numpy_profile["cells"] == {"batch": 2, "eager": 6} and numpy_profile["workers"] == 1
    assert set(numpy_profile["compute_s"]) == {"batch", "eager"} and numpy_profile["cpu_s"] > 0
    assert profile["references"]["computed"] + profile["references"]["cached"] == 1  # one case, one dtype
    assert {"plan_s", "references_s", "judge_s", "journal_s", "waiting_s", "run_s", "cpu_s"} <= set(profile["main"])
    stable = {row.row_id: row.status for row in rows if row.impl == "numpy.logits"}
    assert set(stable.values()) == {"pass"}
    recorded = frozenset(CellKey.of(row.record()) for row in rows if row.reduction != "sum")
    again: list[ConformanceRow] = []
    run_conformance([case], numpy, ["float32"], ["cpu"], emit=again.extend, recorded=recorded)
    assert {row.reduction for row in again} == {"sum"} and len(again) == 2 * 2
