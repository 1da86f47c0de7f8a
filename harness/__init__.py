"""bce-harness: compare every framework's binary cross-entropy with the exact value, and time it.

Importing this package imports no framework: each one is loaded in its own worker process.
"""

from harness.api import UsageError, audit, bench
from harness.store.schema import CONFORMANCE_COLUMNS, row_id
from harness.verdict.oracle import ORACLE_VERSION, Reference, reference
from harness.verdict.tolerance import POLICY
from harness.verdict.ulp import Judgement, judge

__all__ = [
    "CONFORMANCE_COLUMNS",
    "ORACLE_VERSION",
    "POLICY",
    "Judgement",
    "Reference",
    "UsageError",
    "audit",
    "bench",
    "judge",
    "reference",
    "row_id",
]
