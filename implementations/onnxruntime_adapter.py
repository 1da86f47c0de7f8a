"""ONNX Runtime: torch's `F.binary_cross_entropy_with_logits` and `F.binary_cross_entropy` exported by
`torch.onnx.export` (the dynamo exporter, torch 2.13's default: torch.export, torch's decompositions, onnxscript's
torchlib; the TorchScript exporter is deprecated and writes another graph) and run by an
`onnxruntime.InferenceSession` on the CPU, as a model is shipped for inference.

Inference has no gradient. An export costs about half a second, so the implementations run on the cases tagged
"path" only, and each exported model is kept: in memory, and on disk under the worker's compile cache, one per
(implementation, reduction, every input's name, shape and dtype, the exporter's versions and this code). torch is
imported only to export: a run whose models are all cached imports onnxruntime alone.

The module-level functions are what runs, and their source is what a reproducer prints.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any, ClassVar

import numpy as np

from implementations.base import Adapter, Implementation, Reduction, Result, Unsupported, source_of

__all__ = ["OnnxruntimeAdapter"]

onnxruntime: ModuleType  # bound by OnnxruntimeAdapter._load, inside the worker process
torch: ModuleType  # bound on the first export (a cached model needs no torch)

# what the exporter's output depends on: a new version of one of these is a new model
_EXPORTER_DISTRIBUTIONS = ("torch", "onnxscript", "onnx", "onnx-ir")


def torch_logits(x: Any, y: Any, reduction: str, weight: Any = None, pos_weight: Any = None) -> Any:
    return torch.nn.functional.binary_cross_entropy_with_logits(
        x, y, weight=weight, pos_weight=pos_weight, reduction=reduction)


def torch_probs(p: Any, y: Any, reduction: str, weight: Any = None) -> Any:
    return torch.nn.functional.binary_cross_entropy(p, y, weight=weight, reduction=reduction)


def export_model(function: Callable[..., Any], reduction: str, arrays: Mapping[str, np.ndarray]) -> bytes:
    """`function(x, y, reduction, **options)` exported by `torch.onnx.export` (dynamo, its default) at these
    inputs' shapes and dtypes: the ONNX model's bytes. The inputs are named after `arrays`' keys."""
    names = list(arrays)
    module: Any = torch.nn.Module

    class Loss(module):
        def forward(self, *tensors: Any) -> Any:
            given = dict(zip(names, tensors, strict=True))
            return function(given.pop("x"), given.pop("y"), reduction, **given)

    tensors = tuple(torch.from_numpy(np.array(value, dtype=np.float64)).to(getattr(torch, value.dtype.name))
                    for value in arrays.values())
    program = torch.onnx.export(Loss(), tensors, dynamo=True, input_names=names, output_names=["loss"],
                                verbose=False)
    return bytes(program.model_proto.SerializeToString())


def inference_session(model: bytes, threads: int = 1) -> Any:
    """An `InferenceSession` of the model on ONNX Runtime's CPU kernels with `threads` intra-op threads."""
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return onnxruntime.InferenceSession(model, options, providers=["CPUExecutionProvider"])


def run_session(session: Any, arrays: Mapping[str, np.ndarray]) -> Any:
    """The model's loss on `arrays` (NumPy arrays in the dtypes it was exported for), fed by input name."""
    feeds = {given.name: np.ascontiguousarray(arrays[given.name]) for given in session.get_inputs()}
    (loss,) = session.run(["loss"], feeds)
    return loss


def _build_torchlib_table_once() -> None:
    """Every `torch.onnx.export` builds its table of torchlib translations anew (about 500 onnxscript functions
    parsed from their source: three quarters of an export's second); the table is a function of the opset version
    alone, and the exporter only reads it (it adds to it only for a `custom_translation_table`, never passed
    here), so the worker builds it once per opset. The exported model is the same byte for byte. Where torch's
    private module moves, exports are just slower."""
    try:
        from torch.onnx._internal.exporter import _registration
    except ImportError:
        return
    registry = _registration.ONNXRegistry
    build = getattr(registry.from_torchlib, "__func__", None)
    if build is None or getattr(build, "built_once", False):
        return
    tables: dict[Any, Any] = {}

    def from_torchlib(cls: type, opset_version: Any = None) -> Any:
        key = (cls, opset_version)
        if key not in tables:
            tables[key] = build(cls) if opset_version is None else build(cls, opset_version=opset_version)
        return tables[key]

    from_torchlib.built_once = True  # type: ignore[attr-defined]
    registry.from_torchlib = classmethod(from_torchlib)


def cast(values: Any, dtype_name: str) -> np.ndarray:
    """float64 values that are exact in `dtype_name` → a NumPy array of that dtype (no rounding happens)."""
    return np.array(values, dtype=np.float64).astype(dtype_name)


def to_numpy(values: Any) -> np.ndarray:
    return np.asarray(values, dtype=np.float64)


_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "onnxruntime.torch_logits": torch_logits, "onnxruntime.torch_probs": torch_probs,
}
_EXPORT = "torch.onnx.export(Module(forward={call}), dynamo=True) → onnxruntime.InferenceSession(CPUExecutionProvider)"


