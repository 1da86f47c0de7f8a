"""Hand-made run folders for the report tests: written through the store and its schema, as an audit writes
them, with rows whose numbers the tests know."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd

from harness.store.folder import RunStore
from harness.store.schema import ConformanceRow
from harness.verdict.tolerance import POLICY

ROWS = [  # impl, case, family, dtype, status, max_ulp_error, deviation
    ("torch.logits", "seed_logits", "seed", "float32", "pass", 0.5, ""),
    ("torch.logits", "large_logits", "large", "float32", "fail", 1.5e7, ""),
    ("torch.probs", "prob_edges_float32", "prob_edges", "float32", "deviation", 3.0e6, "torch-bce-log-clamp"),
    ("numpy.logits", "seed_logits", "seed", "float32", "pass", 0.25, ""),
    ("numpy.logits", "<script>alert('x')</script>", "user", "float64", "nonfinite", math.inf, ""),
]


def rows(run_id: str = "run-a", version: str = "2.13.0") -> list[dict[str, Any]]:
    out = []
    for impl, case, family, dtype, status, ulp, deviation in ROWS:
        row = ConformanceRow(run_id=run_id, framework=impl.split(".")[0], framework_version=version, impl=impl,
                             api=f"{impl}(x, y)", input_form="logits", device="cpu", dtype=dtype, case=case,
                             family=family, reduction="none", quantity="loss", n=4, status=status,
                             deviation=deviation, max_ulp_error=ulp, worst_index="[1]", worst_x=-30.0, worst_y=0.0,
                             got=0.0 if status == "fail" else math.nan, expected=9.357622968839737e-14)
        out.append(row.with_id().record())
    return out


def audit_folder(path: Path, run_id: str = "run-a", version: str = "2.13.0", **meta: Any) -> Path:
    store = RunStore.create(path, {"run_id": run_id, "kind": "audit", "created": "2026-12-01T10:00:00+00:00",
                                   "dtypes": ["float32", "float64"], "devices": ["cpu"], "case_count": 5,
                                   "tolerance_policy": POLICY, "fingerprint": "f1", **meta})
    pd.DataFrame(rows(run_id, version)).to_parquet(store.path / "conformance.parquet", index=False)
    store.update_meta(complete=True)
    return store.path
