"""PyTorch: `F.binary_cross_entropy_with_logits`, `F.binary_cross_entropy` (also of `torch.sigmoid(x)` inside the
function), the two-class `F.cross_entropy` and the worked example's log-sum-exp formula; gradients by autograd
(further derivatives: `torch.func.jvp`, double backward); eager or `torch.compile`.

The module-level functions are what runs, and their source is what a reproducer prints.
"""

from __future__ import annotations

import os
import statistics
from collections.abc import Callable, Mapping
from types import ModuleType
from typing import Any, ClassVar

import numpy as np

from implementations.base import (
    Adapter,
    Direction,
    Implementation,
    Reduction,
    Result,
    Unsupported,
    derivative_answers,
    derivative_source,
    source_of,
)

__all__ = ["TorchAdapter"]

torch: ModuleType  # bound by TorchAdapter._load, inside the worker process

_LSE = ("worked example: max_val = (-x).clamp(min=0); x - x·y + max_val + log(exp(-max_val) + exp(-x - max_val))"
        "; × weight; .mean() / .sum()")
_LSE_POS = ("worked example: max_val = (-x).clamp(min=0); lw = 1 + (p - 1)·y; x - x·y + lw·(log(exp(-max_val) + "
            "exp(-x - max_val)) + max_val); × weight; .mean() / .sum()")


def from_numpy(values: Any, dtype_name: str, device: str = "cpu") -> Any:
    """float64 values that are exact in `dtype_name` → a tensor of that dtype (no rounding happens)."""
    return torch.from_numpy(np.array(values, dtype=np.float64)).to(device=device, dtype=getattr(torch, dtype_name))


def to_numpy(values: Any) -> np.ndarray:
    return np.asarray(values.detach().to(torch.float64).cpu().numpy())


def torch_logits(x: Any, y: Any, reduction: str, weight: Any = None, pos_weight: Any = None) -> Any:
    return torch.nn.functional.binary_cross_entropy_with_logits(
        x, y, weight=weight, pos_weight=pos_weight, reduction=reduction)


def torch_probs(p: Any, y: Any, reduction: str, weight: Any = None) -> Any:
    return torch.nn.functional.binary_cross_entropy(p, y, weight=weight, reduction=reduction)


def weighted_reduction(loss: Any, reduction: str, weight: Any = None) -> Any:
    """w·l, then torch's own .mean() or .sum(), as users reduce (the mean of w·l: weights included in Σ w·l / n)."""
    if weight is not None:
        loss = weight * loss
    return loss.mean() if reduction == "mean" else loss.sum() if reduction == "sum" else loss


def torch_softmax2(x: Any, y: Any, reduction: str, weight: Any = None) -> Any:
    """Two-class softmax cross-entropy on logits [0, x] with probability targets [1 − y, y]: BCE by identity."""
    logits = torch.stack([torch.zeros_like(x), x], -1)
    targets = torch.stack([1 - y, y], -1)
    loss = torch.nn.functional.cross_entropy(logits.reshape(-1, 2), targets.reshape(-1, 2), reduction="none")
    return weighted_reduction(loss.reshape(x.shape), reduction, weight)


def torch_logits_autocast(x: Any, y: Any, reduction: str, weight: Any = None, pos_weight: Any = None) -> Any:
    with torch.autocast(x.device.type, dtype=torch.bfloat16):
        return torch.nn.functional.binary_cross_entropy_with_logits(
            x, y, weight=weight, pos_weight=pos_weight, reduction=reduction)


def torch_probs_autocast(p: Any, y: Any, reduction: str, weight: Any = None) -> Any:
    with torch.autocast(p.device.type, dtype=torch.bfloat16):
        return torch.nn.functional.binary_cross_entropy(p, y, weight=weight, reduction=reduction)


def torch_probs_of_sigmoid(x: Any, y: Any, reduction: str, weight: Any = None) -> Any:
    return torch.nn.functional.binary_cross_entropy(torch.sigmoid(x), y, weight=weight, reduction=reduction)


