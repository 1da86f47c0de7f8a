"""`python -m harness COMMAND`: a thin layer over the Python API.

Exit codes: 0 the command ran (what it finds is reported, not a failure); 1 a gate asked for failed
(`--fail-on`, `compare --fail-on-regression`); 2 bad usage or bad input, with one line naming the problem and the
fix.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from cases import BadInput
from harness.api import (
    DEFAULT_PROCESSES,
    DEFAULT_SWEEPS,
    DEFAULT_TIMEOUT,
    DEVICES,
    GPU_SWEEP_DTYPES,
    GPU_SWEEP_SIZES,
    UsageError,
    audit,
    bench,
    fuzz,
    gpu_sweep,
    resume_audit,
    resume_bench,
)
from harness.options import resolve_frameworks
from harness.workers import Hello, known_devices

__all__ = ["main"]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}; see '{self.prog} --help'\n")


def _list_arg(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def _int_arg(text: str) -> int:
    """Integers, also written like 1e5."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value.is_integer():
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer")
    return int(value)


def _sizes_arg(text: str) -> list[int]:
    return [_int_arg(item) for item in _list_arg(text)]


def _selection(command: argparse.ArgumentParser, frameworks: str, dtypes: str) -> None:
    """What to run, shared by audit and bench: frameworks, dtypes, devices."""
    command.add_argument("--frameworks", type=_list_arg, help=f"comma-separated import names (default: {frameworks})")
    command.add_argument("--dtypes", type=_list_arg, help=f"float64,float32,float16,bfloat16 (default: {dtypes})")
    command.add_argument("--devices", type=_list_arg, help=f"{','.join(DEVICES)} (default: cpu)")


def _run_folder(command: argparse.ArgumentParser, what: str, part: tuple[str, str], resumed: str) -> None:
    """Where a run goes and how it is split and resumed, shared by audit and bench."""
    command.add_argument("--out", type=Path, help=f"run folder to create (default: runs/<run_id>/){what}")
    command.add_argument("--seed", type=_int_arg, help=f"seed of the {part[0]} (default 0)")
    command.add_argument("--shard", metavar="i/n", help=f"run part i of n of the {part[1]} (merge the parts with "
                                                        "'merge')")
    command.add_argument("--shard-from-env", metavar="VAR/n",
                         help="the shard from an array engine's 0-based task index in the environment variable VAR "
                              "(JOB_COMPLETION_INDEX/4, SLURM_ARRAY_TASK_ID/4): shard VAR + 1 of n")
    command.add_argument("--resume", type=Path, metavar="RUN_DIR", help=f"finish an interrupted {resumed}")
    command.add_argument("--quiet", action="store_true", help="no progress bar")


def _audit_arguments(command: argparse.ArgumentParser) -> None:
    _selection(command, "all", "all")
    _run_folder(command, "", ("random families", "cases"),
                "audit in its folder, without redoing the rows it recorded")
    command.add_argument("--families", type=_list_arg, help="built-in case families (default: all)")
    command.add_argument("--cases", type=Path, help="a JSON case file, replacing the built-in families")
    command.add_argument("--callable", action="append", metavar="MODULE:FUNCTION[:FORM[:FRAMEWORK]]",
                         help="your own BCE, audited beside the frameworks in its own worker (repeatable): FORM "
                              "logits (default) or probs; FRAMEWORK numpy, torch, jax or tensorflow (default: the "
                              "one its module imports); the module must import from the current folder or "
                              "PYTHONPATH")
    command.add_argument("--full", action="store_true",
                         help="every compiled path on every case, and the longest reductions (minutes)")
    command.add_argument("--jobs", type=_int_arg, help="framework workers at once (default 2; with --resume, the "
                                                       "run's own)")
    command.add_argument("--no-cache", action="store_true", help="recompute the reference, ignoring the cache")
    command.add_argument("--timeout", type=float, metavar="SECONDS",
                         help=f"a worker silent this long on one cell is stopped: a timeout row (default "
                              f"{DEFAULT_TIMEOUT:g}; with --resume, the run's own)")
    command.add_argument("--memory-limit", type=float, metavar="GIB",
                         help="a worker holding more resident memory is stopped: a crashed row (default: the "
                              "machine's memory shared between the workers)")
    command.add_argument("--fail-on", type=_list_arg, metavar="STATUSES",
                         help="exit 1 when a row has one of these statuses (e.g. fail,nonfinite) and --expected "
                              "does not list it")
    command.add_argument("--expected", type=Path, metavar="FILE",
                         help="TOML file of expected findings ([[finding]] tables with a reason and the finding's "
                              "fields, such as finding_id, or the rows' fields to match)")


