"""A finding as a bug report for a framework's tracker: its title, what happens against the exact value (with the
error in ULPs), a standalone reproducer, the versions, where else the finding holds and the known related
issues, in the layout of that tracker's issue template."""

from __future__ import annotations

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


# Each tracker's issue template: its headings in order, each with what goes under it. Fields: description,
# code (the reproducer), observed, versions, system.
_TEMPLATES: dict[str, tuple[tuple[str, str], ...]] = {
    "pytorch": (("### 🐛 Describe the bug", "{description}\n\n```python\n{code}```"),
                ("### Versions", "{versions}; {system}")),
    "tensorflow": (("### Issue type", "Bug"), ("### Have you reproduced the bug with TensorFlow Nightly?", "No"),
                   ("### Source", "binary"), ("### TensorFlow version", "{versions}"), ("### Custom code", "No"),
                   ("### OS platform and distribution", "{system}"), ("### Current behavior?", "{description}"),
                   ("### Standalone code to reproduce the issue", "```python\n{code}```"),
                   ("### Relevant log output", "```\n{observed}\n```")),
    "jax": (("### Description", "{description}\n\n```python\n{code}```"),
            ("### System info (python version, jaxlib version, accelerator, etc.)", "{versions}; {system}; CPU")),
    "keras": (("**Describe the bug**", "{description}"), ("**To Reproduce**", "```python\n{code}```"),
              ("**Expected behavior**", "The exact value, within a few ULPs: {observed}."),
              ("**System info**", "{versions}; {system}")),
    "numpy": (("### Describe the issue:", "{description}"),
              ("### Reproduce the code example:", "```python\n{code}```"),
              ("### Error message:", "```shell\n{observed}\n```"),
              ("### Python and NumPy Versions:", "{versions}; {system}")),
}
_TEMPLATES["optax"] = _TEMPLATES["jax"]
TRACKERS = tuple(_TEMPLATES)


def _render(tracker: str, facts: dict[str, str], finding: pd.Series, code: str) -> str:
    fields = {**facts, "description": _description(facts, finding), "code": code}
    return "".join(f"{heading}\n\n{body.format(**fields)}\n\n" for heading, body in _TEMPLATES[tracker])


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
    framework = str(finding["example_impl"]).split(".")[0]
    if tracker is None and framework not in _OF_FRAMEWORK:
        raise ReproError(f"finding {finding_id} is of {framework}, which has no upstream tracker here (your own "
                         "function, or a plugin's); give --tracker, or run `repro` for its script")
    name = tracker or _OF_FRAMEWORK[framework]
    if name not in TRACKERS:
        raise ReproError(f"unknown tracker {name!r}; trackers: {', '.join(TRACKERS)}")
    code = reproducer(run_dir, finding_id, _FRAMEWORK_OF[name])
    facts = _facts(finding, meta, name)
    return f"Title: {facts['title']}\n\n" + _render(name, facts, finding, code)
