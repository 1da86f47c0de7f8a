"""The tolerance policy: one place, with its reasons. The report prints `POLICY`.

- `pass`: forward error ≤ 4 ULP of the dtype at the exact value (below the smallest normal: in units of the
  smallest subnormal). Vendor math libraries document 1–4 ulp for exp, log and log1p, and a BCE element
  chains two or three of them, so a few ULP is what a careful implementation delivers. A reduction over n
  elements gets 4 + log2(n) ULP: a recursive sum's error bound grows with the number of terms, a pairwise one
  with log2(n), and the latter is what every framework here uses.
- `inexact`: beyond that, but within what rounding the inputs to the dtype could explain,
  4 × Σ_v |∂f/∂v|·½ulp(v) over the inputs v (x, y, weight, pos_weight). A backward-stable algorithm may land
  anywhere in that band: the gradient σ(x) − y near its zero crossing, the loss at soft y and large |x|.
  Shown, not an alarm. Infinite sensitivities are left out (they would license any answer), and a logit or a
  soft label that is exact in every dtype still counts as rounded, as a backward-stable algorithm may treat it
  so. Labels, weights and pos_weight of exactly 0 or 1 are exact by meaning (a hard label, no weight): rounding
  to a dtype never changes them, so they add no slack of their own (the logit's still counts). Without
  this rule the label's half-ULP, times |∂l/∂y| ≈ |x|, would excuse torch's float64 gradient of 0.0 at x = 40,
  y = 1 (exact −4.25e-18) as `inexact`.
- `fail`: beyond both. A float32 loss of 0.0 where the exact value is 3.06e-07 (x = −15, y = 0) is 2^23 ULP
  off while the band is ~1e-12: a real loss of precision, even though the absolute error is tiny.
- `nonfinite`: NaN or ±inf where the exact value is finite, or the reverse, or the wrong infinity. An exact
  value that rounds past the largest finite number counts as infinite, and vice versa.
A row takes the worst element's status (nonfinite > fail > inexact > pass).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

__all__ = ["ALARMS", "BAND_FACTOR", "ELEMENT_STATUSES", "NOT_FINDINGS", "PASS_ULP", "POLICY", "SEVERITY", "STATUSES",
           "pass_ulp", "worst_status"]

PASS_ULP = 4.0
BAND_FACTOR = 4.0
ELEMENT_STATUSES = ("pass", "inexact", "deviation", "fail", "nonfinite")  # in order of severity
# every status a row can have: the element statuses, then what a framework or its worker did instead
STATUSES = (*ELEMENT_STATUSES, "error", "rejected", "unsupported", "unavailable", "crashed", "timeout")
NOT_FINDINGS = frozenset({"pass", "unsupported", "unavailable"})  # rows with nothing to report or reproduce
ALARMS = ("nonfinite", "fail", "error", "crashed", "timeout")  # worst first; deviation, inexact, rejected are not
# worst first: what a summary of several rows (a matrix cell, a bench row's accuracy) shows
SEVERITY = ("nonfinite", "fail", "error", "crashed", "timeout", "deviation", "inexact", "rejected", "pass",
            "unsupported", "unavailable")


def worst_status(statuses: Iterable[str]) -> str:
    """The most severe of `statuses` by SEVERITY ("" when there are none)."""
    present = set(statuses)
    return next((status for status in SEVERITY if status in present), "")


def pass_ulp(reduced_over: int | None) -> float:
    """ULP allowed for `pass`: 4 per element, 4 + log2(n) for a reduction over n elements."""
    if reduced_over is None or reduced_over <= 1:
        return PASS_ULP
    return PASS_ULP + math.log2(reduced_over)


POLICY = {
    "pass": f"forward error ≤ {PASS_ULP:g} ULP of the dtype at the exact value (reductions over n elements: "
            f"≤ {PASS_ULP:g} + log2(n) ULP)",
    "inexact": f"beyond pass, but within {BAND_FACTOR:g} × Σ_v |∂f/∂v|·½ulp(v) over the inputs v (x, y, weight, "
               "pos_weight): what rounding the inputs to the dtype could explain (labels, weights and pos_weight of "
               "exactly 0 or 1 are exact by meaning and carry none)",
    "fail": "beyond both",
    "nonfinite": "NaN or ±inf where the exact value (rounded to the dtype) is finite, the reverse, or the wrong "
                 "infinity",
    "deviation": "beyond pass, but matches the value a documented convention of the framework predicts "
                 "(the convention is named in the row, with its reason and link in meta.json)",
    "error": "raised on an input inside the domain",
    "rejected": "raised on an input outside the domain (mismatched shapes, NaN, labels or probabilities "
                "outside [0, 1]): the right answer",
    "unsupported": "the framework cannot do this dtype, device or option",
    "unavailable": "the framework is not installed",
    "crashed": "the worker process died (signal or exit code given)",
    "timeout": "the worker stopped answering within the time limit",
}
