"""bce-harness: compare every framework's binary cross-entropy with the exact value, and time it.

Importing this package imports no framework: each one is loaded in its own worker process.
"""

from harness.api import UsageError, audit, bench
from harness.compare import Judgement, judge
from harness.oracle import ORACLE_VERSION, Reference, reference
from harness.runner import CONFORMANCE_COLUMNS, row_id
from harness.tolerance import POLICY

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
