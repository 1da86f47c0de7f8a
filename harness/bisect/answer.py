"""The bisection of one target: how each release is installed, the search run release by release, and the
answer as text and as JSON."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from harness.bisect.envs import EnvCache, Failed, Release
from harness.bisect.probe import Target, audit_release
from harness.bisect.releases import release_notes
from harness.bisect.search import Bisection, Outcome, bisect_releases
from harness.store.folder import json_value
from implementations import Adapter

__all__ = ["bisect_target", "describe", "plan_install", "write_json"]

Install = Callable[[str], "Release | Failed"]  # a release's environment (built on first use), or why it failed


def plan_install(adapter: type[Adapter], package: str | None, companions: Sequence[str],
                 envs: EnvCache) -> tuple[str, Install]:
    """The distribution bisected (`package`, else the framework's own) and how one release of it is installed:
    with the framework's companions that are installed here (jaxlib, optax), plus `companions`; where a
    companion is bisected (optax), the framework's own distribution as installed here (jax==0.10.2)."""
    distribution = package or adapter.distributions[0]
    installed = adapter.distribution_versions()
    here = [name for name in adapter.companions if name in installed]
    own = adapter.distributions[0]
    if distribution != own and own in installed:  # a companion bisected: the framework stays as it is here
        here.insert(0, f"{own}=={installed[own]}")
    chosen = [name for name in dict.fromkeys([*here, *companions]) if name != distribution]
    return distribution, lambda version: envs.release(distribution, version, chosen, adapter.pip_spellings)


def bisect_target(target: Target, releases: Sequence[str], distribution: str, install: Install,
                  audit: Callable[[Release, str, Target], Outcome] = audit_release,
                  progress: Callable[[str], None] | None = None, pages: Mapping[str, str] | None = None
                  ) -> Bisection:
    """Bisect `releases` (oldest first) of `distribution` for the first whose result for `target` differs from
    the oldest's. A release that fails to install, import or run is skipped (and listed), never the change;
    `pages`: where each distribution's release notes are (the adapter's `release_pages`)."""

    def probe(version: str) -> Outcome:
        if progress is not None:
            progress(f"{distribution} {version}: installing")
        release = install(version)
        if isinstance(release, Failed):
            outcome = Outcome(version, skipped=release.why)
        else:
            if progress is not None:
                progress(f"{distribution} {version}: auditing {target.impl} {target.dtype} on {target.case.name}")
            outcome = replace(audit(release, version, target), versions=release.versions,
                              environment=release.how)
        outcome = replace(outcome, release_notes=release_notes(pages or {}, distribution, version))
        if progress is not None:
            progress(outcome.describe())
        return outcome

    return bisect_releases(releases, probe)


def _companions_moved(old: Outcome, new: Outcome, distribution: str) -> str:
    """The other distributions whose versions differ between two releases' environments, less those released
    in lockstep with the bisected one (jaxlib with jax): "" where none do."""
    names = [n for n in dict.fromkeys([*old.versions, *new.versions]) if n != distribution]
    lockstep = {n for n in names if (old.versions.get(n), new.versions.get(n)) == (old.version, new.version)}
    return ", ".join(f"{n} {old.versions.get(n, '-')} → {new.versions.get(n, '-')}" for n in names
                     if old.versions.get(n) != new.versions.get(n) and n not in lockstep)


def describe(found: Bisection, target: Target, distribution: str) -> str:
    """The answer in a few lines: the neighbouring releases, both results, their release notes; what was skipped."""
    lines = [f"bisect {distribution} over {len(found.releases)} releases ({found.releases[0]} … "
             f"{found.releases[-1]}) for {target.impl} {target.dtype} {target.reduction} {target.quantity} "
             f"{target.mode} on {target.case.name} ({target.origin}): {found.audits} audits (at most "
             f"{found.budget()})"]
    if found.first_changed is not None and found.last_same is not None:
        lines.append(f"changed between {distribution} {found.last_same.version} and {found.first_changed.version}")
        for outcome in (found.last_same, found.first_changed):
            lines.append(f"  {outcome.describe()}  {outcome.release_notes}")
        if found.between:
            lines.append(f"  (skipped between them, where the change may be: {', '.join(found.between)})")
        moved = _companions_moved(found.last_same, found.first_changed, distribution)
        if moved:
            lines.append(f"  their companions differ too ({moved}): the change may be theirs; bisect one with "
                         "--package")
    elif found.last_same is not None and len(found.audited) - len(found.skipped) < 2:
        lines.append(f"only {found.last_same.version} could be audited: {found.last_same.describe()}")
    elif found.last_same is not None:
        lines.append(f"no change: every release audited gives {found.last_same.status} "
                     f"({found.last_same.ulp!r} ULP)")
    else:
        lines.append("no release could be audited")
    lines += [f"skipped {outcome.describe()}" for outcome in found.skipped]
    return "\n".join(lines)


def write_json(found: Bisection, target: Target, distribution: str, path: Path) -> Path:
    """The answer as JSON (the same as `describe`, with every release audited)."""
    document: dict[str, Any] = {"distribution": distribution, "target": {
        "impl": target.impl, "dtype": target.dtype, "reduction": target.reduction, "quantity": target.quantity,
        "mode": target.mode, "case": target.case.name, "origin": target.origin}, **found.as_dict()}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(json_value(document), indent=1, allow_nan=False) + "\n", encoding="utf-8")
    return path