def torch_lse_formula(x: Any, y: Any, reduction: str, weight: Any = None, pos_weight: Any = None) -> Any:
    max_val = (-x).clamp(min=0)
    log_term = torch.log(torch.exp(-max_val) + torch.exp(-x - max_val))
    if pos_weight is None:
        loss = x - x * y + max_val + log_term
    else:
        log_weight = 1 + (pos_weight - 1) * y
        loss = x - x * y + log_weight * (log_term + max_val)
    if weight is not None:
        loss = loss * weight
    return loss.mean() if reduction == "mean" else loss.sum() if reduction == "sum" else loss


def loss_and_grad(function: Callable[..., Any], x: Any, y: Any, reduction: str, **options: Any) -> tuple[Any, Any]:
    """The reduced loss and d(sum of it)/dx through autograd."""
    x = x.detach().requires_grad_(True)
    loss = function(x, y, reduction, **options)
    (grad,) = torch.autograd.grad(loss.sum(), x)
    return loss, grad


def forward_tangent(function: Callable[..., Any], x: Any, y: Any, reduction: str, **options: Any) -> Any:
    """The reduced loss's tangent along x + t·1 (per element for `none`) by forward mode (torch.func.jvp)."""
    _, tangent = torch.func.jvp(lambda value: function(value, y, reduction, **options), (x,), (torch.ones_like(x),))
    return tangent


def gradient_wrt(name: str, function: Callable[..., Any], x: Any, y: Any, reduction: str, **options: Any) -> Any:
    """d(sum of the reduced loss)/d(the argument `name`: y, weight or pos_weight) through autograd."""
    arguments = {"y": y, **options}
    leaf = arguments[name] = arguments[name].detach().requires_grad_(True)
    loss = function(x, arguments.pop("y"), reduction, **arguments)
    (grad,) = torch.autograd.grad(loss.sum(), leaf)
    return grad


def second_derivative(function: Callable[..., Any], x: Any, y: Any, reduction: str, **options: Any) -> Any:
    """The diagonal of the Hessian wrt x, d(Σ ∂L/∂x)/dx (the loss is elementwise: H is diagonal) by double
    backward."""
    x = x.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(function(x, y, reduction, **options).sum(), x, create_graph=True)
    (grad2,) = torch.autograd.grad(grad.sum(), x)
    return grad2


def _no_derivative(answer: Any) -> Any:
    """torch's own word that it has no such derivative ("… is not differentiable with respect to argument
    'weight'") as `Unsupported`; any other answer as it is."""
    if isinstance(answer, RuntimeError) and "is not differentiable" in str(answer):
        return Unsupported("torch: " + " ".join(str(answer).split()))
    return answer


_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "torch.logits": torch_logits, "torch.probs": torch_probs, "torch.lse_formula": torch_lse_formula,
    "torch.softmax2": torch_softmax2, "torch.probs_of_sigmoid": torch_probs_of_sigmoid,
    "torch.logits_autocast": torch_logits_autocast, "torch.probs_autocast": torch_probs_autocast,
}
_HELPERS: dict[str, tuple[Callable[..., Any], ...]] = {"torch.softmax2": (weighted_reduction,)}
# each further derivative: its helper and the arguments before the loss function
_DERIVATIVES: dict[str, tuple[Callable[..., Any], tuple[str, ...]]] = {
    "grad_fwd": (forward_tangent, ()), "grad2": (second_derivative, ()),
    **{f"grad_{name}": (gradient_wrt, (name,)) for name in ("y", "weight", "pos_weight")},
}
_REPRO_HEADER = "import torch\n\n"