def _bench_arguments(command: argparse.ArgumentParser) -> None:
    _selection(command, "installed", "float32")
    _run_folder(command, ", or an audit's (its statuses go beside the speeds)", ("inputs", "(device, dtype, size) "
                "groups"), "benchmark in its folder (whole size groups are kept)")
    command.add_argument("--sizes", type=_sizes_arg, help="element counts, e.g. 1e3,1e5,1e7 (the default)")
    command.add_argument("--directions", type=_list_arg, help="forward,forward_backward (default: both)")
    command.add_argument("--modes", type=_list_arg,
                         help="eager, compiled (every compiled path) or mode names such as jax.jit (default: all)")
    command.add_argument("--impls", type=_list_arg,
                         help="implementation ids, or all (default: each framework's own logits API)")
    command.add_argument("--sweeps", type=_int_arg, help=f"interleaved sweeps (default {DEFAULT_SWEEPS})")
    command.add_argument("--processes", type=_int_arg,
                         help=f"worker processes per framework, taking the sweeps in turn (default "
                              f"{DEFAULT_PROCESSES}, at most --sweeps): a process's own speed becomes a sample, not "
                              "the run's result")
    command.add_argument("--threads", type=_int_arg, help="threads and CPUs for every framework (default: all)")


def _fuzz_arguments(command: argparse.ArgumentParser) -> None:
    command.add_argument("--frameworks", type=_list_arg, help="comma-separated import names (default: installed)")
    command.add_argument("--impls", type=_list_arg, help="implementation ids (default: every framework's own APIs "
                                                         "and formulas)")
    command.add_argument("--dtypes", type=_list_arg, help="float64,float32,float16,bfloat16: one search each "
                                                          "(default: all)")
    command.add_argument("--quantities", type=_list_arg,
                         help="loss,grad and the further derivatives grad_fwd,grad_y,grad_weight,grad_pos_weight,"
                              "grad2 (default: loss,grad)")
    command.add_argument("--modes", type=_list_arg, help="eager, compiled or mode names such as jax.jit (default: "
                                                         "every mode)")
    command.add_argument("--device", choices=DEVICES, default="cpu", help="cpu or gpu (default: cpu)")
    command.add_argument("--max-examples", type=_int_arg, default=100, help="batches per search (default 100)")
    command.add_argument("--budget", type=float, metavar="SECONDS",
                         help="stop the searches after this long (meta.json says so); what they found is still "
                              "shrunk")
    command.add_argument("--seed", type=_int_arg, default=0, help="Hypothesis's seed (default 0): the same seed "
                                                                  "and --max-examples give the same cases")
    command.add_argument("--size", type=_int_arg, default=64, help="elements per batch (default 64)")
    command.add_argument("--finite", action="store_true", help="draw no ±inf or NaN")
    command.add_argument("--out", type=Path, help="run folder to create (default: runs/<run_id>/)")
    command.add_argument("--no-cache", action="store_true", help="recompute the reference, ignoring the cache")
    command.add_argument("--quiet", action="store_true", help="no progress bar")


def _reading_arguments(commands: Any) -> None:
    """The commands that read run folders: repro, compare, merge, history, report."""
    repro = commands.add_parser("repro", help="print a standalone script reproducing a finding (its minimal "
                                              "example) or one row")
    repro.add_argument("run_dir", type=Path, metavar="RUN_DIR")
    repro.add_argument("row_id", metavar="FINDING_ID|ROW_ID")
    repro.add_argument("--out", type=Path, help="write the script to this file instead of printing it")
    issue = commands.add_parser("issue", help="print a finding as a bug report in a framework tracker's template")
    issue.add_argument("run_dir", type=Path, metavar="RUN_DIR")
    issue.add_argument("finding_id", metavar="FINDING_ID")
    issue.add_argument("--tracker", help="pytorch, tensorflow, keras, jax, optax or numpy (default: the tracker of "
                                         "the framework of the finding's minimal example)")
    compare = commands.add_parser("compare", help="accuracy and speed regressions of NEW_RUN against BASE_RUN")
    compare.add_argument("base_run", type=Path, metavar="BASE_RUN")
    compare.add_argument("new_run", type=Path, metavar="NEW_RUN")
    compare.add_argument("--fail-on-regression", action="store_true", help="exit 1 when anything regressed")
    compare.add_argument("--min-effect", type=float, default=0.10,
                         help="smallest slowdown that counts, as a fraction of the median (default 0.1)")
    compare.add_argument("--out", type=Path, help="also write the Markdown to this file")
    compare.add_argument("--format", choices=["github"],
                         help="github: also write compare.github.md into NEW_RUN (details collapsed; appended to "
                              "$GITHUB_STEP_SUMMARY under GitHub Actions)")
    merge = commands.add_parser("merge", help="merge run folders (shards, machines, framework versions) into one")
    merge.add_argument("runs", type=Path, nargs="+", metavar="RUN")
    merge.add_argument("--out", type=Path, help="run folder to create (default: runs/<run_id>/)")
    history = commands.add_parser("history", help="every run under RUNS_ROOT: accuracy and speed over time")
    history.add_argument("root", type=Path, nargs="?", default=Path("runs"), metavar="RUNS_ROOT",
                         help="folder of run folders (default: runs)")
    report = commands.add_parser("report", help="(re)write report.md and report.html of run folders")
    report.add_argument("run_dirs", type=Path, nargs="+", metavar="RUN_DIR")
    report.add_argument("--format", type=_list_arg, metavar="FORMATS",
                        help="also write github (report.github.md, appended to $GITHUB_STEP_SUMMARY under GitHub "
                             "Actions), junit (junit.xml: one testcase per finding) and/or json (report.json, "
                             "validated by reports/schema/report.schema.json)")


