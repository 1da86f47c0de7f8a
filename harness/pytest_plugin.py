"""The pytest face of the harness: `pytest --bce` collects the audit's matrix as tests, one per row, and the
`bce_check` fixture checks a user's own BCE against the exact reference.

Inert unless asked: without `--bce` this module adds options and a fixture and nothing else, and it imports only
the standard library and pytest (the harness loads inside the hooks), so another project's plain `pytest` loads
no framework. With `--bce`, items are planned without running anything (`harness.conformance.keys`); the first
item that runs starts one audit (`harness.api.audit`) for the items left after `-k`, `-m` and `--deselect`, and
every item reads its row from it by `row_id`. Under pytest-xdist each item carries `xdist_group(framework)`, and
a worker audits each framework it is given on its own.

Outcomes: `unsupported` and `unavailable` skip; a status in `--bce-fail-on` (and error, crashed, timeout) fails,
unless an entry of `--bce-expected` lists it (xfail, with the entry's reason); every other status passes. The
status and the error measures go into `user_properties`, which `--junitxml` writes. An expected entry that
matches no failing row of the items that ran is stale: a warning, or with `--bce-strict` a failed session.
"""

from __future__ import annotations

import importlib.util
import math
import os
import re
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:  # loaded inside the hooks, and only with --bce
    from cases import Case
    from harness.conformance.keys import RowKey
    from harness.findings.gate import Expected
    from implementations import Adapter

__all__ = ["ENV_PREFIX", "OWN_PACKAGES", "BceItem", "BceStaleEntryWarning", "bce_check"]

OWN_PACKAGES = ("harness", "cases", "implementations", "reports")
ENV_PREFIX = "BCE_"  # --bce-dtypes falls back on BCE_DTYPES, and so on
_FAILING = ("error", "crashed", "timeout")  # a computation that gave no verdict fails whatever --bce-fail-on says
_SKIPPED = ("unsupported", "unavailable")
_LISTS = ("frameworks", "dtypes", "devices", "families", "modes", "fail_on")
_OPTIONS = (  # (name, help); the flag is --bce-NAME, the fallback BCE_NAME
    ("frameworks", "comma-separated frameworks to audit (default: every known one; missing ones skip)"),
    ("dtypes", "comma-separated dtypes (default: float64, float32, float16, bfloat16)"),
    ("families", "comma-separated built-in case families (default: all)"),
    ("cases", "a JSON case file, replacing the built-in families"),
    ("devices", "cpu and/or gpu (default: cpu)"),
    ("modes", "eager, compiled or mode names such as jax.jit (default: all)"),
    ("expected", "TOML file of expected findings (as audit --expected): the rows it lists are xfail"),
    ("fail_on", "statuses that fail a test (default: fail,nonfinite; error, crashed and timeout always do)"),
    ("out", "the audit's run folder (default: under pytest's temporary folder)"),
)


class BceStaleEntryWarning(pytest.PytestWarning):
    """An entry of the expected-findings file matched no failing row: the finding went away, or the entry is
    wrong."""


def _env_name(name: str) -> str:
    return ENV_PREFIX + name.upper()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("bce-harness", "binary cross-entropy against the exact reference (bce-harness)")
    group.addoption("--bce", action="store_true", help="collect the bce-harness audit as tests, one per row")
    for name, text in _OPTIONS:
        flag = "--bce-" + name.replace("_", "-")
        group.addoption(flag, dest="bce_" + name, default=None, metavar="FILE" if name in ("cases", "expected")
                        else "DIR" if name == "out" else "LIST", help=f"{text}; or {_env_name(name)}")
    group.addoption("--bce-strict", action="store_true", default=None,
                    help=f"a stale entry of --bce-expected fails the session; or {_env_name('strict')}=1")


def _given(config: pytest.Config, name: str) -> tuple[Any, str]:
    """An option's value and where it came from: the command line, its environment variable, or neither."""
    value = config.getoption("bce_" + name)
    if value is not None:
        return value, "option"
    if _env_name(name) in os.environ:
        text = os.environ[_env_name(name)]
        return (text.strip().lower() not in ("", "0", "false", "no")) if name == "strict" else text, "env"
    return None, ""


# ------------------------------------------------------------------------------------------ own packages

def _check_own_packages() -> None:
    """Stop with one line when `cases`, `implementations` or `reports` resolves to another project's package
    (the names are generic): every one must sit beside this `harness`."""
    home = Path(__file__).resolve().parent.parent
    for name in OWN_PACKAGES:
        spec = importlib.util.find_spec(name)
        where = None if spec is None else spec.origin or next(iter(spec.submodule_search_locations or []), None)
        if where is None:
            raise pytest.UsageError(f"bce-harness: the package {name!r} is missing; reinstall bce-harness")
        folder = Path(where).resolve()
        folder = folder.parent if folder.name == "__init__.py" else folder
        if folder != home / name:
            raise pytest.UsageError(f"bce-harness: the package {name!r} here is {folder}, not bce-harness's own; "
                                    "rename or move it out of sys.path")


