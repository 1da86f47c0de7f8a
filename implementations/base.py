"""The adapter contract: what the harness may ask of a framework, and what it gets back.

An adapter knows one framework: how to import and configure it, move arrays to a device and back, which dtypes
and devices it has, and which of its APIs compute BCE (its implementations). It never judges a result.
Capabilities are data on the class (`dtypes`, `implementations`), readable without importing the framework.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import inspect
import os
import statistics
import textwrap
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, NamedTuple, final

import numpy as np

__all__ = [
    "DERIVATIVES",
    "DIRECTIONS",
    "REDUCTIONS",
    "Adapter",
    "Derivative",
    "Direction",
    "Implementation",
    "Output",
    "Reduction",
    "Result",
    "Unsupported",
    "check_derivative",
    "derivative_answers",
    "derivative_driver",
    "derivative_source",
    "source_of",
    "thread_environment",
]

Reduction = Literal["none", "mean", "sum"]
REDUCTIONS: tuple[Reduction, ...] = ("none", "mean", "sum")
Direction = Literal["forward", "forward_backward"]
DIRECTIONS: tuple[Direction, ...] = ("forward", "forward_backward")
# Further derivatives of the reduced loss (of its sum for `none`), eager, through the framework's own autodiff:
#   grad_fwd         forward mode along a tangent of ones: per element for `none`, d/dt L(x + t) for mean and sum
#   grad_y           ∂/∂target                       (y's shape)
#   grad_weight      ∂/∂weight                       (weight's shape; only for a case with a weight)
#   grad_pos_weight  ∂/∂pos_weight                   (pos_weight's shape; only for a case with one)
#   grad2            the diagonal of the Hessian with respect to the input (x's shape)
DERIVATIVES: tuple[str, ...] = ("grad_fwd", "grad_y", "grad_weight", "grad_pos_weight", "grad2")


class Unsupported(Exception):
    """The framework cannot do this combination (dtype, device or option); the message says which."""


@dataclass(frozen=True, slots=True)
class Implementation:
    """One API of a framework that computes BCE.

    Attributes:
        impl: id users type, `<framework>.<name>` (e.g. `torch.logits`).
        input_form: "logits" or "probs".
        api: the call made, as users would write it.
        api_pos_weight: the call made when `pos_weight` is given (None: the API has no pos_weight).
        compute_dtype: the dtype the API computes in whatever the input's (a Keras loss class computes in its own
            dtype, floatx = float32); None: the input's own. Conventions predict their values in it.
        formula: a formula the harness writes with the framework's operations (the worked example, NumPy's own
            BCE), not an API the framework ships; findings rank the frameworks' own APIs first.
        same_as: another implementation of the same framework that this one must equal by an identity (relation
            rows named `relation`): a two-class softmax cross-entropy, a focal loss with gamma 0.
        relation: the identity's name, for `same_as`.
        sigmoid_inside: takes logits, computes σ(x) inside the (compiled) function and gives it to a probabilities
            API: a context in which graph rewrites act. Judged by its compiled paths against eager in that context.
        runs_on: only cases with this tag (an API that exists here for a relation or a context).
        reductions: the reductions the API computes (a user's function that returns per-element losses: `none`).
        differentiable: whether it has a gradient (code in a framework without autodiff, such as a user's NumPy
            function, or an inference runtime, has none: its gradient rows are `unsupported`).
        batch: whether the batch check runs (an exported model is one shape: the check would export twice more).
        same_api_on: the same API of the same package on its reference backend (Keras on JAX, torch or NumPy:
            the implementation of Keras on TensorFlow), which this one must equal within the pass tolerance
            (`backend` rows).
    """

    impl: str
    input_form: Literal["logits", "probs"]
    api: str
    api_pos_weight: str | None = None
    compute_dtype: str | None = None
    formula: bool = False
    same_as: str | None = None
    relation: str = ""
    sigmoid_inside: bool = False
    runs_on: str | None = None
    reductions: tuple[str, ...] = REDUCTIONS
    differentiable: bool = True
    same_api_on: str | None = None
    batch: bool = True

    def api_for(self, has_pos_weight: bool) -> str:
        if has_pos_weight:
            if self.api_pos_weight is None:
                raise Unsupported(f"{self.impl}: {self.api} has no pos_weight")
            return self.api_pos_weight
        return self.api


@dataclass(frozen=True, slots=True)
class Derivative:
    """One further derivative (see DERIVATIVES) as computed: float64 values and the framework's dtype, or why there
    are none (`status` "unsupported" for what the framework cannot differentiate, "error" for what it raised)."""

    values: np.ndarray | None
    dtype: str = ""
    status: str = ""
    error_type: str = ""
    message: str = ""


@dataclass(frozen=True, slots=True)
class Output:
    """What an implementation returned, converted exactly to float64 NumPy arrays.

    `loss` is the reduced loss (0-d) or the per-element loss (`none`); `grad` is the gradient of the reduced loss
    (of the sum for `none`) with respect to the input; `out_dtype` is the dtype the framework produced.
    """

    loss: np.ndarray
    grad: np.ndarray | None
    out_dtype: str
    grad_dtype: str | None
    api: str
    compiled: str = ""  # for a compiled mode: evidence that compiled code ran (e.g. "compiled calls: 1")
    derivatives: Mapping[str, Derivative] = field(default_factory=dict)
    grad_error: tuple[str, str] | None = None  # (type, message) of what the autodiff raised, where grad is None


class Result(NamedTuple):
    """What an adapter's `evaluate` returns, as the framework's own objects: the reduced loss, its gradient with
    respect to the input (or the exception its autodiff raised, where the loss computed without one), and for a
    compiled mode the evidence that compiled code ran (empty for eager)."""

    loss: Any
    grad: Any
    evidence: str = ""


def source_of(*functions: Any) -> str:
    """The source of module-level functions, for a reproducer: what runs is what the user reads."""
    return "\n\n".join(textwrap.dedent(inspect.getsource(function)) for function in functions) + "\n"


def check_derivative(name: str, arrays: Mapping[str, np.ndarray]) -> None:
    """`Unsupported` for a derivative these arrays cannot be asked for (the framework is not asked)."""
    if name not in DERIVATIVES:
        raise Unsupported(f"unknown derivative {name!r}; known: {', '.join(DERIVATIVES)}")
    argument = name.removeprefix("grad_")
    if argument in ("weight", "pos_weight") and argument not in arrays:
        raise Unsupported(f"{name}: the case has no {argument}")
    if argument == "y" and arrays["y"].dtype.kind in "biu":
        raise Unsupported(f"{name}: {arrays['y'].dtype.name} labels have no derivative")


_DERIVATIVE_DRIVER = """
def run(x, y, weight, pos_weight):
    options = {{name: from_numpy(value, W_DTYPE) for name, value in (("weight", weight), ("pos_weight", pos_weight))
               if value is not None}}
    x, y = from_numpy(x, DTYPE), from_numpy(y, Y_DTYPE)
    loss = {function}(x, y, REDUCTION, **options)
    return to_numpy(loss), to_numpy({helper}({leading}{function}, x, y, REDUCTION, **options))
"""


def derivative_driver(function: Callable[..., Any], helper: Callable[..., Any], leading: tuple[str, ...]) -> str:
    """A reproducer's `run` for a further derivative: (loss, derivative), eager, as an adapter's `derivatives`
    computes it with `helper(*leading, function, x, y, reduction, **options)` (every adapter names its
    conversions `from_numpy` and `to_numpy`)."""
    return _DERIVATIVE_DRIVER.format(function=function.__name__, helper=helper.__name__,
                                     leading="".join(f"{value!r}, " for value in leading))


DerivativeHelpers = Mapping[str, tuple[Callable[..., Any], tuple[str, ...]]]  # name → (helper, its leading args)


def derivative_answers(helpers: DerivativeHelpers, function: Callable[..., Any], tensors: Mapping[str, Any],
                       reduction: str, wanted: tuple[str, ...], arrays: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """Each wanted derivative by `helper(*leading, function, x, y, reduction, **options)`, apart: what the
    framework raises for one is that one's answer (an adapter's `derivatives` calls it with its own tensors)."""
    options = {name: value for name, value in tensors.items() if name not in ("x", "y")}
    answers: dict[str, Any] = {}
    for name in wanted:
        try:
            check_derivative(name, arrays)
            helper, leading = helpers[name]
            answers[name] = helper(*leading, function, tensors["x"], tensors["y"], reduction, **options)
        except Exception as exc:  # the framework's own answer for this derivative
            answers[name] = exc
    return answers


def derivative_source(framework: str, helpers: DerivativeHelpers, quantity: str, header: str,
                      shared: tuple[Callable[..., Any], ...], function: Callable[..., Any]) -> str:
    """A reproducer's source for a further derivative: the framework's `header`, the `shared` functions (its
    conversions and helpers), the loss `function`, the derivative's helper, and `run` (`derivative_driver`)."""
    if quantity not in helpers:
        raise Unsupported(f"{framework}: unknown derivative {quantity!r}; known: {', '.join(helpers)}")
    helper, leading = helpers[quantity]
    return header + source_of(*shared, function, helper) + derivative_driver(function, helper, leading)