def _bisect_arguments(command: argparse.ArgumentParser) -> None:
    command.add_argument("finding", nargs="*", metavar="RUN_DIR FINDING_ID",
                         help="the finding to follow (its minimal example); or give --cases, --impl and --dtype")
    command.add_argument("--versions", required=True, metavar="OLD..NEW|V1,V2,…",
                         help="the releases: every final release from OLD to NEW on the package index, or a list")
    command.add_argument("--framework", help="the adapter whose package is bisected (default: the finding's)")
    command.add_argument("--package", help="the distribution bisected (default: the framework's own, e.g. jax; "
                                           "optax for JAX's companion)")
    command.add_argument("--companions", type=_list_arg, default=[], metavar="DISTS",
                         help="more distributions each release gets, resolved per release (e.g. optax)")
    command.add_argument("--cases", type=Path, metavar="FILE", help="a JSON case file instead of a finding")
    command.add_argument("--case", help="the case of --cases to audit (default: its only one)")
    command.add_argument("--impl", help="with --cases: the implementation, e.g. jax.logits")
    command.add_argument("--dtype", default="float32", help="with --cases: the dtype (default float32)")
    command.add_argument("--reduction", default="none", choices=["none", "mean", "sum"])
    command.add_argument("--quantity", default="loss", help="loss (default), grad or a further derivative")
    command.add_argument("--mode", default="eager", help="eager (default) or a compiled path such as jit")
    command.add_argument("--json", type=Path, metavar="FILE",
                         help="where to write the answer as JSON (default: runs/bisect/<package>-<impl>.json)")
    command.add_argument("--env-cache-gb", type=float, default=20.0,
                         help="the release environments kept in .bce-cache/envs, in GiB (default 20)")


