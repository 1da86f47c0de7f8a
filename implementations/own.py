"""Your own loss as an implementation: a function of NumPy arrays or of a framework's tensors, judged like the
frameworks' own APIs (`audit --callable`, the pytest fixture `bce_check`).

The function takes `(x, y)`, and `weight=` and `pos_weight=` when its signature names them (or takes **kwargs);
with a `reduction` parameter it is called with "none", "mean" and "sum" and returns that reduced loss, without
one it returns the per-element loss (its rows are `none`'s), unless a fixed reduction is declared. Its arrays
are the framework's (NumPy's for `numpy`) in the dtype under test, and the gradient of its sum with respect to
x comes from the framework's autodiff (NumPy has none: its rows judge the loss only).

A spec names it for another process, `module:function[:form[:framework]]`: form `logits` (default) or `probs`;
framework `numpy`, `torch`, `jax` or `tensorflow`, by default the one the module imports (read from its source,
not imported). Workers find the specs in the environment variable BCE_HARNESS_CALLABLES (`;`-separated), which
the registry reads.
"""

from __future__ import annotations

import ast
import hashlib
import importlib
import importlib.util
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from implementations.base import (
    REDUCTIONS,
    Adapter,
    Implementation,
    Reduction,
    Result,
    Unsupported,
    source_of,
)

__all__ = ["CALLABLES_ENV", "FRAMEWORKS", "BadCallable", "OwnAdapter", "OwnSpec", "own_adapter", "spec_adapters"]

CALLABLES_ENV = "BCE_HARNESS_CALLABLES"
FRAMEWORKS = ("numpy", "torch", "jax", "tensorflow")
_FORMS = ("logits", "probs")
_IMPORT_ROOTS = {"torch": "torch", "jax": "jax", "tensorflow": "tensorflow", "keras": "tensorflow"}
_ROOTS_WITH_NUMPY = {**_IMPORT_ROOTS, "numpy": "numpy"}


class BadCallable(ValueError):
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
        """`module:function[:form[:framework]]`, with the framework found in the module's source when absent."""
        parts = text.strip().split(":")
        if len(parts) < 2 or len(parts) > 4 or not all(parts[:2]):
            raise BadCallable(f"--callable {text!r}: give module:function[:form[:framework]], e.g. "
                              "mymodule:my_bce:logits")
        form = parts[2] if len(parts) > 2 and parts[2] else "logits"
        if form not in _FORMS:
            raise BadCallable(f"--callable {text!r}: unknown form {form!r}; give logits or probs")
        framework = parts[3] if len(parts) > 3 else _imported_framework(parts[0])
        if framework not in FRAMEWORKS:
            raise BadCallable(f"--callable {text!r}: unknown framework {framework!r}; give one of "
                              f"{', '.join(FRAMEWORKS)}")
        return cls(parts[0], parts[1], form, framework)

    def text(self) -> str:
        return f"{self.module}:{self.function}:{self.form}:{self.framework}"

    @property
    def name(self) -> str:
        """The framework name its rows stand under: the function's name (dots would split an impl id)."""
        return self.function.replace(".", "_")


def _module_source(module: str) -> tuple[str, ast.Module] | None:
    """A module's source and syntax tree, found without importing it (None: a compiled module)."""
    try:
        found = importlib.util.find_spec(module)
    except (ImportError, ValueError) as exc:
        raise BadCallable(f"--callable: cannot find module {module!r} ({exc}); put it on PYTHONPATH") from None
    if found is None or found.origin is None:
        raise BadCallable(f"--callable: no module {module!r} on the path; put its folder on PYTHONPATH")
    try:
        with open(found.origin, encoding="utf-8") as file:
            source = file.read()
        return source, ast.parse(source)
    except (OSError, SyntaxError, UnicodeDecodeError):
        return None


