"""A finding as a bug report for a framework's tracker: its title, what happens against the exact value (with the
error in ULPs), a standalone reproducer, the versions, where else the finding holds and the known related
issues, in the layout of that tracker's issue template."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from harness.findings.repro import ReproError, reproducer
from harness.findings.titles import number
from harness.store.folder import RunStore

__all__ = ["TRACKERS", "bug_report"]

# the tracker each framework's reports go to, and the distributions whose versions it asks for
_OF_FRAMEWORK = {"torch": "pytorch", "tensorflow": "tensorflow", "jax": "jax", "numpy": "numpy"}
_FRAMEWORK_OF = {"pytorch": "torch", "tensorflow": "tensorflow", "keras": "tensorflow", "jax": "jax",
                 "optax": "jax", "numpy": "numpy"}
_PACKAGES = {"pytorch": ("torch",), "tensorflow": ("tensorflow-cpu", "tensorflow", "keras"),
             "keras": ("keras", "tensorflow-cpu", "tensorflow", "jax", "torch"), "jax": ("jax", "jaxlib"),
             "optax": ("optax", "jax", "jaxlib"), "numpy": ("numpy",)}


def _facts(finding: pd.Series, meta: dict[str, Any], tracker: str) -> dict[str, str]:
    packages = meta.get("packages", {})
    versions = ", ".join(f"{name} {packages[name]}" for name in _PACKAGES[tracker] if name in packages)
    ulp = float(finding["ulp_error"])
    error = f" — {number(ulp)} ULP of {finding['example_dtype']}" if ulp == ulp and ulp != float("inf") else ""
    observed = (f"got {number(finding['got'], 17)}, exact {number(finding['expected'], 17)}{error}"
                if finding["minimal"] == "element" else f"see the reproducer (case {finding['example_case']})")
    scope = (f"{finding['rows']} results of the audit: implementations {', '.join(finding['impls'])}; dtypes "
             f"{', '.join(finding['dtypes'])}; reductions {', '.join(finding['reductions'])}; modes "
             f"{', '.join(finding['modes'])}; checks {', '.join(finding['checks'])}")
    known = "\n".join(f"- {url}" for url in finding["known_issues"]) or "- none found"
    cpu = (meta.get("cpu") or {}).get("model", "unknown CPU")
    return {"title": str(finding["title"]), "why": str(finding["why"] or "unknown"), "observed": observed,
            "scope": scope, "known": known, "versions": versions or "unknown",
            "system": f"Python {meta.get('python', '?')}, {meta.get('platform', '?')}, {cpu}"}


def _description(facts: dict[str, str], finding: pd.Series) -> str:
    return (f"{facts['title']}.\n\nObserved against the exact value (computed in arbitrary precision on the same "
            f"inputs as rounded to the dtype): {facts['observed']}.\n\nLikely cause: {facts['why']}.\n\n"
            f"Where else it holds: {facts['scope']}.\n\nRelated known issues:\n{facts['known']}\n\n"
            f"Found by bce-harness (finding {finding['finding_id']}).")


def _pytorch(facts: dict[str, str], finding: pd.Series, code: str) -> str:
    return (f"### 🐛 Describe the bug\n\n{_description(facts, finding)}\n\n```python\n{code}```\n\n"
            f"### Versions\n\n{facts['versions']}; {facts['system']}\n")


def _tensorflow(facts: dict[str, str], finding: pd.Series, code: str) -> str:
    return ("### Issue type\n\nBug\n\n### Have you reproduced the bug with TensorFlow Nightly?\n\nNo\n\n"
            f"### Source\n\nbinary\n\n### TensorFlow version\n\n{facts['versions']}\n\n### Custom code\n\nNo\n\n"
            f"### OS platform and distribution\n\n{facts['system']}\n\n### Current behavior?\n\n"
            f"{_description(facts, finding)}\n\n### Standalone code to reproduce the issue\n\n```python\n{code}```\n\n"
            f"### Relevant log output\n\n```\n{facts['observed']}\n```\n")


def _jax(facts: dict[str, str], finding: pd.Series, code: str) -> str:
    return (f"### Description\n\n{_description(facts, finding)}\n\n```python\n{code}```\n\n"
            f"### System info (python version, jaxlib version, accelerator, etc.)\n\n{facts['versions']}; "
            f"{facts['system']}; CPU\n")


def _keras(facts: dict[str, str], finding: pd.Series, code: str) -> str:
    return (f"**Describe the bug**\n\n{_description(facts, finding)}\n\n**To Reproduce**\n\n```python\n{code}```\n\n"
            f"**Expected behavior**\n\nThe exact value, within a few ULPs: {facts['observed']}.\n\n"
            f"**System info**\n\n{facts['versions']}; {facts['system']}\n")


def _numpy(facts: dict[str, str], finding: pd.Series, code: str) -> str:
    return (f"### Describe the issue:\n\n{_description(facts, finding)}\n\n### Reproduce the code example:\n\n"
            f"```python\n{code}```\n\n### Error message:\n\n```shell\n{facts['observed']}\n```\n\n"
            f"### Python and NumPy Versions:\n\n{facts['versions']}; {facts['system']}\n")


TRACKERS: dict[str, Callable[[dict[str, str], pd.Series, str], str]] = {
    "pytorch": _pytorch, "tensorflow": _tensorflow, "jax": _jax, "optax": _jax, "keras": _keras, "numpy": _numpy,
}


def bug_report(run_dir: str | Path, finding_id: str, tracker: str | None = None) -> str:
    """The finding `finding_id` of the run in `run_dir` as a report for `tracker` (default: the tracker of the
    framework of its minimal example)."""
    store = RunStore(run_dir)
    meta = store.read_meta()
    findings = store.findings()
    chosen = findings[findings["finding_id"] == finding_id]
    if chosen.empty:
        raise ReproError(f"no finding {finding_id!r} in {str(run_dir)!r}; finding ids are in findings.json and "
                         "report.md")
    finding = chosen.iloc[0]
    name = tracker or _OF_FRAMEWORK.get(str(finding["example_impl"]).split(".")[0], "pytorch")
    if name not in TRACKERS:
        raise ReproError(f"unknown tracker {name!r}; trackers: {', '.join(TRACKERS)}")
    code = reproducer(run_dir, finding_id, _FRAMEWORK_OF[name])
    facts = _facts(finding, meta, name)
    return f"Title: {facts['title']}\n\n" + TRACKERS[name](facts, finding, code)