def _plan_arguments(commands: Any) -> None:
    plan = commands.add_parser("plan", allow_abbrev=False,
                               help="the jobs of an audit or benchmark: shards × environments × devices, as "
                                    "PLAN.json, or emitted for a CI matrix, Kubernetes or Slurm")
    plan.add_argument("plan_command", choices=["audit", "bench"], metavar="audit|bench",
                      help="the command each job runs; its own selection flags follow (--frameworks, --families …)")
    plan.add_argument("--shards", type=_int_arg, required=True, help="parts of the matrix (each a job)")
    plan.add_argument("--envs", type=_list_arg, default=[], metavar="E1,E2",
                      help="prebuilt interpreters: tox env names (jax-0.9.2) or paths (default: this one)")
    plan.add_argument("--devices", type=_list_arg, default=["cpu"], help="cpu,gpu (default: cpu)")
    plan.add_argument("--out", type=Path, metavar="PLAN.json", help="where to write the plan")
    plan.add_argument("--emit", choices=["github-matrix", "k8s-indexed-job", "slurm-array"],
                      help="print the plan for that engine instead")
    run = commands.add_parser("run-plan", help="run a plan's jobs (local processes or Ray tasks) and merge them")
    run.add_argument("plan_file", type=Path, metavar="PLAN.json")
    run.add_argument("--executor", choices=["local", "ray"], default="local")
    run.add_argument("--address", help="with ray: an existing cluster (default: a local one)")
    run.add_argument("--env-resources", action="store_true",
                     help="with ray: each job asks for one unit of the custom resource bce-env-<environment>, "
                          "which the nodes holding that environment declare")
    run.add_argument("--jobs", type=_int_arg, default=2, help="jobs at once (local), CPUs of a local Ray (default 2)")
    run.add_argument("--out", type=Path, help="the merged run (the jobs' folders under OUT/jobs/; default: "
                                              "runs/<run_id>/)")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m harness", description="Binary cross-entropy conformance harness.",
                     epilog="Exit codes: 0 the command ran (what it finds is reported, not a failure); 1 a gate "
                            "asked for failed (--fail-on, --fail-on-regression); 2 bad usage or bad input.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    listing = commands.add_parser("list", help="frameworks, versions, devices and dtypes")
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    _audit_arguments(commands.add_parser("audit", help="compare every implementation with the exact reference"))
    _bench_arguments(commands.add_parser("bench", help="time every framework's BCE side by side (pytest-benchmark)"))
    _plan_arguments(commands)
    _bisect_arguments(commands.add_parser("bisect", help="which release of a framework changed a finding: its "
                                                         "minimal case audited release by release, halving"))
    sizes = ",".join(f"{n:.0e}".replace("e+0", "e") for n in GPU_SWEEP_SIZES)  # 1e4,1e6,1e8
    _fuzz_arguments(commands.add_parser("fuzz", help="search for the worst inputs, shrink each failure to a "
                                                     "minimal case with its onset (fuzz-cases.json for --cases)"))
    gpu = commands.add_parser("gpu-sweep", help=f"the GPU check: a quick audit on the GPU, then bench of every "
                                                f"framework present, {','.join(GPU_SWEEP_DTYPES)}, sizes {sizes}")
    gpu.add_argument("--frameworks", type=_list_arg, help="comma-separated import names (default: installed)")
    gpu.add_argument("--out", type=Path, help="run folder to create (default: runs/<run_id>/)")
    gpu.add_argument("--quiet", action="store_true", help="no progress bar")
    _reading_arguments(commands)
    return parser


def _has_rich() -> bool:
    """rich draws the tables and the progress bar; a bare GPU image may lack it, and then plain text serves."""
    return importlib.util.find_spec("rich") is not None


def _print_table(frame: Any, title: str, width: int) -> None:
    """A DataFrame as a terminal table: text left, numbers right (3 significant digits)."""
    if not _has_rich():
        print(title)
        print(frame.to_string(index=False, float_format=lambda v: f"{v:.3g}"))
        return
    from pandas.api.types import is_numeric_dtype
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, show_lines=False)
    for column in frame.columns:
        text = not is_numeric_dtype(frame[column])
        table.add_column(str(column), justify="left" if text else "right", no_wrap=text)
    for row in frame.itertuples(index=False):
        table.add_row(*[f"{v:.3g}" if isinstance(v, float) else str(v) for v in row])
    (Console() if sys.stdout.isatty() else Console(width=width)).print(table)  # logs and CI get it whole


def _print_summary(run_dir: str) -> None:
    from reports import load_run, status_matrix

    run = load_run(run_dir)
    assert run.conformance is not None  # an audit just wrote it
    _print_table(status_matrix(run.conformance), "rows per status (implementation × dtype)", 160)
    counts = run.conformance["status"].value_counts()
    print("totals: " + ", ".join(f"{status} {count}" for status, count in counts.items()))
    for stale in run.meta.get("stale_conventions", []):
        print(f"warning: documented convention {stale!r} matched no row (stale?)")
    for stale in run.meta.get("stale_known_issues", []):
        print(f"warning: known issue {stale} matched no finding (fixed upstream, or a stale entry?)")
    if run.findings is not None:
        _print_findings(run.findings, run_dir)
    for fault in run.meta.get("faults", []):
        print(f"fault: {fault['impl']} on case {fault['case']!r} ({fault['dtype']}, {fault['mode']}): "
              f"{fault['status']}: {fault['why']}; the other cases ran on in a new worker")
    print(f"run folder: {run_dir}  (report.md, conformance.parquet, meta.json)")


def _print_findings(findings: Any, run_dir: str, top: int = 10) -> None:
    """The findings' count and the top ones, worst first, each with the command that reproduces it."""
    alarms = int((findings["status"] != "deviation").sum())
    print(f"findings: {len(findings)} ({alarms} alarms, {len(findings) - alarms} documented conventions); "
          f"the top {min(top, len(findings))}:")
    for finding in findings.head(top).itertuples(index=False):
        known = f" [{len(finding.known_issues)} known issue(s)]" if len(finding.known_issues) else " [new]"
        print(f"{finding.rank:>3}. {finding.status:<9} {finding.finding_id}  {finding.title}{known}")
        print(f"     {', '.join(finding.impls)}; repro: python -m harness repro {run_dir} {finding.finding_id}")


