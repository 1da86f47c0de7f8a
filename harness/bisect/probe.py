"""What a bisection audits in each release: one row (implementation, dtype, reduction, quantity, mode) of one
minimal case, taken from a finding (its minimal example: one element where the problem is element-wise) or from
a case file; and the audit of it inside a release's environment, read back as an `Outcome`."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

import pandas as pd

from cases import BadInput, Case, case_entry
from harness.bisect.envs import PROJECT, Release
from harness.bisect.search import WORKING_STATUSES, Outcome
from harness.findings.repro import one_element
from harness.store.folder import RunStore

__all__ = ["BisectError", "Target", "audit_release", "target_of_cases", "target_of_finding"]

# the audit as the release's interpreter runs it, from the checkout (no report: only the row is read)
_AUDIT = ("import json, sys\n"
          "from harness.api import audit\n"
          "audit(**json.loads(sys.argv[1]), write_report=False, progress=None)\n")


class BisectError(BadInput):
    """A bisection asked for something the run folder, the case file or the framework does not have."""


@dataclass(frozen=True)
class Target:
    """The row a bisection follows: `impl` in `dtype` on `device` on `case`, its `quantity` under `reduction`, in
    `mode`, by `check` (against the exact value, or a compiled path against eager); `origin` says where it came
    from."""

    case: Case
    impl: str
    dtype: str
    reduction: str = "none"
    quantity: str = "loss"
    mode: str = "eager"
    origin: str = ""
    check: str = "reference"
    device: str = "cpu"

    @property
    def framework(self) -> str:
        return self.impl.split(".")[0]


def target_of_finding(run_dir: Path, finding_id: str) -> Target:
    """A finding's minimal example as a target: its representative row, cut to the one element that shows it
    (reduction none) where the problem is element-wise."""
    store = RunStore(run_dir)
    store.read_meta()
    findings = store.findings()
    chosen = findings[findings["finding_id"] == finding_id]
    if chosen.empty:
        raise BisectError(f"no finding {finding_id!r} in {str(run_dir)!r}; finding ids are in its findings.json and "
                          "report.md")
    finding, table, cases = chosen.iloc[0], store.conformance(), store.read_cases()
    rows = table[table["row_id"] == finding["example_row"]]
    if rows.empty or str(rows.iloc[0]["case"]) not in cases:
        raise BisectError(f"{str(run_dir)!r} lacks the row or the case of finding {finding_id}; rerun the audit")
    row = rows.iloc[0]
    if row["check"] not in ("reference", "path"):
        raise BisectError(f"finding {finding_id} is a {row['check']} finding (two results of one release); bisect "
                          "its reference rows instead: --cases FILE --impl IMPL --dtype DTYPE")
    case = cases[str(row["case"])]
    if finding["minimal"] == "element":  # the element keeps its case's tags: an API limited to them runs it
        element, row = one_element(case, row, tuple(json.loads(finding["example_index"])))
        case = replace(element, tags=case.tags)
    return Target(case, str(row["impl"]), str(row["dtype"]), str(row["reduction"]), str(row["quantity"]),
                  str(row["mode"]), f"finding {finding_id} of {run_dir}: {finding['title']}", str(row["check"]),
                  str(row["device"]))


def target_of_cases(cases: list[Case], name: str | None, impl: str, dtype: str, reduction: str, quantity: str,
                    mode: str) -> Target:
    """A case of a case file (the one named, or the only one) as a target."""
    chosen = [case for case in cases if name in (None, case.name)]
    if len(chosen) != 1:
        names = ", ".join(case.name for case in cases)
        raise BisectError(f"the case file holds {names}; name the one to bisect with --case NAME" if name is None
                          else f"no case {name!r} in the case file (it holds {names})")
    return Target(chosen[0], impl, dtype, reduction, quantity, mode, f"case {chosen[0].name}")


def audit_release(release: Release, version: str, target: Target, timeout: float = 900.0) -> Outcome:
    """Audit the target's case in the release's environment (its own interpreter, this checkout's harness, a
    cache of its own) and read the target's row: an Outcome, or a skip with the reason."""
    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bce-bisect-") as scratch:
        folder = Path(scratch)
        (folder / "case.json").write_text(json.dumps({"cases": [case_entry(target.case)]}), encoding="utf-8")
        arguments = {"frameworks": [target.framework], "dtypes": [target.dtype], "devices": [target.device],
                     "cases": str(folder / "case.json"), "out": str(folder / "run"), "jobs": 1, "full": True}
        environment = {**{k: v for k, v in os.environ.items() if k != "PIP_CONSTRAINT"},
                       "PYTHONPATH": str(PROJECT), "BCE_HARNESS_CACHE": str(folder / "cache")}
        try:
            done = subprocess.run([str(release.python), "-c", _AUDIT, json.dumps(arguments)], cwd=PROJECT,
                                  capture_output=True, text=True, timeout=timeout, env=environment)
        except subprocess.TimeoutExpired:
            return Outcome(version, skipped=f"the audit took over {timeout:.0f} s")
        except OSError as exc:  # the environment's interpreter is gone
            return Outcome(version, skipped=f"the release's interpreter did not start: {exc}")
        outcome = _read(folder / "run", version, target, done)
    return replace(outcome, seconds=round(time.perf_counter() - began, 2))


def _read(run: Path, version: str, target: Target, done: subprocess.CompletedProcess[str]) -> Outcome:
    if not (run / "conformance.parquet").is_file():
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return Outcome(version, skipped=f"the audit did not finish: {last[:300]}")
    worker = json.loads((run / "meta.json").read_text(encoding="utf-8")).get("workers", {}).get(target.framework, {})
    if worker.get("load_error"):
        return Outcome(version, skipped=f"{target.framework} did not import: {worker['load_error'][:300]}")
    table = pd.read_parquet(run / "conformance.parquet")
    rows = table[(table["impl"] == target.impl) & (table["dtype"] == target.dtype) & (table["check"] == target.check)
                 & (table["reduction"] == target.reduction) & (table["quantity"] == target.quantity)
                 & (table["mode"] == target.mode)]
    if rows.empty:
        return Outcome(version, skipped=f"no {target.check} row of {target.impl} {target.mode} {target.quantity} in "
                                        "this release")
    row = rows.iloc[0]
    if row["status"] not in WORKING_STATUSES:
        return Outcome(version, skipped=f"{row['status']}: {str(row['error_message'])[:300]}")

    def number(name: str) -> float | None:  # NaN stays NaN: what the framework returned
        value = row.get(name)
        return None if value is None else float(value)

    return Outcome(version, str(row["status"]), number("got"), number("expected"), number("max_ulp_error"))
