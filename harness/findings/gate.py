"""The audit as a CI gate: `--fail-on fail,nonfinite` fails the run (exit 1) on a row with one of those statuses
that the expected-findings file does not list.

The expected-findings file is TOML, one `[[finding]]` table per known finding, each with a `reason` and any of
the finding's fields (`finding_id`, `kind`, `finding_family`, `region`, `failure`) or the row's fields to match
(shell-style patterns: `*`, `?`, `[...]`); a row is listed when it matches the row fields and belongs to a
finding that matches the finding fields:

    [[finding]]
    finding_id = "c61df1021c46"
    reason = "torch's cancellation at x << 0, y = 0: pytorch/pytorch#195529"

or, by the row's fields as before:

    [[finding]]
    impl = "torch.logits"
    case = "large_logits"
    dtype = "float*"
    status = "fail"
    reason = "log(e^-m + e^(-x-m)) without log1p loses the tiny loss at x = -30; pytorch/pytorch#..."

An entry that matches no gated row is stale (the finding went away, or the entry is wrong) and is reported.
"""

from __future__ import annotations

import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path

import pandas as pd

from cases import BadInput
from harness.verdict.tolerance import STATUSES

__all__ = [
    "FINDING_FIELDS",
    "MATCH_FIELDS", "Expected", "ExpectedFileError", "GateResult", "apply_gate", "load_expected", "parse_fail_on",
]

MATCH_FIELDS = ("impl", "case", "family", "dtype", "device", "reduction", "quantity", "check", "mode", "status")
FINDING_FIELDS = ("finding_id", "kind", "region", "failure", "finding_family")  # finding_family: loss, gradient, call


class ExpectedFileError(BadInput):
    """A malformed expected-findings file; the message names the entry and the field."""


@dataclass(frozen=True, slots=True)
class Expected:
    """One known finding: field → pattern, and why it is expected."""

    index: int
    patterns: tuple[tuple[str, str], ...]
    reason: str

    def matches(self, rows: pd.DataFrame, findings: pd.DataFrame | None = None) -> pd.Series:
        """Which `rows` this entry lists (entries with finding fields: only rows of a matching finding)."""
        hit = pd.Series(True, index=rows.index)
        for field, pattern in self.patterns:
            if field not in FINDING_FIELDS:
                hit &= rows[field].astype(str).map(lambda value, p=pattern: fnmatchcase(value, p))
        wanted = [(f, p) for f, p in self.patterns if f in FINDING_FIELDS]
        if wanted:
            members: set[str] = set()
            if findings is not None and len(findings):
                chosen = pd.Series(True, index=findings.index)
                for field, pattern in wanted:
                    column = "family" if field == "finding_family" else field
                    chosen &= findings[column].astype(str).map(lambda value, p=pattern: fnmatchcase(value, p))
                members = {row for ids in findings.loc[chosen, "row_ids"] for row in ids}
            hit &= rows["row_id"].isin(members)
        return hit

    def describe(self) -> str:
        return ", ".join(f"{field}={pattern}" for field, pattern in self.patterns)


@dataclass(frozen=True)
class GateResult:
    fail_on: tuple[str, ...]
    gated: int  # rows with a status in fail_on
    unexpected: pd.DataFrame  # those that no entry lists
    stale: list[Expected]

    @property
    def failed(self) -> bool:
        return not self.unexpected.empty


def load_expected(path: str | Path) -> list[Expected]:
    file = Path(path)
    try:
        document = tomllib.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ExpectedFileError(f"expected-findings file {str(file)!r} does not exist; pass an existing file to "
                                "--expected") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ExpectedFileError(f"expected-findings file {str(file)!r} is not valid TOML ({exc}); fix it") from None
    unknown = set(document) - {"finding"}
    if unknown:
        raise ExpectedFileError(f"{str(file)!r}: unknown table {sorted(unknown)[0]!r}; entries are [[finding]] tables")
    entries = document.get("finding", [])
    if not isinstance(entries, list):
        raise ExpectedFileError(f"{str(file)!r}: 'finding' must be a list of [[finding]] tables")
    found = []
    for index, entry in enumerate(entries, 1):
        where = f"{str(file)!r}, finding {index}"
        reason = entry.get("reason")
        if not isinstance(reason, str) or not reason.strip():
            raise ExpectedFileError(f"{where}: missing field 'reason' (say why the finding is expected)")
        fields = {k: v for k, v in entry.items() if k != "reason"}
        for field, value in fields.items():
            if field not in MATCH_FIELDS + FINDING_FIELDS:
                raise ExpectedFileError(f"{where}: unknown field {field!r}; fields: "
                                        f"{', '.join(MATCH_FIELDS + FINDING_FIELDS)}, reason")
            if not isinstance(value, str):
                raise ExpectedFileError(f"{where}: field {field!r} must be a string pattern, not {value!r}")
        if not fields:
            raise ExpectedFileError(f"{where}: give at least one field to match (e.g. impl = \"torch.logits\")")
        found.append(Expected(index, tuple(sorted(fields.items())), reason.strip()))
    return found


def parse_fail_on(statuses: Sequence[str]) -> tuple[str, ...]:
    chosen = tuple(dict.fromkeys(s.strip() for s in statuses if s.strip()))
    for status in chosen:
        if status not in STATUSES:
            raise ExpectedFileError(f"--fail-on: unknown status {status!r}; statuses: {', '.join(STATUSES)}")
    if not chosen:
        raise ExpectedFileError(f"--fail-on: no status given; statuses: {', '.join(STATUSES)}")
    return chosen


def apply_gate(conformance: pd.DataFrame, fail_on: Sequence[str], expected: Sequence[Expected],
               findings: pd.DataFrame | None = None) -> GateResult:
    """Which rows with a status in `fail_on` no entry of `expected` lists (by the rows' fields, or the fields of
    the `findings` they belong to), and which entries match nothing."""
    gated = conformance[conformance["status"].isin(fail_on)]
    listed = pd.Series(False, index=gated.index)
    stale = []
    for entry in expected:
        hit = entry.matches(gated, findings) if not gated.empty else pd.Series(dtype=bool)
        if not hit.any():
            stale.append(entry)
        listed |= hit.reindex(listed.index, fill_value=False)
    return GateResult(tuple(fail_on), len(gated), gated[~listed], stale)