def _with_progress(command: str, run: Any, quiet: bool, **options: Any) -> Any:
    """Call `run(**options)`, with a progress bar on a terminal."""
    if quiet or not sys.stderr.isatty() or not _has_rich():
        return run(**options)
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, transient=True) as bar:
        task = bar.add_task(command, total=None)

        def progress(done: int, total: int, what: str) -> None:
            bar.update(task, completed=done, total=total, description=f"{command}: {what}")

        return run(**options, progress=progress)


def _shard(args: argparse.Namespace) -> str | None:
    """--shard, or the shard an array engine's task index names (--shard-from-env VAR/n: VAR is 0-based)."""
    if args.shard_from_env is None:
        return args.shard
    if args.shard is not None:
        raise UsageError("give --shard or --shard-from-env, not both")
    name, _, total = args.shard_from_env.partition("/")
    value = os.environ.get(name)
    if not name or not total.isdecimal() or int(total) < 1:
        raise UsageError(f"--shard-from-env {args.shard_from_env!r}: write it as VAR/n, e.g. SLURM_ARRAY_TASK_ID/4")
    said = "is not set" if value is None else f"is {value!r}"
    if value is None or not value.strip().isdecimal() or not 0 <= int(value) < int(total):
        raise UsageError(f"--shard-from-env {args.shard_from_env}: ${name} {said}; it must be a task index from 0 "
                         f"to {int(total) - 1}")
    return f"{int(value) + 1}/{total}"


def _refuse_with_resume(args: argparse.Namespace, what: str, options: Sequence[str]) -> None:
    """--resume takes the run's own settings: any option that would change them is bad usage."""
    given = [f"--{name.replace('_', '-')}" for name in options
             if getattr(args, name) is not None and getattr(args, name) is not False]  # --seed 0 is given too
    if given:
        raise UsageError(f"--resume continues the {what} as it was started; leave out {', '.join(given)}")


def _audit(args: argparse.Namespace) -> int:
    from harness.findings.gate import apply_gate, load_expected, parse_fail_on

    if args.expected is not None and args.fail_on is None:
        raise UsageError("--expected lists findings for a gate: give --fail-on too (e.g. --fail-on fail,nonfinite)")
    # a bad gate is bad usage, found before minutes of audit
    fail_on = parse_fail_on(args.fail_on) if args.fail_on is not None else ()
    expected = load_expected(args.expected) if args.expected is not None else []
    if args.resume is not None:
        _refuse_with_resume(args, "audit", ("frameworks", "dtypes", "devices", "families", "cases", "out", "shard",
                                            "shard_from_env", "full", "seed", "callable"))
        frame = _with_progress("audit", resume_audit, args.quiet, run_dir=args.resume, use_cache=not args.no_cache,
                               jobs=args.jobs, timeout=args.timeout, memory_limit=args.memory_limit)
    else:
        frame = _with_progress(
            "audit", audit, args.quiet, frameworks=args.frameworks, dtypes=args.dtypes, devices=args.devices,
            families=args.families, cases=args.cases, out=args.out, seed=args.seed or 0, full=args.full, jobs=args.jobs,
            use_cache=not args.no_cache, shard=_shard(args), timeout=args.timeout, memory_limit=args.memory_limit,
            callables=args.callable or (),
        )
    _print_summary(frame.attrs["run_dir"])
    if not fail_on:
        return 0
    from harness.findings import read_findings

    result = apply_gate(frame, fail_on, expected, read_findings(frame.attrs["run_dir"]))
    source = f" in {args.expected}" if args.expected is not None else ""
    print(f"gate --fail-on {','.join(fail_on)}: {result.gated} rows, {result.gated - len(result.unexpected)} "
          f"expected{source}, {len(result.unexpected)} not")
    if result.failed:
        columns = ["status", "impl", "case", "dtype", "reduction", "quantity", "check", "mode", "row_id"]
        _print_table(result.unexpected[columns].head(200), "unexpected findings (the gate fails)", 200)
        if os.environ.get("GITHUB_ACTIONS") == "true":  # annotations on the workflow run
            for row in result.unexpected.head(50).itertuples(index=False):
                print(f"::error title=bce-harness gate::{row.status}: {row.impl} on {row.case} ({row.dtype}, "
                      f"{row.reduction}, {row.quantity}, {row.check}, {row.mode}); repro: python -m harness repro "
                      f"{frame.attrs['run_dir']} {row.row_id}")
    for entry in result.stale:
        print(f"warning: expected finding {entry.index} ({entry.describe()}) matched no row: stale?")
    return 1 if result.failed else 0


