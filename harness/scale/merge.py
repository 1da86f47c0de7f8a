"""Merge run folders into one: the shards of a split matrix, runs from several machines, or the same audit under
several framework versions (the version matrix). Every row keeps the `run_id` of the run that produced it, and
`meta.json` lists the sources with their machine fingerprints. Nothing is recomputed but what no source could check
alone: an identity across two frameworks whose sides ran in different runs (Keras on JAX in one, Keras on
TensorFlow in another) is judged from their stored outputs (`outputs.jsonl`), its row the run's that holds its
implementation's side."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from cases import BadInput
from harness.conformance.across import across_rows
from harness.findings import record_findings
from harness.store.folder import RunFolderError, RunStore
from harness.store.schema import BENCH_JSON, CASES, CONFORMANCE, OUTPUTS, Shard
from implementations.registry import adapter_classes

__all__ = ["merge_runs"]


def _shard_of(meta: dict[str, Any]) -> Shard | None:
    """The shard an audit or a benchmark run was (None when it was the whole matrix)."""
    text = meta.get("shard") or (meta.get("bench") or {}).get("shard")
    try:
        return Shard.parse(str(text)) if text else None
    except BadInput:
        raise RunFolderError(f"run {meta.get('run_id')!r}: its meta.json has a corrupt shard {text!r}") from None


def _shards(metas: list[dict[str, Any]]) -> str | None:
    """"complete" when the sources are all n parts of one split (same cases), else what is missing or mixed."""
    shards = [_shard_of(m) for m in metas]
    if not any(shards):
        return None
    totals = {s.total for s in shards if s}
    if None in shards or len(totals) != 1:
        return "mixed: some sources are not parts of the same split"
    total = totals.pop()
    digests = {m.get("unsharded_case_digest") for m in metas if m.get("kind") == "audit"}
    if len(digests) > 1:
        return "mixed: the shards split different sets of cases"
    present = {s.number for s in shards if s}
    missing = [f"{i}/{total}" for i in range(1, total + 1) if i not in present]
    return "complete" if not missing else f"missing {', '.join(missing)}"


def _merge_cases(stores: Sequence[RunStore], target: RunStore) -> None:
    """The sources' cases, each once by name, into the merged folder's cases.json."""
    cases: dict[str, dict[str, Any]] = {}
    generated: dict[str, dict[str, Any]] = {}
    seeds = set()
    for store in stores:
        if (store.path / CASES).is_file():
            document = store.read_json(CASES, "")
            seeds.add(document.get("seed", 0))
            cases.update((entry["name"], entry) for entry in document.get("cases", []))
            generated.update((entry["name"], entry) for entry in document.get("generated", []))
    if cases or generated:
        (target.path / CASES).write_text(json.dumps({"seed": min(seeds), "cases": list(cases.values()),
                                                     "generated": list(generated.values())}) + "\n",
                                         encoding="utf-8")


def _with_identities_across(frame: pd.DataFrame, target: RunStore, records: list[dict[str, Any]],
                            sources: list[dict[str, Any]]) -> pd.DataFrame:
    """The rows plus those of the identities across frameworks (`backend`) that the sources' stored outputs
    allow and no source could check alone (one run audited Keras on TensorFlow, another Keras on JAX)."""
    if not target.has_cases():
        return frame
    relations = frame[frame["check"] == "relation"]
    checked = set(relations[["run_id", "impl", "case", "dtype", "device", "reduction", "relation"]]
                  .astype(str).itertuples(index=False, name=None))
    fingerprints = {str(s["run_id"]): str(s["fingerprint"]) for s in sources}
    rows = across_rows(list(target.read_cases().values()), adapter_classes(), records, checked, fingerprints)
    if not rows:
        return frame
    return pd.concat([frame, pd.DataFrame([row.record() for row in rows])], ignore_index=True)


def merge_runs(sources: Sequence[str | Path], out: str | Path, run_id: str, at_least: int = 2) -> Path:
    """Write the merged run folder `out` from the run folders `sources` (two or more; `at_least` 1 for a plan
    of which one job finished) and return its path."""
    stores = [RunStore(path) for path in sources]
    if len(stores) < at_least:
        raise RunFolderError("merge needs two or more run folders: python -m harness merge RUN RUN … --out RUN")
    metas = [store.read_meta() for store in stores]
    ids = [meta.get("run_id") for meta in metas]
    if len(set(ids)) != len(ids):
        raise RunFolderError(f"run {next(i for i in ids if ids.count(i) > 1)!r} is given twice; merge each run once")
    conformance = [store.conformance() for store in stores if store.has_conformance()]
    bench = [store.bench() for store in stores if store.has_bench()]
    if not conformance and not bench:
        raise RunFolderError("none of the runs has results (conformance.parquet or bench.parquet); nothing to merge")
    sources_meta = [{
        "run_id": meta.get("run_id"), "path": str(store.path), "kind": meta.get("kind"),
        "shard": str(_shard_of(meta) or "") or None, "fingerprint": meta.get("fingerprint"),
        "cpu": (meta.get("cpu") or {}).get("model"), "gpus": meta.get("gpus", []), "created": meta.get("created"),
        "complete": bool(meta.get("complete") or (meta.get("bench") or {}).get("complete")),
        "packages": meta.get("packages", {}),
    } for store, meta in zip(stores, metas, strict=True)]
    first = metas[0]
    shared = ("cpu", "gpus", "python", "platform", "packages", "flush_to_zero", "tolerance_policy", "conventions",
              "environment_variables")
    meta: dict[str, Any] = {key: first[key] for key in shared if key in first}
    meta.update(run_id=run_id, kind="merged", created=datetime.now(UTC).isoformat(timespec="seconds"),
                sources=sources_meta, fingerprints=sorted({str(s["fingerprint"]) for s in sources_meta}),
                shards=_shards(metas), callables=sorted({c for m in metas for c in m.get("callables") or []}))
    if len(meta["fingerprints"]) == 1:
        meta["fingerprint"] = meta["fingerprints"][0]
    target = RunStore.create(out, meta)
    _merge_cases(stores, target)
    if conformance:
        frame = pd.concat(conformance, ignore_index=True)
        records = [record for store in stores for record in store.journal_rows(OUTPUTS)]
        if records:
            target.append(records, OUTPUTS)
            frame = _with_identities_across(frame, target, records, sources_meta)
        frame.to_parquet(target.path / CONFORMANCE, index=False)
    if bench:
        documents = [store.bench_document() for store in stores if (store.path / BENCH_JSON).is_file()]
        merged = dict(documents[0]) if documents else {}
        merged["benchmarks"] = [entry for document in documents for entry in document.get("benchmarks", [])]
        target.write_bench(pd.concat(bench, ignore_index=True), merged)
    if conformance:  # findings over every merged row: a finding is never stale in one shard and present in another
        record_findings(target.path)
    target.update_meta(complete=all(s["complete"] for s in sources_meta))  # written last: the folder is whole
    return target.path