# ------------------------------------------------------------------------------------------ the choice

_FLAG = re.compile(r"(?<![\w-])--(frameworks|dtypes|devices|families|cases|modes|expected|fail-on)\b")


@dataclass
class _Choice:
    """What --bce and its options (or their environment variables) chose, checked by the harness's own rules."""

    adapters: dict[str, type[Adapter]]
    dtypes: list[str]
    devices: list[str]
    modes: list[str] | None
    cases: list[Case]
    fail_on: tuple[str, ...]
    expected: list[Expected]
    strict: bool
    out: Path | None
    sources: dict[str, str] = field(default_factory=dict)  # name → "env" for what came from the environment


def _choice(config: pytest.Config) -> _Choice:
    """The options, validated with the CLI's checks; bad ones are pytest usage errors of one line."""
    from cases import BadInput

    given = {name: _given(config, name) for name, _ in (*_OPTIONS, ("strict", ""))}
    values = {name: [part.strip() for part in value.split(",")] if name in _LISTS and value is not None else value
              for name, (value, _) in given.items()}
    try:
        return _checked(values, {name: source for name, (_, source) in given.items() if source == "env"})
    except BadInput as exc:
        raise pytest.UsageError("bce-harness: " + _FLAG.sub(r"--bce-\1", str(exc))) from None


def _checked(values: dict[str, Any], sources: dict[str, str]) -> _Choice:
    from cases import DTYPES
    from harness import options as choice
    from harness.findings.gate import load_expected, parse_fail_on

    adapters = choice.resolve_frameworks(values["frameworks"])
    devices = choice.chosen_devices(values["devices"])
    choice.check_gpu(adapters, devices)
    out = Path(values["out"]) if values["out"] is not None else None
    if out is not None and out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise choice.UsageError(f"--bce-out {str(out)!r} already exists and is not empty; choose a new folder")
    return _Choice(
        adapters=adapters, dtypes=choice.choose("dtype", values["dtypes"], list(DTYPES)), devices=devices,
        modes=choice.chosen_modes(adapters, values["modes"]),
        cases=choice.chosen_cases(values["cases"], values["families"], 0),
        fail_on=parse_fail_on(values["fail_on"] or ["fail", "nonfinite"]),
        expected=load_expected(values["expected"]) if values["expected"] is not None else [],
        strict=bool(values["strict"]), out=out, sources=sources)


# ------------------------------------------------------------------------------------------ the hooks

_SESSION = pytest.StashKey["_BceSession"]()


def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("bce", default=False):
        _check_own_packages()
        config.addinivalue_line("markers", "xdist_group(name): pytest-xdist's --dist loadgroup runs a group in one "
                                "worker (bce-harness: one framework's rows)")
        state = _BceSession(_choice(config), worker=hasattr(config, "workerinput"))
        config.stash[_SESSION] = state
        config.pluginmanager.register(state, "bce-harness-session")


@pytest.hookimpl(tryfirst=True)  # before -k, -m and --deselect, so that they narrow the matrix too
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    if _SESSION in config.stash:
        # collected as pytest collects (reports, hooks), so that the counts and --collect-only show the items
        items.extend(session.genitems(BceMatrix.from_parent(session, name="bce", nodeid="bce")))


def _stale_line(entry: Expected) -> str:
    return f"bce-harness: expected finding {entry.index} ({entry.describe()}) matched no failing row: stale?"


# ------------------------------------------------------------------------------------------ the items

class BceMatrix(pytest.Collector):
    """The audit's matrix: one item per row the plan says the audit will write."""

    def collect(self) -> list[pytest.Item]:
        from harness.conformance.keys import planned_rows

        wanted = self.config.stash[_SESSION].choice
        keys = planned_rows(wanted.adapters, wanted.cases, wanted.dtypes, wanted.devices)
        items: list[pytest.Item] = []
        for key in keys:
            if _mode_chosen(key.mode, wanted.modes):
                item = BceItem.from_parent(self, name=f"{key.impl}[{key.label()}]", key=key)
                item.add_marker(pytest.mark.xdist_group(name=key.framework))
                items.append(item)
        return items


def _mode_chosen(mode: str, modes: Sequence[str] | None) -> bool:
    return modes is None or mode in modes or (mode != "eager" and "compiled" in modes)