def _bench(args: argparse.Namespace) -> int:
    if args.resume is not None:
        _refuse_with_resume(args, "benchmark", ("frameworks", "dtypes", "devices", "sizes", "directions", "modes",
                                                "impls", "out", "threads", "shard", "shard_from_env", "processes",
                                                "sweeps", "seed"))
        _print_bench(_with_progress("bench", resume_bench, args.quiet, run_dir=args.resume))
        return 0
    frame = _with_progress(
        "bench", bench, args.quiet, frameworks=args.frameworks, dtypes=args.dtypes, devices=args.devices,
        sizes=args.sizes, directions=args.directions, modes=args.modes, impls=args.impls, out=args.out,
        sweeps=args.sweeps if args.sweeps is not None else DEFAULT_SWEEPS, threads=args.threads, seed=args.seed or 0,
        shard=_shard(args),
        processes=args.processes,
    )
    _print_bench(frame)
    return 0


def _gpu_sweep(args: argparse.Namespace) -> int:
    _, frame = _with_progress("gpu-sweep", gpu_sweep, args.quiet, frameworks=args.frameworks, out=args.out)
    _print_summary(frame.attrs["run_dir"])
    _print_bench(frame)
    return 0


def _fuzz(args: argparse.Namespace) -> int:
    found = _with_progress("fuzz", fuzz, args.quiet, frameworks=args.frameworks, impls=args.impls,
                           dtypes=args.dtypes, quantities=args.quantities, modes=args.modes, device=args.device,
                           max_examples=args.max_examples, budget=args.budget, seed=args.seed, out=args.out,
                           size=args.size, finite=args.finite, use_cache=not args.no_cache)
    run_dir = found.attrs["run_dir"]
    from reports import load_run

    meta = load_run(run_dir).meta["fuzz"]
    for plan in meta["searches"]:
        print(f"search {plan['dtype']} {plan['input_form']}: {plan['examples']} batches in {plan['seconds']:.0f} s, "
              f"{plan['distinct_failures']} distinct failures ({', '.join(plan['impls'])})")
    if meta["stopped_early"]:
        print(f"the searches stopped early: --budget {meta['budget_s']:g} s was spent")
    if meta["failures"]:
        import pandas as pd

        columns = ["impl", "dtype", "reduction", "mode", "quantity", "status", "replayed", "finding_id", "onset"]
        _print_table(pd.DataFrame(meta["failures"])[columns], "minimal failures (fuzz-cases.json)", 200)
    for case in meta.get("not_replayed", []):
        print(f"warning: {case}: the audit of its minimal case gave another status than the fuzzer saw")
    if len(found):
        _print_findings(found, run_dir)
    print(f"run folder: {run_dir}  (fuzz-cases.json: replay with 'python -m harness audit --cases "
          f"{run_dir}/fuzz-cases.json')")
    return 0


def _print_bench(frame: Any) -> None:
    from reports import bench_table

    table = bench_table(frame)
    table = table[[c for c in table.columns if c not in ("status", "error") or (table[c] != "").any()]]
    _print_table(table, "median time per call; ratio to the fastest in the same sweeps", 200)
    print(f"run folder: {frame.attrs['run_dir']}  (bench.parquet, bench.json for pytest-benchmark compare, "
          "meta.json, report.md)")


def _list(args: argparse.Namespace) -> int:
    from cases import DTYPES, family_names

    adapters = resolve_frameworks(None)
    found = known_devices(adapters)
    frameworks: dict[str, dict[str, Any]] = {}
    for name, adapter in adapters.items():
        loaded = found[name]
        hello = loaded if isinstance(loaded, Hello) else None
        frameworks[name] = {
            "installed": adapter.is_available(),
            "version": hello.versions.get(name) if hello else None,
            "devices": hello.devices if hello else [],
            "dtypes": list(adapter.dtypes),
            "implementations": [impl.impl for impl in adapter.implementations],
            "problem": "" if hello else loaded,
        }
    listing = {"frameworks": frameworks, "dtypes": list(DTYPES), "families": family_names()}
    if args.json:
        print(json.dumps(listing, indent=2))
        return 0
    width = max(map(len, frameworks), default=0)
    for name, info in frameworks.items():
        if info["installed"] and not info["problem"]:
            print(f"{name:<{width}} {info['version']:<14} devices: {','.join(info['devices']):<8} "
                  f"implementations: {', '.join(info['implementations'])}")
        else:
            print(f"{name:<{width}} {'unavailable':<14} {info['problem']}")
    print(f"dtypes: {', '.join(DTYPES)}")
    print(f"families: {', '.join(family_names())}")
    return 0