def thread_environment(threads: int) -> dict[str, str]:
    """Environment variables that cap the thread pools of the numeric libraries underneath every framework."""
    count = str(threads)
    return {
        "OMP_NUM_THREADS": count,
        "MKL_NUM_THREADS": count,
        "OPENBLAS_NUM_THREADS": count,
        "TF_NUM_INTRAOP_THREADS": count,
        "TF_NUM_INTEROP_THREADS": "1",
    }


class Adapter(ABC):
    """One framework. Subclasses set the class variables and implement `_load`, `runtime_version`, `devices`,
    `evaluate` (the computation), `to_numpy` and `dtype_name` (reading a result back), and `repro_source`.
    `compute` is the same for every framework: the mode check, the API's name, and the `Output`."""

    framework: ClassVar[str]  # import name, as users type it
    distributions: ClassVar[tuple[str, ...]]  # pip distributions whose version is the framework's version
    companions: ClassVar[tuple[str, ...]] = ()  # other distributions whose versions change results
    dtypes: ClassVar[tuple[str, ...]] = ("float64", "float32", "float16", "bfloat16")
    implementations: ClassVar[tuple[Implementation, ...]]
    modes: ClassVar[tuple[str, ...]] = ("eager",)  # "eager" first, then each compiled path the framework has
    autodiff: ClassVar[bool] = True  # whether a function of its arrays has a gradient (`evaluate_function`)
    # for `bisect`: a distribution's release-notes page ({version}, {minor} = major.minor), and how pip asks for
    # one release of it where `name==version` is not enough
    release_pages: ClassVar[Mapping[str, str]] = {}
    pip_spellings: ClassVar[Mapping[str, str]] = {}

    @classmethod
    def is_available(cls) -> bool:
        """Whether the framework can be imported, found without importing it."""
        return importlib.util.find_spec(cls.framework) is not None

    @classmethod
    def unavailable_reason(cls) -> str:
        """Why the framework's rows are `unavailable`, with the fix."""
        return f"{cls.framework} is not installed; install it (pip install 'bce-harness[{cls.framework}]')"

    @classmethod
    def installed_version(cls) -> str | None:
        for name in cls.distributions:
            try:
                return importlib.metadata.version(name)
            except importlib.metadata.PackageNotFoundError:
                continue
        return None

    @classmethod
    def distribution_versions(cls) -> dict[str, str]:
        """The installed versions of the framework's distributions and its companions, from their metadata (the
        framework is not imported)."""
        versions = {}
        for name in (*cls.distributions, *cls.companions):
            try:
                versions[name] = importlib.metadata.version(name)
            except importlib.metadata.PackageNotFoundError:
                continue
        return versions

    @classmethod
    def implementation(cls, impl: str) -> Implementation:
        for candidate in cls.implementations:
            if candidate.impl == impl:
                return candidate
        known = ", ".join(i.impl for i in cls.implementations)
        raise ValueError(f"unknown implementation {impl!r}; {cls.framework} has: {known}")

    compile_cache: str | None = None

    def check_mode(self, mode: str) -> None:
        """`Unsupported` for a mode the adapter does not declare (compute and bench_function call it first)."""
        if mode not in self.modes:
            raise Unsupported(f"{self.framework} has no mode {mode!r}; it has: {', '.join(self.modes)}")

    def load(self, threads: int = 1, compile_cache: str | None = None) -> dict[str, str]:
        """Import and configure the framework in this process; return its version and those of its companions.

        `compile_cache` is a folder the framework may keep compiled programs in between runs (it changes no
        result, only the time spent compiling).
        """
        os.environ.update(thread_environment(threads))
        self.compile_cache = compile_cache
        self._load(threads)
        versions = {self.framework: self.runtime_version()}
        for name in self.companions:
            try:
                versions[name] = importlib.metadata.version(name)
            except importlib.metadata.PackageNotFoundError:
                continue
        return versions

    @abstractmethod
    def _load(self, threads: int) -> None: ...

    @classmethod
    def literal(cls, values: str, dtype: str) -> str:
        """Python that makes an array of this framework from `values` (a list's text) in `dtype`, for a call a
        user can paste; the default: NumPy's."""
        module = "ml_dtypes" if dtype == "bfloat16" else "np"
        return f"np.array({values}, dtype={module}.{dtype})"

    def use_here(self) -> None:
        """Bind the framework in a process whose user has imported and configured it (a test calling the fixture
        `bce_check`): imports only, no thread pools, flags or environment changed. `load` is for workers."""
        raise Unsupported(f"{self.framework}: the adapter runs in its own worker only")

    @abstractmethod
    def runtime_version(self) -> str: ...

    @abstractmethod
    def devices(self) -> list[str]:
        """Devices this framework can use here, from "cpu" and "gpu"."""

    @final
    def compute(
        self,
        impl: Implementation,
        arrays: Mapping[str, np.ndarray],
        reduction: Reduction,
        device: str,
        mode: str = "eager",
        derivatives: tuple[str, ...] = (),
    ) -> Output:
        """Run `impl` on `arrays` (x, y and optionally weight, pos_weight, already in the dtype under test) and
        return the loss and its gradient as exact float64 NumPy arrays.

        `mode` is "eager" or one of the adapter's compiled `modes`; a compiled mode must prove in
        `Output.compiled` that compiled code ran (evidence that can fail: a count of executions of the compiled
        program), and must raise rather than fall back to eager. Raises `Unsupported` for a combination the
        framework cannot do; any other exception is the framework's own answer and is recorded as such.
        `derivatives` names further derivatives (DERIVATIVES) to compute as well, eagerly.
        """
        self.check_mode(mode)
        api = impl.api_for("pos_weight" in arrays)
        loss, grad, evidence = self.evaluate(impl, arrays, reduction, device, mode)
        grad_error = None
        if isinstance(grad, Exception):  # the loss computed, its autodiff raised (a kernel without a backward)
            grad_error, grad = (type(grad).__name__, " ".join(str(grad).split())[:500]), None
        elif grad is None and impl.differentiable:
            raise RuntimeError(f"{self.framework}'s autodiff returned no gradient with respect to the input")
        further = self._further(impl, arrays, reduction, device, derivatives) if derivatives else {}
        return Output(loss=self.to_numpy(loss), grad=None if grad is None else self.to_numpy(grad),
                      out_dtype=self.dtype_name(loss), grad_dtype=None if grad is None else self.dtype_name(grad),
                      api=api, compiled=evidence, derivatives=further, grad_error=grad_error)

    def _further(self, impl: Implementation, arrays: Mapping[str, np.ndarray], reduction: Reduction, device: str,
                 wanted: tuple[str, ...]) -> dict[str, Derivative]:
        """`derivatives`' answers as float64 arrays, or as the reason there are none."""
        try:
            answers = self.derivatives(impl, arrays, reduction, device, wanted)
        except Exception as exc:  # one failure for all of them: each says so
            answers = dict.fromkeys(wanted, exc)
        out = {}
        for name in wanted:
            answer = answers.get(name, Unsupported(f"{self.framework}: the adapter did not compute {name}"))
            if not isinstance(answer, BaseException):
                try:  # a result that cannot be read back costs this derivative only
                    out[name] = Derivative(self.to_numpy(answer), self.dtype_name(answer))
                    continue
                except Exception as exc:
                    answer = exc
            status = "unsupported" if isinstance(answer, Unsupported) else "error"
            text = " ".join(str(answer).split())[:2000]
            out[name] = Derivative(None, status=status, error_type=type(answer).__name__, message=text)
        return out

    def derivatives(self, impl: Implementation, arrays: Mapping[str, np.ndarray], reduction: Reduction, device: str,
                    wanted: tuple[str, ...]) -> dict[str, Any]:
        """The further derivatives named in `wanted` (see DERIVATIVES) of `impl`'s reduced loss on `arrays`, eager,
        through the framework's own autodiff: name → the framework's array, or the exception its autodiff raised
        (an `Unsupported` where the framework has no such derivative, with the reason). The default: none."""
        why = Unsupported(f"{self.framework}: the adapter computes no derivatives beyond the gradient")
        return dict.fromkeys(wanted, why)

    # --- a user's own loss (implementations.own): optional for third-party adapters ---

    def evaluate_function(self, function: Callable[..., Any], arrays: Mapping[str, np.ndarray], reduction: Reduction,
                          device: str, with_grad: bool = True) -> Result:
        """Eagerly, a loss written with this framework's operations, `function(x, y, reduction, **options)` → the
        reduced loss, on `arrays` moved to `device`, with the gradient of its sum with respect to x by the
        framework's autodiff (None without `with_grad`, or for a framework without one). `Unsupported` where the
        adapter cannot."""
        raise Unsupported(f"{self.framework}: the adapter cannot run a function of its tensors")

    def function_derivatives(self, function: Callable[..., Any], arrays: Mapping[str, np.ndarray],
                             reduction: Reduction, device: str, wanted: tuple[str, ...]) -> dict[str, Any]:
        """Like `derivatives`, of `function` (as `evaluate_function` calls it)."""
        why = Unsupported(f"{self.framework}: the adapter computes no derivatives of a function of its tensors")
        return dict.fromkeys(wanted, why)

    @abstractmethod
    def evaluate(self, impl: Implementation, arrays: Mapping[str, np.ndarray], reduction: Reduction, device: str,
                 mode: str) -> Result:
        """The one computation an adapter fills in: `impl`'s reduced loss on `arrays` moved to `device`, and the
        gradient of its sum with respect to x through the framework's own autodiff, in `mode`."""

    @staticmethod
    @abstractmethod
    def to_numpy(values: Any) -> np.ndarray:
        """A framework result as a float64 NumPy array (exactly: every dtype here embeds in float64)."""

    @staticmethod
    @abstractmethod
    def dtype_name(values: Any) -> str:
        """A framework result's dtype by its NumPy name (float32, bfloat16, …)."""

    @abstractmethod
    def repro_source(self, impl: Implementation, mode: str) -> str:
        """Standalone Python (the framework and NumPy only) defining `run(x, y, weight, pos_weight)` → (loss, grad)
        as float64 NumPy arrays, computed exactly as `compute` does. The script around it defines DTYPE, Y_DTYPE,
        W_DTYPE (weight and pos_weight) and REDUCTION, and passes float64 arrays whose values are exact in those
        dtypes."""

    def repro_derivative_source(self, impl: Implementation, quantity: str) -> str:
        """Like `repro_source`, but `run` returns (loss, the further derivative `quantity`) computed exactly as
        `derivatives` does, eagerly. `Unsupported` where the adapter computes none."""
        raise Unsupported(f"{self.framework}: the adapter computes no {quantity}")

    # --- benchmarks: optional for third-party adapters (the default says the adapter has none) ---

    def bench_function(
        self, impl: Implementation, arrays: Mapping[str, np.ndarray], device: str, mode: str, direction: Direction,
    ) -> Callable[[], Any]:
        """A function of no arguments that computes the mean loss of `impl` ("forward"), or the mean loss and its
        gradient with respect to x ("forward_backward"), on `arrays` moved to `device` now, before any timing.

        It returns the framework's own result objects without waiting for them (`sync` waits). For a compiled
        `mode` the function is fresh: its first call traces and compiles, and must raise rather than fall back to
        eager. Raises `Unsupported` for what the framework cannot do.
        """
        raise Unsupported(f"{self.framework}: the adapter has no benchmark support")

    def sync(self, result: Any, device: str) -> None:
        """Wait until the work behind `result` (what a bench function returned) has finished on `device`.

        The harness calls it inside every timed call. The default suits frameworks that compute synchronously.
        """
        return None

    def read_function(self, nbytes: int, device: str) -> Callable[[], Any] | None:
        """A STREAM-style read of `nbytes` bytes already on `device` (the sum of a float32 buffer), for the
        bandwidth baseline; None where the adapter has none."""
        return None

    def native_timer_label(self, device: str) -> str:
        """The name of the timer `native_timer` uses on `device`: the framework's own, else Python's timeit."""
        return "timeit"

    def native_timer(self, function: Callable[[], Any], device: str, threads: int, min_run_time: float) -> float:
        """Median seconds per call of `function` by the framework's own benchmark timer, to cross-check the
        harness's timing: here Python's `timeit` around the call and its `sync` (a framework with a timer of its
        own overrides this). Blocks of calls at least 1/10 of `min_run_time` long, for `min_run_time` in all."""
        import timeit

        timer = timeit.Timer(lambda: self.sync(function(), device))
        number = 1
        while (first := timer.timeit(number)) < min_run_time / 10 and number < 1 << 30:
            number *= 10
        seconds = [first / number]
        while sum(seconds) * number < min_run_time or (len(seconds) < 3 and first < min_run_time):
            seconds.append(timer.timeit(number) / number)
        return float(statistics.median(seconds))

    def thread_settings(self) -> dict[str, int]:
        """The framework's effective thread-pool sizes after `load`, by its own names for them."""
        return {}

    def compile_stats(self) -> dict[str, float]:
        """What the framework has compiled in this process so far, by its own counters (for the audit's profile):
        `programs` compiled, `cached` of them read from its persistent cache, and the seconds spent (`compile_s`,
        `lower_s`); {} where it keeps no such counters."""
        return {}

    def allocator_peak(self, device: str, run: Callable[[], Any]) -> int:
        """Bytes the framework's allocator held on `device` at its peak while `run()` executed, beyond what it
        held before. Raises `Unsupported` (with the reason) where the framework keeps no such statistics."""
        raise Unsupported(f"{self.framework} reports no allocator statistics for {device!r}")
