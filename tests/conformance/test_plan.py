"""The matrix: which implementation runs which case, in which dtype, reduction, mode and check."""

from __future__ import annotations

from collections import Counter

from cases import builtin_cases
from harness.conformance.plan import Scope, batch_eligible, jobs_for, shard_cases
from harness.store.schema import Shard
from implementations import adapter_classes

SEED = builtin_cases(families=["seed"])


def test_every_implementation_of_the_form_runs_every_reduction_eagerly_and_compiled_on_path_cases() -> None:
    jobs = list(jobs_for(adapter_classes()["torch"], SEED, ["float64", "float32"], ["cpu"], Scope.default()))
    eager = [job for job in jobs if job.mode == "eager" and job.check == "reference"]
    # torch: 2 logits implementations on seed_logits, 1 probs on seed_probs, in 2 dtypes
    assert len(eager) == 3 * 2 and all(job.reductions == ("none", "mean", "sum") for job in eager)
    compiled = [job for job in jobs if job.mode != "eager"]
    assert {(job.mode, job.dtype, job.reductions) for job in compiled} == {("torch.compile", "float32", ("mean",))}
    assert len(compiled) == 3
    assert jobs.index(compiled[0]) > max(jobs.index(job) for job in eager)  # eager first: compared with
    full = list(jobs_for(adapter_classes()["torch"], SEED, ["float32"], ["cpu"], Scope.everything()))
    assert Counter(job.reductions for job in full if job.mode != "eager") == {("none", "mean", "sum"): 3}


def test_the_batch_check_needs_elements_that_stand_alone() -> None:
    cases = builtin_cases(families=["logit_thresholds", "prob_edges", "large", "weights"])
    eligible = {case.family for case in cases if batch_eligible(case)}
    assert eligible == {"logit_thresholds", "prob_edges"}  # tagged "batch": one per dtype each
    weighted = next(case for case in cases if case.weight is not None)
    assert not batch_eligible(type(weighted)(**{**{f: getattr(weighted, f) for f in ("name", "family", "input_form",
                                                 "x", "y", "weight")}, "tags": ("batch",)}))


def test_shards_partition_the_cases_deterministically() -> None:
    cases = builtin_cases(families=["seed", "random", "large", "labels"])
    parts = [shard_cases(cases, Shard(i, 3)) for i in (1, 2, 3)]
    names = [case.name for part in parts for case in part]
    assert sorted(names) == sorted(case.name for case in cases) and len(set(names)) == len(names)
    assert [case.name for case in shard_cases(cases, Shard(2, 3))] == [case.name for case in parts[1]]
    assert shard_cases(cases, None) == cases
    sizes = [sum(c.size for c in part) for part in parts]
    assert max(sizes) - min(sizes) <= max(c.size for c in cases)  # dealt largest first: even within one case


def test_an_implementation_limited_to_path_cases_runs_every_case_with_full_and_an_export_skips_the_batch() -> None:
    from harness.conformance.plan import runs
    from implementations import Implementation

    seed, large = builtin_cases(0, ["seed"])[0], builtin_cases(0, ["large"])[0]
    export = Implementation("x.export", "logits", api="an export per shape", runs_on="path", batch=False)
    assert "path" in seed.tags and "path" not in large.tags
    assert runs(export, seed) and not runs(export, large) and runs(export, large, full=True)
    everyday = Implementation("x.eager", "logits", api="eager")
    batch_case = builtin_cases(0, ["logit_thresholds"])[1]  # logit_thresholds_float32: tagged batch and path
    assert batch_eligible(batch_case)

    class Export(adapter_classes()["numpy"]):  # type: ignore[misc,valid-type]
        implementations = (export, everyday)

    checks = Counter((job.impl, job.check) for job in jobs_for(Export, [batch_case], ["float32"], ["cpu"],
                                                               Scope.default()))
    assert checks[("x.export", "batch")] == 0 and checks[("x.eager", "batch")] == 1
    assert checks[("x.export", "reference")] == checks[("x.eager", "reference")] == 1