def _report(args: argparse.Namespace) -> int:
    from harness.findings import record_findings
    from harness.store.folder import RunStore
    from reports import write_reports
    from reports.ci import check_formats, write_formats

    check_formats(args.format or [])
    for run_dir in args.run_dirs:
        store = RunStore(run_dir)
        store.read_meta()
        if store.has_conformance() and not store.has_findings():  # a run of an older version: its findings first
            record_findings(run_dir)
        for path in write_reports(run_dir):
            print(path)
        if args.format:
            for path in write_formats(run_dir, args.format):
                print(path)
    return 0


def _compare(args: argparse.Namespace) -> int:
    from reports.compare import compare_runs, render_comparison

    comparison = compare_runs(args.base_run, args.new_run, min_effect=args.min_effect)
    text = render_comparison(comparison)
    print(text, end="")
    if args.out is not None:
        args.out.write_text(text, encoding="utf-8")
    if args.format == "github":
        from reports.ci import write_comparison

        print(write_comparison(comparison, text))
    return 1 if args.fail_on_regression and comparison.regressions else 0


def _merge(args: argparse.Namespace) -> int:
    from harness.api import new_run_id
    from harness.scale.merge import merge_runs
    from reports import write_reports

    run_id = new_run_id()
    folder = merge_runs(args.runs, args.out if args.out is not None else Path("runs") / run_id, run_id)
    for path in write_reports(folder):
        print(path)
    return 0


def _history(args: argparse.Namespace) -> int:
    from reports.history import load_history, write_history

    frame = load_history(args.root)
    written = write_history(args.root, frame)
    runs = frame["run_id"].nunique() if not frame.empty else 0
    kinds = ", ".join(f"{kind} {count}" for kind, count in frame["kind"].value_counts().items())
    print(f"{runs} runs under {args.root}: {len(frame)} rows ({kinds})")
    for reason in frame.attrs.get("skipped", []):
        print(f"skipped: {reason}")
    for path in written:
        print(path)
    return 0


def _plan(args: argparse.Namespace, extra: Sequence[str]) -> int:
    from harness.scale.emit import EMITTERS
    from harness.scale.plan import environment, make_plan

    checked = _parser().parse_args([args.plan_command, *extra])  # the command's own flags, checked now
    clash = [f"--{name.replace('_', '-')}" for name in ("out", "shard", "shard_from_env", "resume", "devices")
             if getattr(checked, name, None) is not None]
    if clash:
        raise UsageError(f"{', '.join(clash)}: a plan sets each job's shard, device and folder itself")
    plan = make_plan(args.plan_command, list(extra), [environment(e) for e in args.envs], args.devices,
                     args.shards)
    if args.emit:
        print(EMITTERS[args.emit](plan), end="" if args.emit != "github-matrix" else "\n")
    if args.out is not None:
        print(plan.write(args.out), file=sys.stderr if args.emit else sys.stdout)
    elif not args.emit:
        raise UsageError("give --out PLAN.json (to run it with run-plan) or --emit ENGINE")
    return 0


def _run_plan(args: argparse.Namespace) -> int:
    from harness.api import new_run_id
    from harness.scale.executors import run_plan
    from harness.scale.plan import read_plan
    from reports import write_reports

    run_id = new_run_id()
    out, results = run_plan(read_plan(args.plan_file), args.out or Path("runs") / run_id, args.executor,
                            args.jobs, args.address, run_id, env_resources=args.env_resources)
    for result in results:
        state = "done" if result.returncode == 0 else f"exit {result.returncode} (log: {result.log})"
        merged = "" if result.complete else ", not merged: its run did not complete"
        print(f"{result.id}: {state} in {result.seconds:.0f} s{' (resumed)' if result.resumed else ''}{merged}")
    for path in write_reports(out):
        print(path)
    return 0 if all(r.returncode == 0 for r in results) else 1


