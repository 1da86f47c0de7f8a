"""Your own loss as an implementation: a function of NumPy arrays or of a framework's tensors, judged like the
frameworks' own APIs (`audit --callable`, the pytest fixture `bce_check`).

The function takes `(x, y)`, and `weight=` and `pos_weight=` when its signature names them (or takes **kwargs).
With a parameter named `reduction` it is called with "none", "mean" and "sum" and returns that reduced loss;
without one it returns the per-element loss (its rows are `none`'s), unless a fixed reduction is declared. Its
arrays are the framework's (NumPy's for `numpy`) in the dtype under test, and the gradient of its sum with
respect to x comes from the framework's autodiff (NumPy has none: its gradient rows are `unsupported`); where the loss
computes but the autodiff raises (a kernel without a backward), the loss is judged and the gradient is an error.

A spec names it for another process, `module:function[:form[:framework]]`: form `logits` (default) or `probs`;
framework `numpy`, `torch`, `jax` or `tensorflow`, by default the one the module imports (read from its source,
not imported; a package's `__init__` is, to find a submodule). Workers find the specs in the environment
variable BCE_HARNESS_CALLABLES (`;`-separated), which the registry reads.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import importlib
import importlib.util
import inspect
import keyword
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from cases.errors import BadInput
from implementations.base import (
    REDUCTIONS,
    Adapter,
    Implementation,
    Reduction,
    Result,
    Unsupported,
    source_of,
)
from implementations.numpy_adapter import REPRO_CAST

__all__ = ["CALLABLES_ENV", "FRAMEWORKS", "BadCallable", "OwnAdapter", "OwnSpec", "framework_of", "label_of",
           "own_adapter", "spec_adapters"]

CALLABLES_ENV = "BCE_HARNESS_CALLABLES"
FRAMEWORKS = ("numpy", "torch", "jax", "tensorflow")
FORMS = ("logits", "probs")
_IMPORT_ROOTS = {"torch": "torch", "jax": "jax", "tensorflow": "tensorflow", "keras": "tensorflow"}
_ROOTS_WITH_NUMPY = {**_IMPORT_ROOTS, "numpy": "numpy"}


class BadCallable(BadInput):
    """A spec or function the harness cannot use: the message is one line that says what to change."""


@dataclass(frozen=True, slots=True)
class OwnSpec:
    """Where a user's function lives and how it is called."""

    module: str
    function: str
    form: str = "logits"
    framework: str = ""  # "" until resolved: the framework its module imports
    reduction: str = ""  # "": by its signature; "none", "mean" or "sum": the one reduction it returns

    @classmethod
    def parse(cls, text: str) -> OwnSpec:
        """`module:function[:form[:framework]]`: the module found and the function defined in it (its source
        read, not run), the framework found in the module's imports when absent."""
        parts = text.strip().split(":")
        if len(parts) < 2 or len(parts) > 4 or not all(parts[:2]):
            raise BadCallable(f"--callable {text!r}: give module:function[:form[:framework]], e.g. "
                              "mymodule:my_bce:logits")
        found = _module_source(parts[0])
        if found is not None and _definition_in(found, parts[1]) is None:
            raise BadCallable(f"--callable {text!r}: {parts[0]} defines no function {parts[1]!r}")
        framework = parts[3] if len(parts) > 3 else _imported_framework(parts[0], found)
        return cls(parts[0], parts[1], parts[2] if len(parts) > 2 and parts[2] else "logits", framework).checked()

    def checked(self) -> OwnSpec:
        """The spec, or `BadCallable` for a form, framework or reduction the harness does not know."""
        for noun, value, known in (("form", self.form, FORMS), ("framework", self.framework, FRAMEWORKS),
                                   ("reduction", self.reduction, ("", *REDUCTIONS))):
            if value not in known:
                raise BadCallable(f"{self.module}:{self.function}: unknown {noun} {value!r}; give one of "
                                  f"{', '.join(k for k in known if k)}")
        return self

    def text(self) -> str:
        return f"{self.module}:{self.function}:{self.form}:{self.framework}"

    @property
    def name(self) -> str:
        """The framework name its rows stand under: the function's name (dots would split an impl id)."""
        return self.function.replace(".", "_")


def label_of(function: Callable[..., Any], name: str | None = None) -> str:
    """A name for a function object's rows and repro calls: an identifier (a lambda's is `loss`)."""
    target = _unwrapped(function)
    label = re.sub(r"\W+", "_", name or getattr(target, "__name__", "") or "").strip("_")
    return label if label.isidentifier() and not keyword.iskeyword(label) else "loss"


# ---------------------------------------------------------------------------------------- its source