def _imported_framework(module: str) -> str:
    """The framework a module imports at its top level, read from its source without importing it: numpy when it
    imports none (or is compiled), an error when it imports several."""
    found = _module_source(module)
    roots = set()
    for node in found[1].body if found else []:
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
            [node.module] if isinstance(node, ast.ImportFrom) and node.module else []
        roots |= {_IMPORT_ROOTS[name.split(".")[0]] for name in names if name.split(".")[0] in _IMPORT_ROOTS}
    if len(roots) > 1:
        raise BadCallable(f"--callable: {module} imports {' and '.join(sorted(roots))}; name the framework its "
                          f"function computes in: {module}:FUNCTION:FORM:FRAMEWORK")
    return roots.pop() if roots else "numpy"


def _definition(spec: OwnSpec) -> tuple[str, ast.FunctionDef | ast.AsyncFunctionDef | None]:
    """The function's source (its module's where the definition is not found) and its definition, read without
    importing the module."""
    found = _module_source(spec.module)
    if found is None:
        return "", None
    source, tree = found
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == spec.function.split(".")[-1]:
            return ast.get_source_segment(source, node) or source, node
    return source, None


def framework_of(function: Callable[..., Any]) -> str:
    """The framework a function object computes in: that of the modules its code names (`torch.sigmoid`,
    `np.log`), with those of the functions of its module that it calls; else the one its module imports (NumPy
    counts; none: numpy). `BadCallable` where that leaves several to choose from."""
    used = _roots(_modules_used(function, set()))
    if len(used - {"numpy"}) > 1:
        raise BadCallable(f"{function.__qualname__} uses {' and '.join(sorted(used))}; pass framework=")
    if used:
        return min(used - {"numpy"} or used)
    imported = _roots(v for v in getattr(function, "__globals__", {}).values() if inspect.ismodule(v))
    if len(imported) > 1:
        raise BadCallable(f"cannot tell which of {' and '.join(sorted(imported))} {function.__qualname__} computes "
                          "in; pass framework=")
    return imported.pop() if imported else "numpy"


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


def _accepts(function: Callable[..., Any], name: str) -> bool:
    try:
        parameters = inspect.signature(function).parameters
    except (TypeError, ValueError):  # a builtin or C function without a signature: positional (x, y) only
        return False
    return name in parameters or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())


