"""bce-harness: compare every framework's binary cross-entropy with the exact value, and time it.

Importing this package imports no framework: each one is loaded in its own worker process. Its names load on
first use, so that a worker process, which imports a module of the package, does not import the API's pandas.
`harness.findings(RUN_DIR)` is the findings room itself, callable: it returns a run's findings.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from harness import findings
    from harness.api import UsageError, audit, bench, check_loss, fuzz
    from harness.store.schema import CONFORMANCE_COLUMNS, row_id
    from harness.verdict.oracle import ORACLE_VERSION, Reference, reference
    from harness.verdict.tolerance import POLICY
    from harness.verdict.ulp import Judgement, judge

_WHERE = {
    "UsageError": "harness.api", "audit": "harness.api", "bench": "harness.api", "fuzz": "harness.api",
    "check_loss": "harness.api",
    "CONFORMANCE_COLUMNS": "harness.store.schema", "row_id": "harness.store.schema",
    "ORACLE_VERSION": "harness.verdict.oracle", "Reference": "harness.verdict.oracle",
    "reference": "harness.verdict.oracle", "POLICY": "harness.verdict.tolerance",
    "Judgement": "harness.verdict.ulp", "judge": "harness.verdict.ulp",
}

__all__ = [
    "CONFORMANCE_COLUMNS",
    "ORACLE_VERSION",
    "POLICY",
    "Judgement",
    "Reference",
    "UsageError",
    "audit",
    "bench",
    "check_loss",
    "findings",
    "fuzz",
    "judge",
    "reference",
    "row_id",
]


def __getattr__(name: str) -> Any:
    if name == "findings":  # the room, which is callable (harness/findings/__init__.py)
        return importlib.import_module("harness.findings")
    if name not in _WHERE:
        raise AttributeError(f"module 'harness' has no attribute {name!r}")
    return getattr(importlib.import_module(_WHERE[name]), name)