def _module_source(module: str) -> tuple[str, ast.Module] | None:
    """A module's source and syntax tree, found without running it (None: a compiled module)."""
    try:
        found = importlib.util.find_spec(module)
    except Exception as exc:  # a package's __init__ runs to find its submodule: what it raises is the answer
        raise BadCallable(f"--callable: cannot find module {module!r} ({type(exc).__name__}: {exc}); put it on "
                          "PYTHONPATH") from None
    if found is None or found.origin is None:
        raise BadCallable(f"--callable: no module {module!r} on the path; put its folder on PYTHONPATH")
    try:
        with open(found.origin, encoding="utf-8") as file:
            source = file.read()
        return source, ast.parse(source)
    except (OSError, SyntaxError, UnicodeDecodeError):
        return None


def _definition_in(found: tuple[str, ast.Module], function: str) -> ast.FunctionDef | ast.AsyncFunctionDef | None:
    """The definition of `function` (`name` or `Class.method`) in a module's tree."""
    name = function.split(".")[-1]
    for node in ast.walk(found[1]):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == name:
            return node
    return None


def _definition(spec: OwnSpec) -> tuple[str, ast.FunctionDef | ast.AsyncFunctionDef | None]:
    """The function's source (its module's where the definition is not found) and its definition."""
    found = _module_source(spec.module)
    if found is None:
        return "", None
    node = _definition_in(found, spec.function)
    return (ast.get_source_segment(found[0], node) or found[0]) if node else found[0], node


def _imported_framework(module: str, found: tuple[str, ast.Module] | None) -> str:
    """The framework a module imports at its top level, from its source: numpy when it imports none (or is
    compiled), `BadCallable` when it imports several."""
    roots = set()
    for node in found[1].body if found else []:
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
            [node.module] if isinstance(node, ast.ImportFrom) and node.module else []
        roots |= {_IMPORT_ROOTS[name.split(".")[0]] for name in names if name.split(".")[0] in _IMPORT_ROOTS}
    if len(roots) > 1:
        raise BadCallable(f"--callable: {module} imports {' and '.join(sorted(roots))}; name the framework its "
                          f"function computes in: {module}:FUNCTION:FORM:FRAMEWORK")
    return roots.pop() if roots else "numpy"


# ------------------------------------------------------------------------------------ a function object

def _unwrapped(function: Any) -> Any:
    """The plain function behind a partial, a bound method or a callable object."""
    while True:
        if isinstance(function, functools.partial):
            function = function.func
        elif inspect.ismethod(function):
            function = function.__func__
        elif not inspect.isfunction(function) and inspect.isfunction(call := inspect.getattr_static(
                type(function), "__call__", None)):
            function = call
        else:
            return function


def framework_of(function: Callable[..., Any]) -> str:
    """The framework a function object computes in: that of the modules its code names (`torch.sigmoid`,
    `np.log`), with those of the functions of its module that it calls; else the one its module imports (NumPy
    counts; none: numpy). `BadCallable` where that leaves several to choose from, or nothing to read."""
    target = _unwrapped(function)
    if not inspect.isfunction(target):
        raise BadCallable(f"cannot read which framework {function!r} computes in; pass framework=")
    used = _roots(_modules_used(target, set()))
    if len(used - {"numpy"}) > 1:
        raise BadCallable(f"{target.__qualname__} uses {' and '.join(sorted(used))}; pass framework=")
    if used:
        return min(used - {"numpy"} or used)
    imported = _roots(v for v in target.__globals__.values() if inspect.ismodule(v))
    if len(imported) > 1:
        raise BadCallable(f"cannot tell which of {' and '.join(sorted(imported))} {target.__qualname__} computes "
                          "in; pass framework=")
    return imported.pop() if imported else "numpy"


def module_of(function: Callable[..., Any]) -> str:
    return getattr(_unwrapped(function), "__module__", None) or "__main__"


def _roots(modules: Any) -> set[str]:
    return {_ROOTS_WITH_NUMPY[root] for root in (m.__name__.split(".")[0] for m in modules)
            if root in _ROOTS_WITH_NUMPY}


def _modules_used(function: Any, seen: set[int]) -> list[Any]:
    """The modules a function's code names, and those of the functions of its own module that it calls."""
    if id(function) in seen or not hasattr(function, "__code__"):
        return []
    seen.add(id(function))
    names = getattr(function, "__globals__", {})
    found: list[Any] = []
    for name in _code_names(function.__code__):
        value = names.get(name)
        if inspect.ismodule(value):
            found.append(value)
        elif inspect.isfunction(value) and value.__module__ == function.__module__:
            found += _modules_used(value, seen)
    return found