def _bisect_target(args: argparse.Namespace) -> Any:
    from cases.casefile import load_case_file
    from harness.bisect import BisectError, target_of_cases, target_of_finding

    if len(args.finding) == 2 and args.cases is None:
        return target_of_finding(Path(args.finding[0]), args.finding[1])
    if args.finding or args.cases is None or not args.impl:
        raise BisectError("give RUN_DIR FINDING_ID, or --cases FILE with --impl (and --dtype): e.g. python -m "
                          "harness bisect runs/x 1a2b3c4d5e6f --versions 0.5.3..0.10.2")
    return target_of_cases(load_case_file(args.cases), args.case, args.impl, args.dtype, args.reduction,
                           args.quantity, args.mode)


def _bisect(args: argparse.Namespace) -> int:
    from harness.bisect import (
        BisectError,
        EnvCache,
        bisect_target,
        describe,
        index_versions,
        plan_install,
        select_releases,
        write_json,
    )
    from harness.bisect.releases import is_range
    from harness.store.environment import cache_root
    from implementations.registry import adapter_classes

    ranged = is_range(args.versions)  # a typo in the range costs nothing: checked before the index is asked
    target = _bisect_target(args)
    adapters = adapter_classes()
    framework = args.framework or target.framework
    if framework not in adapters or target.framework != framework:
        raise BisectError(f"--framework {framework}: the target's implementation {target.impl} is "
                          f"{target.framework}'s; frameworks: {', '.join(adapters)}")
    _check_target(adapters[framework], target, args.companions)
    envs = EnvCache(cache_root() / "envs", int(args.env_cache_gb * 2**30))
    distribution, install = plan_install(adapters[framework], args.package, args.companions, envs)
    releases = select_releases(args.versions, index_versions(distribution) if ranged else [])
    found = bisect_target(target, releases, distribution, install, pages=adapters[framework].release_pages,
                          progress=lambda line: print(line, file=sys.stderr, flush=True))
    print(describe(found, target, distribution))
    print(write_json(found, target, distribution,
                     args.json or Path("runs") / "bisect" / f"{distribution}-{target.impl}.json"))
    return 0


def _check_target(adapter: Any, target: Any, companions: Sequence[str]) -> None:
    """What the bisection audits exists in the framework as installed here (a typo would build every release's
    environment, then skip them all); the companions are pip requirements."""
    from packaging.requirements import InvalidRequirement, Requirement

    from harness.bisect import BisectError
    from implementations import DERIVATIVES

    impls = [impl.impl for impl in adapter.implementations]
    for what, value, known in (("--impl", target.impl, impls), ("--dtype", target.dtype, list(adapter.dtypes)),
                               ("--mode", target.mode, list(adapter.modes)),
                               ("--quantity", target.quantity, ["loss", "grad", *DERIVATIVES])):
        if value not in known:
            raise BisectError(f"{what} {value!r} is not one of {', '.join(known)}")
    for companion in companions:
        try:
            Requirement(companion)
        except InvalidRequirement:
            raise BisectError(f"--companions: {companion!r} is not a pip requirement (e.g. optax, optax<0.2.5)") \
                from None


def _repro(args: argparse.Namespace) -> int:
    from harness.findings.repro import reproducer
    from harness.own import registered_callables, run_callables

    with registered_callables(run_callables(args.run_dir)):  # a run's own functions reproduce too
        script = reproducer(args.run_dir, args.row_id)
    if args.out is None:
        print(script, end="")
    else:
        args.out.write_text(script, encoding="utf-8")
        print(f"wrote {args.out}; run it with: python {args.out}")
    return 0


def _issue(args: argparse.Namespace) -> int:
    from harness.findings.tracker import bug_report
    from harness.own import registered_callables, run_callables

    with registered_callables(run_callables(args.run_dir)):
        print(bug_report(args.run_dir, args.finding_id, args.tracker), end="")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args, extra = parser.parse_known_args(argv)
    if extra and args.command != "plan":
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    handlers = {"audit": _audit, "bench": _bench, "bisect": _bisect, "compare": _compare, "fuzz": _fuzz,
                "gpu-sweep": _gpu_sweep, "history": _history, "issue": _issue, "list": _list, "merge": _merge,
                "report": _report, "repro": _repro, "run-plan": _run_plan,
                "plan": lambda parsed: _plan(parsed, extra)}
    try:
        return handlers[args.command](args)
    except BadInput as exc:  # every bad name, flag, file or folder, from whichever room found it
        print(f"python -m harness {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; the jobs stopped: run-plan again into the same --out resumes them" if args.command ==
              "run-plan" else "interrupted; rows computed so far are in the run folder's journal.jsonl",
              file=sys.stderr)
        return 130
