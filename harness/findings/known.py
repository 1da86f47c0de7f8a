"""Known upstream issues: `implementations/known_issues.toml` links findings to the trackers' own reports.

Each `[[issue]]` has the tracker `url`, its `state` (open, closed, fixed), a `reason` (why this report is this
finding: its trigger lies in the finding's region) and a `match` table on the finding's fields: `kind`,
`family` (loss, gradient, call), `region` and `failure` (shell-style patterns), and `impls`, `frameworks`,
`dtypes` (lists of patterns; one of the finding's values must match one of them). A finding that matches an entry
lists its URL; a finding that matches none is new; an entry that matches no finding of a run that ran its
implementations, frameworks and dtypes is reported as stale (the framework fixed it, or the entry is wrong).
"""

from __future__ import annotations

import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from importlib import resources
from typing import Any

import pandas as pd

__all__ = ["MATCH_FIELDS", "KnownIssue", "link_known_issues", "load_known_issues"]

MATCH_FIELDS = ("kind", "family", "region", "failure", "impls", "frameworks", "dtypes")
_LIST_FIELDS = ("impls", "frameworks", "dtypes")


@dataclass(frozen=True, slots=True)
class KnownIssue:
    url: str
    state: str
    reason: str
    match: tuple[tuple[str, Any], ...]

    def matches(self, finding: Any) -> bool:
        """Whether a finding (a row of the findings table) is this issue's problem."""
        for field, pattern in self.match:
            values = getattr(finding, field)
            if field in _LIST_FIELDS:
                if not any(fnmatchcase(str(v), p) for v in values for p in pattern):
                    return False
            elif not fnmatchcase(str(values), pattern):
                return False
        return True

    def could_apply(self, ran: set[tuple[str, str]]) -> bool:
        """Whether a run of these (implementation, dtype) pairs could have shown the issue: one of them matches
        the entry's `impls`, `frameworks` and `dtypes` (where it names them)."""
        wanted = dict(self.match)

        def fits(field: str, value: str) -> bool:
            return field not in wanted or any(fnmatchcase(value, p) for p in wanted[field])

        return any(fits("impls", impl) and fits("frameworks", impl.split(".")[0]) and fits("dtypes", dtype)
                   for impl, dtype in ran)


def load_known_issues(text: str | None = None) -> list[KnownIssue]:
    """Parse the known-issues file (or `text`); a malformed entry raises ValueError naming it."""
    if text is None:
        text = resources.files("implementations").joinpath("known_issues.toml").read_text(encoding="utf-8")
    out = []
    for index, entry in enumerate(tomllib.loads(text).get("issue", []), 1):
        missing = [key for key in ("url", "state", "reason", "match") if key not in entry]
        if missing:
            raise ValueError(f"known issues file: entry #{index} lacks {missing[0]!r}")
        match = entry["match"]
        unknown = sorted(set(match) - set(MATCH_FIELDS))
        if unknown or not match:
            raise ValueError(f"known issues file: {entry['url']}: match on {', '.join(MATCH_FIELDS)} "
                             f"({'unknown field ' + repr(unknown[0]) if unknown else 'no field given'})")
        fields = tuple((k, tuple(v) if k in _LIST_FIELDS else str(v)) for k, v in sorted(match.items()))
        out.append(KnownIssue(str(entry["url"]), str(entry["state"]), str(entry["reason"]), fields))
    return out


def link_known_issues(findings: pd.DataFrame, known: Sequence[KnownIssue],
                      ran: set[tuple[str, str]]) -> tuple[list[list[str]], list[str]]:
    """Per finding, the URLs of the known issues it matches; and the stale entries' URLs (entries that could
    apply to the (implementation, dtype) pairs that `ran` and match no finding)."""
    links: list[list[str]] = [[] for _ in range(len(findings))]
    used: set[str] = set()
    for position, finding in enumerate(findings.itertuples(index=False)):
        for issue in known:
            if issue.matches(finding):
                links[position].append(issue.url)
                used.add(issue.url)
    stale = [issue.url for issue in known if issue.url not in used and issue.could_apply(ran)]
    return links, stale