class TorchAdapter(Adapter):
    framework = "torch"
    distributions = ("torch",)
    release_pages: ClassVar[Mapping[str, str]] = {"torch": "https://github.com/pytorch/pytorch/releases/tag/v{version}"}
    modes = ("eager", "torch.compile")
    implementations = (
        Implementation(
            "torch.logits", "logits",
            api="torch.nn.functional.binary_cross_entropy_with_logits(x, y, weight=w, reduction=r)",
            api_pos_weight="torch.nn.functional.binary_cross_entropy_with_logits(x, y, weight=w, "
                           "pos_weight=p, reduction=r)",
        ),
        Implementation(
            "torch.probs", "probs",
            api="torch.nn.functional.binary_cross_entropy(p, y, weight=w, reduction=r)",
            same_as="torch.logits", relation="probs_logits",
        ),
        Implementation("torch.lse_formula", "logits", api=_LSE, api_pos_weight=_LSE_POS, formula=True),
        Implementation(
            "torch.softmax2", "logits",
            api="torch.nn.functional.cross_entropy(stack([0, x], -1), stack([1 - y, y], -1), reduction='none')"
                "; w·l, then .mean() / .sum()",
            same_as="torch.logits", relation="softmax2", runs_on="relation",
        ),
        # mixed precision as training loops run it: the loss inside torch.autocast(bfloat16), which keeps BCE in
        # float32 on the CPU (and refuses the probabilities loss on CUDA as unsafe)
        Implementation(
            "torch.logits_autocast", "logits",
            api="with torch.autocast(device, dtype=torch.bfloat16): "
                "torch.nn.functional.binary_cross_entropy_with_logits(x, y, weight=w, reduction=r)",
            api_pos_weight="with torch.autocast(device, dtype=torch.bfloat16): "
                           "torch.nn.functional.binary_cross_entropy_with_logits(x, y, weight=w, pos_weight=p, "
                           "reduction=r)",
            runs_on="autocast",
        ),
        Implementation(
            "torch.probs_autocast", "probs",
            api="with torch.autocast(device, dtype=torch.bfloat16): "
                "torch.nn.functional.binary_cross_entropy(p, y, weight=w, reduction=r)",
            runs_on="autocast",
        ),
        Implementation(
            "torch.probs_of_sigmoid", "logits",
            api="torch.nn.functional.binary_cross_entropy(torch.sigmoid(x), y, weight=w, reduction=r)",
            sigmoid_inside=True, runs_on="sigmoid",
        ),
    )

    def _load(self, threads: int) -> None:
        if self.compile_cache:  # inductor's compiled kernels, kept between audits
            os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", self.compile_cache)
        self.use_here()
        torch.set_num_threads(threads)
        # Each (implementation, reduction, dtype) is its own graph, and dynamo counts recompiles per code object:
        # raise the limits so the audit's matrix never trips the silent fall-back to eager.
        torch._dynamo.config.recompile_limit = 4096
        torch._dynamo.config.accumulated_recompile_limit = 65536

    def use_here(self) -> None:
        global torch
        import torch as module

        torch = module
        self._compiled: dict[str, Callable[..., Any]] = {}
        self._compiled_calls = 0

    def runtime_version(self) -> str:
        return str(torch.__version__)

    def devices(self) -> list[str]:
        return ["cpu", "gpu"] if torch.cuda.is_available() else ["cpu"]

    def _device(self, device: str) -> str:
        if device == "cpu":
            return "cpu"
        if device == "gpu" and torch.cuda.is_available():
            return "cuda"
        raise Unsupported(f"torch has no {device!r} device here")

    def _counting_compile(self, function: Callable[..., Any], dynamic: bool | None) -> Callable[..., Any]:
        """`torch.compile` with a backend that counts executions of the compiled graph, so a silent fallback to
        eager (graph breaks, the recompile limit) shows as zero compiled calls."""
        from torch._inductor.compile_fx import compile_fx

        def counting_backend(graph: Any, example_inputs: Any) -> Callable[..., Any]:
            compiled = compile_fx(graph, example_inputs)

            def run(*args: Any) -> Any:
                self._compiled_calls += 1
                return compiled(*args)

            return run

        return torch.compile(function, backend=counting_backend, fullgraph=True, dynamic=dynamic)

    def _compiled_function(self, impl: Implementation) -> Callable[..., Any]:
        if impl.impl not in self._compiled:
            self._compiled[impl.impl] = self._counting_compile(_FUNCTIONS[impl.impl], dynamic=True)
        return self._compiled[impl.impl]

    def bench_function(
        self, impl: Implementation, arrays: Mapping[str, np.ndarray], device: str, mode: str, direction: Direction,
    ) -> Callable[[], Any]:
        self.check_mode(mode)
        where = self._device(device)
        x, y = (from_numpy(arrays[name], arrays[name].dtype.name, where) for name in ("x", "y"))
        function = _FUNCTIONS[impl.impl]
        if mode == "torch.compile":
            # static shapes, a graph per size, as a training loop at a fixed batch size compiles
            function = self._counting_compile(function, dynamic=False)
        leaf = x.detach().requires_grad_(True)

        def step() -> Any:
            if direction == "forward":
                return function(x, y, "mean")
            loss = function(leaf, y, "mean")
            return loss, torch.autograd.grad(loss, leaf)[0]

        if mode == "eager":
            return step

        def checked() -> Any:
            before = self._compiled_calls
            result = step()
            if self._compiled_calls == before:
                raise RuntimeError("torch.compile ran no compiled graph (fell back to eager)")
            return result

        return checked

    def sync(self, result: Any, device: str) -> None:
        if device == "gpu":
            torch.cuda.synchronize()

    def read_function(self, nbytes: int, device: str) -> Callable[[], Any] | None:
        buffer = torch.ones(nbytes // 4, dtype=torch.float32, device=self._device(device))
        return buffer.sum

    def native_timer_label(self, device: str) -> str:
        return "torch.cuda.Event" if device == "gpu" else "torch.utils.benchmark"

    def native_timer(self, function: Callable[[], Any], device: str, threads: int, min_run_time: float) -> float:
        """`torch.utils.benchmark` on the CPU; on a GPU, CUDA events around each call (the device's own clock)."""
        if device == "gpu":
            return _cuda_event_median(function, min_run_time)
        from torch.utils.benchmark import Timer

        timer = Timer(stmt="function()", globals={"function": function}, num_threads=threads)
        return float(timer.blocked_autorange(min_run_time=min_run_time).median)

    def compile_stats(self) -> dict[str, float]:
        from torch._dynamo.utils import compilation_time_metrics, counters

        return {"programs": counters["stats"]["unique_graphs"],
                "compile_s": sum(compilation_time_metrics.get("_compile.compile_inner", []))}

    def thread_settings(self) -> dict[str, int]:
        return {"intra_op": torch.get_num_threads(), "inter_op": torch.get_num_interop_threads()}

    def allocator_peak(self, device: str, run: Callable[[], Any]) -> int:
        if device != "gpu":
            raise Unsupported(f"torch keeps allocator statistics for CUDA only, not {device!r}")
        torch.cuda.synchronize()
        before = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        self.sync(run(), device)
        return int(torch.cuda.max_memory_allocated() - before)

    def evaluate(self, impl: Implementation, arrays: Mapping[str, np.ndarray], reduction: Reduction, device: str,
                 mode: str) -> Result:
        if mode == "eager":
            return self.evaluate_function(_FUNCTIONS[impl.impl], arrays, reduction, device)
        before = self._compiled_calls
        loss, grad, _ = self.evaluate_function(self._compiled_function(impl), arrays, reduction, device)
        if self._compiled_calls == before:
            raise RuntimeError("torch.compile ran no compiled graph for this call (fell back to eager)")
        return Result(loss, grad, f"compiled graph executions: {self._compiled_calls - before}")

    def evaluate_function(self, function: Callable[..., Any], arrays: Mapping[str, np.ndarray], reduction: Reduction,
                          device: str, with_grad: bool = True) -> Result:
        where = self._device(device)
        tensors = {name: from_numpy(value, value.dtype.name, where) for name, value in arrays.items()}
        x, y = tensors.pop("x"), tensors.pop("y")
        if not with_grad:
            with torch.no_grad():
                return Result(function(x, y, reduction, **tensors), None)
        return Result(*loss_and_grad(function, x, y, reduction, **tensors))

    @classmethod
    def literal(cls, values: str, dtype: str) -> str:
        return f"torch.tensor({values}, dtype=torch.{dtype})"

    def derivatives(self, impl: Implementation, arrays: Mapping[str, np.ndarray], reduction: Reduction, device: str,
                    wanted: tuple[str, ...]) -> dict[str, Any]:
        impl.api_for("pos_weight" in arrays)  # Unsupported for all of them where the API has no pos_weight
        return self.function_derivatives(_FUNCTIONS[impl.impl], arrays, reduction, device, wanted)

    def function_derivatives(self, function: Callable[..., Any], arrays: Mapping[str, np.ndarray],
                             reduction: Reduction, device: str, wanted: tuple[str, ...]) -> dict[str, Any]:
        tensors = {name: from_numpy(value, value.dtype.name, self._device(device)) for name, value in arrays.items()}
        answers = derivative_answers(_DERIVATIVES, function, tensors, reduction, wanted, arrays)
        return {name: _no_derivative(answer) for name, answer in answers.items()}

    to_numpy = staticmethod(to_numpy)

    @staticmethod
    def dtype_name(values: Any) -> str:
        return str(values.dtype).removeprefix("torch.")

    def repro_source(self, impl: Implementation, mode: str) -> str:
        function = _FUNCTIONS[impl.impl].__name__
        if mode == "torch.compile":
            function = f"torch.compile({function}, fullgraph=True, dynamic=True)"
        driver = f'''
def run(x, y, weight, pos_weight):
    options = {{name: from_numpy(value, W_DTYPE) for name, value in (("weight", weight), ("pos_weight", pos_weight))
               if value is not None}}
    loss, grad = loss_and_grad({function}, from_numpy(x, DTYPE), from_numpy(y, Y_DTYPE), REDUCTION, **options)
    return to_numpy(loss), to_numpy(grad)
'''
        helpers = (*_HELPERS.get(impl.impl, ()), _FUNCTIONS[impl.impl])
        return _REPRO_HEADER + source_of(from_numpy, to_numpy, *helpers, loss_and_grad) + driver

    def repro_derivative_source(self, impl: Implementation, quantity: str) -> str:
        function = _FUNCTIONS[impl.impl]
        return derivative_source(self.framework, _DERIVATIVES, quantity, _REPRO_HEADER,
                                 (from_numpy, to_numpy, *_HELPERS.get(impl.impl, ()), loss_and_grad), function)


def _cuda_event_block(function: Callable[[], Any], number: int) -> float:
    """Seconds per call of `number` calls, each between two CUDA events and waited for, as the harness times
    each call synced (events around unsynced calls would measure their overlap instead)."""
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    total = 0.0
    for _ in range(number):
        start.record()
        function()
        end.record()
        end.synchronize()
        total += start.elapsed_time(end) / 1e3
    return total / number


def _cuda_event_median(function: Callable[[], Any], min_run_time: float) -> float:
    """Median seconds per call by CUDA events: blocks of at least min_run_time / 10, for min_run_time in all."""
    number = 1
    while (first := _cuda_event_block(function, number)) * number < min_run_time / 10 and number < 1 << 20:
        number *= 10
    seconds = [first]
    while sum(seconds) * number < min_run_time or (len(seconds) < 3 and first * number < min_run_time):
        seconds.append(_cuda_event_block(function, number))
    return float(statistics.median(seconds))