class BceItem(pytest.Item):
    """One row of the audit: its outcome is the row's status."""

    def __init__(self, *, key: RowKey, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.key = key

    def runtest(self) -> None:
        state: _BceSession = self.config.stash[_SESSION]
        adapter = state.choice.adapters[self.key.framework]
        if not adapter.is_available():  # the audit is not asked: it refuses a framework named but not installed
            pytest.skip(f"unavailable: {adapter.unavailable_reason()}")
        run = state.run_for(self)
        row = run.rows.get(self.key.row_id)
        if row is None:
            pytest.skip(f"{self.name}: {_missing(self.key)}")
        self.user_properties.extend(_properties(row, run))
        status = row["status"]
        if status in _SKIPPED:
            pytest.skip(f"{self.name}: {status}: {row['error_message'] or status}")  # a summary line names the row
        if status in state.choice.fail_on or status in _FAILING:
            entry = run.expected.get(self.key.row_id)
            if entry is not None:
                self.user_properties.append(("bce_expected_entry", str(entry.index)))
                pytest.xfail(f"expected finding {entry.index}: {entry.reason}")
            pytest.fail(_failure(self.key, row, run), pytrace=False)

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.path, None, f"bce: {self.name}"


def _missing(key: RowKey) -> str:
    if key.check == "path":
        return "not compared with eager: eager or this compiled path gave no result (its reference row says why)"
    return "the audit wrote no row for this key"


def _properties(row: dict[str, Any], run: _Run) -> Iterator[tuple[str, str]]:
    """What --junitxml carries: the status, the errors and the worst element, the run and the finding."""
    yield "bce_status", str(row["status"])
    for name in ("max_ulp_error", "worst_x", "worst_y", "got", "expected", "deviation"):
        value = row.get(name)
        if (isinstance(value, float) and math.isnan(value)) or value in (None, ""):
            continue
        yield "bce_" + name, f"{value:.9g}" if isinstance(value, float) else str(value)
    yield "bce_row_id", str(row["row_id"])
    yield "bce_run_dir", str(run.run_dir)
    if row["row_id"] in run.finding_of:
        yield "bce_finding_id", run.finding_of[row["row_id"]]


def _failure(key: RowKey, row: dict[str, Any], run: _Run) -> str:
    """The failure in a few lines: where, the worst element, got against exact, the error, the repro."""
    where = ", ".join(part for part in key[4:] if part)  # dtype, device, reduction, quantity, check, mode, relation
    lines = [f"{key.impl} on {key.case} ({where}): {row['status']}"]
    if not math.isnan(row["worst_x"]) or not math.isnan(row["worst_y"]):
        lines.append(f"worst element: x = {row['worst_x']:.9g}, y = {row['worst_y']:.9g}")
    if not math.isnan(row["got"]) or not math.isnan(row["expected"]):
        lines.append(f"got {row['got']:.9g}, expected {row['expected']:.9g} ({row['max_ulp_error']:.3g} ULP; "
                     f"{row['n_bad']} bad element(s))")
    if row["error_message"]:
        lines.append(f"{row['error_type'] + ': ' if row['error_type'] else ''}{row['error_message']}")
    target = run.finding_of.get(key.row_id, key.row_id)
    lines.append(f"repro: python -m harness repro {run.run_dir} {target}")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------ the audit

@dataclass
class _Run:
    """One audit's answer: its rows by row_id, the finding each row belongs to, the expected entry listing it."""

    run_dir: Path
    rows: dict[str, dict[str, Any]]
    finding_of: dict[str, str]
    expected: dict[str, Expected]


@dataclass
class _BceSession:
    """The session's choice and its audits: one for all the items left (under xdist, one per framework)."""

    choice: _Choice
    worker: bool = False
    runs: dict[str, _Run | Exception] = field(default_factory=dict)
    stale: list[Expected] = field(default_factory=list)
    matched: set[int] = field(default_factory=set)  # the expected entries that listed a row of an item
    ran: bool = False  # an item read its row (else nothing says whether an entry is stale)

    # the session's hooks (this object is registered as a plugin under --bce)

    def pytest_report_header(self) -> list[str]:
        choice = self.choice
        lines = [f"bce-harness: frameworks {','.join(choice.adapters)}; dtypes {','.join(choice.dtypes)}; "
                 f"devices {','.join(choice.devices)}; fail on {','.join(choice.fail_on)}"]
        environment = [f"{_env_name(name)}={os.environ[_env_name(name)]}" for name in choice.sources]
        if environment:
            lines.append("bce-harness from the environment: " + " ".join(environment))
        return lines

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """Which expected entries listed a row (on the controller too, under xdist: the reports carry it)."""
        for name, value in report.user_properties:
            self.ran |= name == "bce_status"
            if name == "bce_expected_entry":
                self.matched.add(int(str(value)))

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        """Stale entries: a warning each, and with --bce-strict a failed session."""
        if self.worker or not self.ran:
            return
        self.stale = [entry for entry in self.choice.expected if entry.index not in self.matched]
        for entry in self.stale:
            warnings.warn(BceStaleEntryWarning(_stale_line(entry)), stacklevel=1)
        if self.stale and self.choice.strict and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if not self.runs:
            return
        terminalreporter.section("bce-harness")
        for group, run in self.runs.items():
            if isinstance(run, _Run):
                terminalreporter.line(f"audit ({group}): {len(run.rows)} rows in {run.run_dir}; report: python -m "
                                      f"harness report {run.run_dir}")
        for entry in self.stale if self.choice.strict else []:  # else the warnings say it
            terminalreporter.line(_stale_line(entry) + " (--bce-strict: the session fails)", red=True)

    # the audit

    def run_for(self, item: BceItem) -> _Run:
        """The audit holding the item's row, run when the first item of its group runs."""
        group = item.key.framework if self.worker else "all"
        if group not in self.runs:
            left = [i.key for i in item.session.items if isinstance(i, BceItem)
                    and group in ("all", i.key.framework) and self.choice.adapters[i.key.framework].is_available()]
            try:
                self.runs[group] = self._audit(left, self._folder(item.config, group))
            except Exception as exc:  # every item of the group fails with it, not only the first
                self.runs[group] = exc
        run = self.runs[group]
        if isinstance(run, Exception):
            pytest.fail(f"bce-harness: the audit did not run: {type(run).__name__}: {run}", pytrace=False)
        return run

    def _folder(self, config: pytest.Config, group: str) -> Path:
        # pytest's own temporary folder (per worker under xdist), which its fixtures reach through the config
        factory: pytest.TempPathFactory = config._tmp_path_factory  # type: ignore[attr-defined]
        base = self.choice.out if self.choice.out is not None else factory.getbasetemp() / "bce-run"
        if group == "all":
            return base
        return base / f"{group}-{getattr(config, 'workerinput', {}).get('workerid', 'main')}"

    def _audit(self, keys: Sequence[RowKey], out: Path) -> _Run:
        from harness.api import audit
        from harness.findings import read_findings

        frame = audit(frameworks=sorted({k.framework for k in keys}), dtypes=sorted({k.dtype for k in keys}),
                      devices=sorted({k.device for k in keys}), cases=_needed_cases(self.choice.cases, keys),
                      out=out, write_report=False)
        found = read_findings(out)
        finding_of: dict[str, str] = {}
        for finding_id, row_ids in zip(found["finding_id"], found["row_ids"], strict=True):
            for row_id in row_ids:
                finding_of.setdefault(row_id, finding_id)  # the most severe finding (rank order) first
        rows = {str(record["row_id"]): {str(k): v for k, v in record.items()} for record in frame.to_dict("records")}
        return _Run(out, rows, finding_of, self._listed(frame, found))

    def _listed(self, frame: Any, found: Any) -> dict[str, Expected]:
        """Which rows with a failing status an expected entry lists (the first entry that does), as the gate
        matches them."""
        gated = frame[frame["status"].isin([*self.choice.fail_on, *_FAILING])]
        listed: dict[str, Expected] = {}
        for entry in self.choice.expected if len(gated) else []:
            for row_id in gated.loc[entry.matches(gated, found), "row_id"]:
                listed.setdefault(row_id, entry)
        return listed


def _needed_cases(cases: Sequence[Case], keys: Sequence[RowKey]) -> list[Case]:
    """The items' cases, with the partners of their identities (both sides of a relation row must run)."""
    from cases.relations import partner_of

    wanted = {key.case for key in keys}
    for case in cases:
        found = partner_of(case)
        if found is not None and (found[1] in wanted or case.name in wanted):
            wanted |= {found[1], case.name}
    return [case for case in cases if case.name in wanted]


# ------------------------------------------------------------------------------------------ the fixture

@pytest.fixture
def bce_check() -> Callable[..., Any]:
    """Check your own BCE against the exact reference, failing the test with the findings:
    `bce_check(my_bce, input_form="logits", dtypes=("float32",), framework="torch")` (see harness.api.check_loss);
    returns the `LossCheck` when it passes."""
    _check_own_packages()  # the generic package names must be this distribution's own
    from cases import BadInput
    from harness.api import check_loss

    def check(function: Callable[..., Any], **options: Any) -> Any:
        try:
            result = check_loss(function, **options)
        except BadInput as exc:  # a bad option: one line, as the CLI says it
            pytest.fail(f"bce_check: {exc}", pytrace=False)
        if not result.passed:
            pytest.fail(result.summary(), pytrace=False)
        return result

    return check