class OwnAdapter(Adapter):
    """A user's function, on the adapter of the framework it computes in (its `base`), which converts the arrays,
    moves them to the device and differentiates. Subclasses are made by `own_adapter` and `spec_adapters`."""

    spec: ClassVar[OwnSpec]
    target: ClassVar[Callable[..., Any] | None] = None  # the function object; None: imported by `_load`
    base_class: ClassVar[type[Adapter]]

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
            source = inspect.getsource(cls.target) if cls.target is not None else _definition(cls.spec)[0]
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
        return self.base.evaluate_function(self._bound(arrays, reduction), arrays, reduction, device)

    def derivatives(self, impl: Implementation, arrays: Mapping[str, np.ndarray], reduction: Reduction, device: str,
                    wanted: tuple[str, ...]) -> dict[str, Any]:
        return self.base.function_derivatives(self._bound(arrays, reduction), arrays, reduction, device, wanted)

    def _bound(self, arrays: Mapping[str, np.ndarray], reduction: str) -> Callable[..., Any]:
        """The user's function as the adapters call a loss: `(x, y, reduction, **options)` → the reduced loss."""
        function, spec = self.function, self.spec
        for option in ("weight", "pos_weight"):
            if option in arrays and not _accepts(function, option):
                raise Unsupported(f"{spec.function} takes no {option}")
        declared = spec.reduction or ("" if _accepts(function, "reduction") else "none")
        if declared and reduction != declared:
            raise Unsupported(f"{spec.function} returns the {declared} loss only")

        def bound(x: Any, y: Any, reduction: str, **options: Any) -> Any:
            return function(x, y, **options) if declared else function(x, y, reduction=reduction, **options)

        return bound

    def to_numpy(self, values: Any) -> np.ndarray:  # type: ignore[override]
        return self.base.to_numpy(values)

    def dtype_name(self, values: Any) -> str:  # type: ignore[override]
        return self.base.dtype_name(values)

    def repro_source(self, impl: Implementation, mode: str) -> str:
        """`run` with your function imported from its module (the script runs where that module imports), through
        the base framework's own conversions and autodiff, as the audit called it."""
        spec = self.spec
        if (self.target is not None and spec.module in ("__main__", "")) or "<" in spec.function:
            raise Unsupported(f"{spec.function} cannot be imported by a script; call it on the minimal example")
        top = spec.function.split(".")[0]
        keywords = "**options" if impl.reductions != REDUCTIONS or spec.reduction else \
            "reduction=reduction, **options"
        wrapper = (f"from {spec.module} import {top}  # run this script where {spec.module} imports\n\n\n"
                   f"def own_loss(x, y, reduction, **options):\n    return {spec.function}(x, y, {keywords})\n")
        if spec.framework == "numpy":
            return _NUMPY_REPRO + wrapper + _NUMPY_RUN
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
_NUMPY_REPRO = """DTYPES = {'float64': np.float64, 'float32': np.float32, 'float16': np.float16, 'int64': np.int64,
          'bool': np.bool_}
if 'bfloat16' in (DTYPE, Y_DTYPE, W_DTYPE):
    import ml_dtypes
    DTYPES['bfloat16'] = ml_dtypes.bfloat16

"""
_NUMPY_RUN = '''

def run(x, y, weight, pos_weight):  # NumPy has no autodiff: the loss only
    def cast(values, name):
        return None if values is None else np.asarray(values, dtype=np.float64).astype(DTYPES.get(name, name))

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


def own_adapter(spec: OwnSpec, function: Callable[..., Any] | None = None) -> type[OwnAdapter]:
    """An adapter class for one user function: imported from `spec` in the worker, or the given object."""
    from implementations.registry import BUILTIN_ADAPTERS, _load_class

    base = _load_class(BUILTIN_ADAPTERS[spec.framework])
    reductions = (spec.reduction,) if spec.reduction else REDUCTIONS if _signature_has_reduction(spec, function) \
        else ("none",)
    where = f"{spec.module}:{spec.function}"
    implementation = Implementation(
        f"{spec.name}.{spec.form}", "probs" if spec.form == "probs" else "logits",
        api=f"{where}(x, y) (your own, on {spec.framework} arrays)",
        api_pos_weight=f"{where}(x, y, pos_weight=p) (your own, on {spec.framework} arrays)",
        reductions=reductions, differentiable=spec.framework != "numpy")
    attributes = {"framework": spec.name, "distributions": base.distributions, "dtypes": base.dtypes,
                  "implementations": (implementation,), "spec": spec,
                  "target": None if function is None else staticmethod(function), "base_class": base}
    return type(f"Own_{spec.name}", (OwnAdapter,), attributes)


def _signature_has_reduction(spec: OwnSpec, function: Callable[..., Any] | None) -> bool:
    """Whether the function takes `reduction`, read from its source when it is not at hand (no import)."""
    if function is not None:
        return _accepts(function, "reduction")
    node = _definition(spec)[1]
    if node is None:
        return False
    arguments = node.args
    names = [a.arg for a in (*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs)]
    return "reduction" in names or arguments.kwarg is not None


def spec_adapters(text: str) -> dict[str, type[Adapter]]:
    """The adapters of the `;`-separated specs in `text` (BCE_HARNESS_CALLABLES), by framework name."""
    found: dict[str, type[Adapter]] = {}
    for item in filter(None, (part.strip() for part in text.split(";"))):
        spec = OwnSpec.parse(item)
        if spec.name in found:
            raise BadCallable(f"two callables are named {spec.name!r}; rename one of them")
        found[spec.name] = own_adapter(spec)
    return found
