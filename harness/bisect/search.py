"""The search: which release first gives another result than the oldest, in as few audits as a binary search
allows, stepping over releases that cannot be audited (git bisect's `skip`, never taken as the change)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["WORKING_STATUSES", "Bisection", "Outcome", "bisect_releases"]

# the statuses of a result: a change between two of these is what a bisection looks for; any other status (the
# framework did not import, the case could not run) makes the release one to skip
WORKING_STATUSES = ("pass", "inexact", "fail", "nonfinite", "deviation")


@dataclass(frozen=True)
class Outcome:
    """What one release gave for the row bisected: its status, value, exact value and ULP error; or `skipped`,
    why it could not be audited (an install or import that failed, a case that could not run)."""

    version: str
    status: str = ""
    got: float | None = None
    exact: float | None = None
    ulp: float | None = None
    skipped: str = ""
    seconds: float = 0.0
    release_notes: str = ""
    versions: dict[str, str] = field(default_factory=dict)  # what its environment resolved (companions too)
    environment: str = ""  # under which constraints pip resolved it

    @property
    def result(self) -> tuple[str, float | None]:
        """What two releases are compared on: the status and the ULP error (NaN read as None, so it equals
        itself)."""
        ulp = None if self.ulp is None or math.isnan(self.ulp) else self.ulp
        return self.status, ulp

    def describe(self) -> str:
        if self.skipped:
            return f"{self.version}: skipped ({self.skipped})"
        with_ = ", ".join(f"{name} {version}" for name, version in self.versions.items())
        return (f"{self.version}: {self.status}, got {self.got!r} where the exact value is {self.exact!r} "
                f"({self.ulp!r} ULP)" + (f" [{with_}]" if with_ else ""))


@dataclass
class Bisection:
    """The bisection's answer: the last release with the oldest's result and the first with another (None where
    the ends agree or no release could be audited), every release audited in order, and those skipped."""

    releases: list[str]
    audited: list[Outcome] = field(default_factory=list)
    last_same: Outcome | None = None
    first_changed: Outcome | None = None
    between: list[str] = field(default_factory=list)  # skipped releases between the two: the change may be there

    @property
    def skipped(self) -> list[Outcome]:
        return [outcome for outcome in self.audited if outcome.skipped]

    @property
    def audits(self) -> int:
        return len(self.audited)

    def budget(self) -> int:
        """The most audits the search may take: ⌈log2 n⌉ + 2 (both ends), plus one per skipped release."""
        return math.ceil(math.log2(max(len(self.releases), 1))) + 2 + len(self.skipped)

    def as_dict(self) -> dict[str, Any]:
        return {"releases": self.releases, "audits": self.audits, "budget": self.budget(),
                "last_same": self.last_same and asdict(self.last_same),
                "first_changed": self.first_changed and asdict(self.first_changed),
                "between_skipped": self.between, "skipped": [asdict(o) for o in self.skipped],
                "audited": [asdict(o) for o in self.audited]}


Probe = Callable[[str], Outcome]


def _first_working(indices: Sequence[int], releases: Sequence[str], probe: Probe, found: Bisection,
                   tried: dict[int, Outcome]) -> int | None:
    for index in indices:
        outcome = tried.setdefault(index, probe(releases[index]))
        found.audited.append(outcome)
        if not outcome.skipped:
            return index
    return None


def bisect_releases(releases: Sequence[str], probe: Probe) -> Bisection:
    """Audit the oldest and the newest release (the nearest that can be audited, where an end is skipped),
    then halve the releases between the last with the oldest's result and the first without it until they are
    neighbours (or only skipped releases lie between them). `releases` are in ascending order; `probe` audits
    one."""
    found, tried = Bisection(list(releases)), dict[int, Outcome]()
    lo = _first_working(range(len(releases)), releases, probe, found, tried)
    if lo is None:
        return found
    hi = _first_working(range(len(releases) - 1, lo, -1), releases, probe, found, tried)
    if hi is None or tried[lo].result == tried[hi].result:
        found.last_same = tried[hi if hi is not None else lo]
        return found
    while True:
        middle = (lo + hi) / 2
        untried = sorted((i for i in range(lo + 1, hi) if i not in tried), key=lambda i: (abs(i - middle), i))
        if not untried:
            break
        index = untried[0]
        outcome = tried[index] = probe(releases[index])
        found.audited.append(outcome)
        if outcome.skipped:
            continue
        if outcome.result == tried[lo].result:
            lo = index
        else:
            hi = index
    found.last_same, found.first_changed = tried[lo], tried[hi]
    found.between = [releases[i] for i in range(lo + 1, hi)]
    return found