class OnnxruntimeAdapter(Adapter):
    framework = "onnxruntime"
    distributions = ("onnxruntime",)
    companions = ("torch", "onnxscript", "onnx")
    release_pages: ClassVar[Mapping[str, str]] = {"onnxruntime": "https://github.com/microsoft/onnxruntime/releases/tag/v{version}"}
    # ONNX Runtime's CPU kernels have no bfloat16 Sub, Mul, Log or Sigmoid: a session of the bfloat16 export
    # fails to load ("Could not find an implementation for Sub(14)"), checked with onnxruntime 1.32
    dtypes = ("float64", "float32", "float16")
    implementations = (
        Implementation(
            "onnxruntime.torch_logits", "logits",
            api=_EXPORT.format(call="F.binary_cross_entropy_with_logits(x, y, weight=w, reduction=r)"),
            api_pos_weight=_EXPORT.format(
                call="F.binary_cross_entropy_with_logits(x, y, weight=w, pos_weight=p, reduction=r)"),
            runs_on="path", differentiable=False, batch=False,
        ),
        Implementation(
            "onnxruntime.torch_probs", "probs",
            api=_EXPORT.format(call="F.binary_cross_entropy(p, y, weight=w, reduction=r)"),
            runs_on="path", differentiable=False, batch=False,
        ),
    )

    def __init__(self) -> None:
        self._threads = 1
        self._sessions: dict[str, Any] = {}
        self._exports = 0
        self._cached = 0
        self._export_s = 0.0
        self._exporter = ""  # the exporter's versions and code, read once (see _key)

    def _load(self, threads: int) -> None:
        self._threads = threads
        self.use_here()

    def use_here(self) -> None:
        global onnxruntime
        import onnxruntime as module

        onnxruntime = module

    def runtime_version(self) -> str:
        return str(onnxruntime.__version__)

    def devices(self) -> list[str]:
        return ["cpu"]

    def thread_settings(self) -> dict[str, int]:
        return {"intra_op": self._threads, "inter_op": 1}

    def compile_stats(self) -> dict[str, float]:
        return {"programs": self._exports + self._cached, "cached": self._cached, "compile_s": self._export_s}

    def _bind_torch(self) -> None:
        global torch
        import torch as module

        torch = module
        torch.set_num_threads(self._threads)
        _build_torchlib_table_once()

    def _key(self, impl: Implementation, reduction: str, arrays: Mapping[str, np.ndarray]) -> str:
        """The model's name in the caches: what it was exported from (the code that exports it, the exporter's
        versions) and for (implementation, reduction, each input's name, shape and dtype)."""
        if not self._exporter:
            versions = [(name, importlib.metadata.version(name)) for name in _EXPORTER_DISTRIBUTIONS]
            self._exporter = repr((versions, source_of(export_model, *_FUNCTIONS.values())))
        signature = (self._exporter, impl.impl, reduction,
                     [(name, value.shape, value.dtype.name) for name, value in arrays.items()])
        return hashlib.sha256(repr(signature).encode()).hexdigest()[:32]

    def _model(self, impl: Implementation, reduction: str, arrays: Mapping[str, np.ndarray]) -> bytes:
        """The exported model's bytes: from the disk cache, else exported now (and kept there)."""
        key = self._key(impl, reduction, arrays)
        path = Path(self.compile_cache, "onnx", f"{key}.onnx") if self.compile_cache else None
        if path is not None and path.is_file():
            self._cached += 1
            return path.read_bytes()
        if "torch" not in globals():
            self._bind_torch()
        began = os.times().elapsed
        model = export_model(_FUNCTIONS[impl.impl], reduction, arrays)
        self._export_s += os.times().elapsed - began
        self._exports += 1
        if path is not None:  # written whole, then renamed: a concurrent worker reads a complete model or none
            path.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".tmp", delete=False) as handle:
                handle.write(model)
            os.replace(handle.name, path)
        return model

    def _session(self, impl: Implementation, reduction: str, arrays: Mapping[str, np.ndarray]) -> Any:
        key = self._key(impl, reduction, arrays)
        if key not in self._sessions:
            self._sessions[key] = inference_session(self._model(impl, reduction, arrays), self._threads)
        return self._sessions[key]

    def evaluate(self, impl: Implementation, arrays: Mapping[str, np.ndarray], reduction: Reduction, device: str,
                 mode: str) -> Result:
        if device != "cpu":
            raise Unsupported(f"onnxruntime runs here on the CPU only (CPUExecutionProvider), not {device!r}")
        dtype = arrays["x"].dtype.name
        if dtype not in self.dtypes:
            raise Unsupported(f"onnxruntime's CPU kernels have no {dtype} (the exported model does not load)")
        return Result(run_session(self._session(impl, reduction, arrays), arrays), None)

    to_numpy = staticmethod(to_numpy)

    @staticmethod
    def dtype_name(values: Any) -> str:
        return str(np.asarray(values).dtype.name)

    def repro_source(self, impl: Implementation, mode: str) -> str:
        function = _FUNCTIONS[impl.impl].__name__
        driver = f'''
def run(x, y, weight, pos_weight):
    arrays = {{"x": cast(x, DTYPE), "y": cast(y, Y_DTYPE)}}
    arrays.update({{name: cast(value, W_DTYPE) for name, value in (("weight", weight), ("pos_weight", pos_weight))
                   if value is not None}})
    session = inference_session(export_model({function}, REDUCTION, arrays))
    return to_numpy(run_session(session, arrays)), None  # inference: no gradient
'''
        header = "import numpy as np\nimport onnxruntime\nimport torch\n\n"
        return header + source_of(_FUNCTIONS[impl.impl], export_model, inference_session, run_session, cast,
                                  to_numpy) + driver
