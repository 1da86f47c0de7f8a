"""Which releases a bisection visits: the package index's versions of a distribution in a range, oldest first,
and where each release's notes are (the adapters' `release_pages`)."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Mapping, Sequence

from packaging.version import InvalidVersion, Version

from cases import BadInput

__all__ = ["ReleaseError", "index_versions", "is_range", "release_notes", "select_releases"]

class ReleaseError(BadInput):
    """A range of releases that cannot be read or holds too few releases; the message says how to fix it."""


def release_notes(pages: Mapping[str, str], distribution: str, version: str) -> str:
    """The release's notes page from an adapter's `release_pages` ("" where it names none)."""
    template = pages.get(distribution, "")
    parsed = Version(version)
    return template.format(version=version, minor=f"{parsed.major}.{parsed.minor}") if template else ""


def index_versions(distribution: str, python: str = sys.executable) -> list[str]:
    """Every version the package index offers for `distribution` (pip's own index settings), oldest first."""
    try:
        done = subprocess.run([python, "-m", "pip", "index", "versions", distribution,
                               "--disable-pip-version-check"], capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired:
        raise ReleaseError(f"the package index did not answer within 120 s for {distribution!r}; give --versions "
                           "as a list (V1,V2,…)") from None
    if "No module named pip" in done.stderr:
        raise ReleaseError(f"{python} has no pip to ask the package index; give --versions as a list (V1,V2,…)")
    match = re.search(r"Available versions:\s*(.+)", done.stdout)
    if done.returncode != 0 or not match:
        why = (done.stderr.strip().splitlines() or ["no versions listed"])[-1]
        raise ReleaseError(f"the package index lists no releases of {distribution!r} ({why}); check the name, or "
                           "give --versions as a list")
    return sorted((v.strip() for v in match.group(1).split(",")), key=Version)


def _version(text: str, what: str) -> Version:
    try:
        return Version(text)
    except InvalidVersion:
        raise ReleaseError(f"{what} {text!r} is not a version; write --versions OLD..NEW or V1,V2,V3") from None


def is_range(spec: str) -> bool:
    """Whether `spec` is OLD..NEW (its ends checked: both versions, the first older), not a list."""
    if ".." not in spec:
        return False
    old, _, new = spec.partition("..")
    if _version(old.strip(), "release") >= _version(new.strip(), "release"):
        raise ReleaseError(f"--versions {spec}: the first release must be older than the last")
    return True


def select_releases(spec: str, available: Sequence[str]) -> list[str]:
    """The releases `spec` names, oldest first: `OLD..NEW` (every final release between them, both included, of
    `available`) or a comma-separated list (as given, sorted). Pre-releases join only when named."""
    if ".." in spec:
        old, _, new = spec.partition("..")
        low, high = _version(old.strip(), "release"), _version(new.strip(), "release")
        if low >= high:
            raise ReleaseError(f"--versions {spec}: the first release must be older than the last")
        chosen = [v for v in available if low <= Version(v) <= high and (not Version(v).is_prerelease
                                                                       or Version(v) in (low, high))]
        for end, name in ((low, old.strip()), (high, new.strip())):
            if all(Version(v) != end for v in available):
                raise ReleaseError(f"--versions {spec}: {name} is not a release on the package index")
    else:
        chosen = [v.strip() for v in spec.split(",") if v.strip()]
        for version in chosen:
            _version(version, "release")
    chosen = sorted(set(chosen), key=Version)
    if len(chosen) < 2:
        raise ReleaseError(f"--versions {spec}: a bisection needs two releases or more")
    return chosen