def _code_names(code: Any) -> list[str]:
    """The global names a code object and the functions nested in it use."""
    nested = [name for const in code.co_consts if inspect.iscode(const) for name in _code_names(const)]
    return [*code.co_names, *nested]


def _accepts(function: Callable[..., Any], name: str, any_keyword: bool = True) -> bool:
    """Whether the function takes the keyword `name` (by name, or through **kwargs where `any_keyword`)."""
    try:
        parameters = inspect.signature(function).parameters
    except (TypeError, ValueError):  # a builtin or C function without a signature: positional (x, y) only
        return False
    return name in parameters or (any_keyword and any(p.kind is inspect.Parameter.VAR_KEYWORD
                                                      for p in parameters.values()))


# ------------------------------------------------------------------------------------------ the adapter

class OwnAdapter(Adapter):
    """A user's function, on the adapter of the framework it computes in (its `base`), which converts the arrays,
    moves them to the device and differentiates. Subclasses are made by `own_adapter`."""

    spec: ClassVar[OwnSpec]
    target: ClassVar[Callable[..., Any] | None] = None  # the function object; None: imported by `_load`
    base_class: ClassVar[type[Adapter]]
    returns: ClassVar[str]  # the one reduction the function returns; "": it takes `reduction`

    @classmethod
    def is_available(cls) -> bool:
        return cls.target is not None or importlib.util.find_spec(cls.spec.module.split(".")[0]) is not None

    @classmethod
    def unavailable_reason(cls) -> str:
        return f"module {cls.spec.module!r} of {cls.spec.function} is not on the path; put its folder on PYTHONPATH"

    @classmethod
    def installed_version(cls) -> str | None:
        """The base framework's version and the digest of the function's source: a changed function is a new
        version, as a framework's release is."""
        return f"{cls.base_class.installed_version() or ''}+{cls._digest()}"

    @classmethod
    def _digest(cls) -> str:
        """The function's own source, hashed (its module's where it is not found)."""
        try:
            source = inspect.getsource(_unwrapped(cls.target)) if cls.target is not None else _definition(cls.spec)[0]
        except (OSError, TypeError, BadCallable):
            return "source-unknown"
        return "src." + hashlib.sha256(source.encode()).hexdigest()[:10]

    def _load(self, threads: int) -> None:
        self.base = self.base_class()
        self.base.compile_cache = self.compile_cache
        self.base._load(threads)
        self.function = self.target if self.target is not None else _imported(self.spec)

    def attach(self) -> OwnAdapter:
        """Use the function in this process as it is (the framework already imported and configured by the user):
        no thread settings, no environment changes."""
        self.base = self.base_class()
        self.base.use_here()
        self.function = self.target if self.target is not None else _imported(self.spec)
        return self

    def runtime_version(self) -> str:
        return f"{self.base.runtime_version()}+{self._digest()}"

    def devices(self) -> list[str]:
        return self.base.devices()

    def evaluate(self, impl: Implementation, arrays: Mapping[str, np.ndarray], reduction: Reduction, device: str,
                 mode: str) -> Result:
        """The loss and its gradient; where that raises but the loss alone computes, the loss and what the
        autodiff raised (a forward-only kernel's loss is still judged)."""
        bound = self._bound(arrays, reduction)
        try:
            return self.base.evaluate_function(bound, arrays, reduction, device)
        except Unsupported:
            raise
        except Exception as exc:
            loss = self.base.evaluate_function(bound, arrays, reduction, device, with_grad=False).loss
            return Result(loss, exc)

    def derivatives(self, impl: Implementation, arrays: Mapping[str, np.ndarray], reduction: Reduction, device: str,
                    wanted: tuple[str, ...]) -> dict[str, Any]:
        return self.base.function_derivatives(self._bound(arrays, reduction), arrays, reduction, device, wanted)

    def _bound(self, arrays: Mapping[str, np.ndarray], reduction: str) -> Callable[..., Any]:
        """The user's function as the adapters call a loss: `(x, y, reduction, **options)` → the reduced loss."""
        function, spec, returns = self.function, self.spec, self.returns
        for option in ("weight", "pos_weight"):
            if option in arrays and not _accepts(function, option):
                raise Unsupported(f"{spec.function} takes no {option}")
        if returns and reduction != returns:
            raise Unsupported(f"{spec.function} returns the {returns} loss only")

        def bound(x: Any, y: Any, reduction: str, **options: Any) -> Any:
            return function(x, y, **options) if returns else function(x, y, reduction=reduction, **options)

        return bound

    def to_numpy(self, values: Any) -> np.ndarray:  # type: ignore[override]
        return self.base.to_numpy(values)

    def dtype_name(self, values: Any) -> str:  # type: ignore[override]
        return self.base.dtype_name(values)

    @classmethod
    def literal(cls, values: str, dtype: str) -> str:
        return cls.base_class.literal(values, dtype)

    def repro_source(self, impl: Implementation, mode: str) -> str:
        """`run` with your function imported from its module (the script runs where that module imports), through
        the base framework's own conversions and autodiff, as the audit called it."""
        spec = self.spec
        if self.target is not None:
            raise Unsupported(f"{spec.function} was given as an object: call it on the minimal example")
        keywords = "**options" if self.returns else "reduction=reduction, **options"
        wrapper = (f"from {spec.module} import {spec.function.split('.')[0]}  # run this script where {spec.module} "
                   f"imports\n\n\ndef own_loss(x, y, reduction, **options):\n"
                   f"    return {spec.function}(x, y, {keywords})\n")
        if not self.base_class.autodiff:
            return REPRO_CAST + wrapper + _NUMPY_RUN
        base = importlib.import_module(self.base_class.__module__)
        header = getattr(base, "_REPRO_HEADER", "")
        return header + source_of(base.from_numpy, base.to_numpy, base.loss_and_grad) + "\n" + wrapper + _RUN


