"""The verdict, pure: arrays in, verdicts out. The exact reference (`oracle`), the error in ULPs and the status of
one result (`ulp`), the tolerance policy with its reasons (`tolerance`), BCE's domain (`domain`) and the documented
conventions that predict a framework's deviations (`conventions`)."""

from harness.verdict.oracle import ORACLE_VERSION, Reference, reference
from harness.verdict.tolerance import POLICY, STATUSES
from harness.verdict.ulp import Judgement, judge

__all__ = ["ORACLE_VERSION", "POLICY", "STATUSES", "Judgement", "Reference", "judge", "reference"]