_RUN = '''

def run(x, y, weight, pos_weight):
    options = {name: from_numpy(value, W_DTYPE) for name, value in (("weight", weight), ("pos_weight", pos_weight))
               if value is not None}
    loss, grad = loss_and_grad(own_loss, from_numpy(x, DTYPE), from_numpy(y, Y_DTYPE), REDUCTION, **options)
    return to_numpy(loss), to_numpy(grad)
'''
_NUMPY_RUN = '''

def run(x, y, weight, pos_weight):  # NumPy has no autodiff: the loss only
    options = {name: cast(value, W_DTYPE) for name, value in (("weight", weight), ("pos_weight", pos_weight))
               if value is not None}
    loss = own_loss(cast(x, DTYPE), cast(y, Y_DTYPE), REDUCTION, **options)
    return np.asarray(loss, dtype=np.float64), None
'''


def _imported(spec: OwnSpec) -> Callable[..., Any]:
    module = importlib.import_module(spec.module)
    found: Any = module
    for part in spec.function.split("."):
        found = getattr(found, part)
    if not callable(found):
        raise BadCallable(f"{spec.module}:{spec.function} is not callable")
    return found


def own_adapter(spec: OwnSpec, base: type[Adapter], function: Callable[..., Any] | None = None) -> type[OwnAdapter]:
    """An adapter class for one user function on `base` (its framework's adapter class): imported from `spec` in
    the worker, or the given object."""
    returns = spec.reduction or ("" if _takes_reduction(spec, function) else "none")
    where = f"{spec.module}:{spec.function}"
    implementation = Implementation(
        f"{spec.name}.{spec.form}", "probs" if spec.form == "probs" else "logits",
        api=f"{where}(x, y) (your own, on {spec.framework} arrays)",
        api_pos_weight=f"{where}(x, y, pos_weight=p) (your own, on {spec.framework} arrays)",
        reductions=(returns,) if returns else REDUCTIONS, differentiable=base.autodiff)
    attributes = {"framework": spec.name, "distributions": base.distributions, "dtypes": base.dtypes,
                  "implementations": (implementation,), "spec": spec, "returns": returns,
                  "target": None if function is None else staticmethod(function), "base_class": base}
    return type(f"Own_{spec.name}", (OwnAdapter,), attributes)


def _takes_reduction(spec: OwnSpec, function: Callable[..., Any] | None) -> bool:
    """Whether the function has a parameter named `reduction` (**kwargs is not one), read from its source when
    it is not at hand (no import)."""
    if function is not None:
        return _accepts(function, "reduction", any_keyword=False)
    node = _definition(spec)[1]
    if node is None:
        return False
    arguments = node.args
    return "reduction" in [a.arg for a in (*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs)]


def spec_adapters(text: str, bases: Mapping[str, type[Adapter]]) -> dict[str, type[Adapter]]:
    """The adapters of the `;`-separated specs in `text` (BCE_HARNESS_CALLABLES), by framework name, each on its
    framework's adapter class in `bases`."""
    found: dict[str, type[Adapter]] = {}
    for item in filter(None, (part.strip() for part in text.split(";"))):
        spec = OwnSpec.parse(item)
        if spec.name in found:
            raise BadCallable(f"two callables are named {spec.name!r}; rename one of them")
        if spec.name in bases:
            raise BadCallable(f"your function {spec.name!r} has the name of a framework; rename it")
        found[spec.name] = own_adapter(spec, bases[spec.framework])
    return found
