"""PyTorch: `F.binary_cross_entropy_with_logits` and `F.binary_cross_entropy`, gradients by autograd."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from implementations.base import Adapter, Implementation, Output, Reduction, Unsupported

__all__ = ["TorchAdapter"]


class TorchAdapter(Adapter):
    framework = "torch"
    distributions = ("torch",)
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
        ),
    )

    def _load(self, threads: int) -> None:
        import torch

        torch.set_num_threads(threads)
        self.torch = torch

    def runtime_version(self) -> str:
        return str(self.torch.__version__)

    def devices(self) -> list[str]:
        return ["cpu", "gpu"] if self.torch.cuda.is_available() else ["cpu"]

    def _device(self, device: str) -> Any:
        if device == "cpu":
            return self.torch.device("cpu")
        if device == "gpu" and self.torch.cuda.is_available():
            return self.torch.device("cuda")
        raise Unsupported(f"torch has no {device!r} device here")

    def _tensor(self, array: np.ndarray, device: Any) -> Any:
        owned = np.array(array, copy=True, order="C")  # writable, contiguous, 0-d kept 0-d
        if array.dtype.name == "bfloat16":  # NumPy has no bfloat16 of its own: pass the bits
            tensor = self.torch.from_numpy(owned.view(np.int16)).view(self.torch.bfloat16)
        else:
            tensor = self.torch.from_numpy(owned)
        return tensor.to(device)

    def _numpy(self, tensor: Any) -> np.ndarray:
        return np.asarray(tensor.detach().to(self.torch.float64).cpu().numpy())

    def _dtype_name(self, tensor: Any) -> str:
        return str(tensor.dtype).removeprefix("torch.")

    def compute(
        self, impl: Implementation, arrays: Mapping[str, np.ndarray], reduction: Reduction, device: str
    ) -> Output:
        functional = self.torch.nn.functional
        where = self._device(device)
        api = impl.api_for("pos_weight" in arrays)
        tensors = {name: self._tensor(value, where) for name, value in arrays.items()}
        x = tensors.pop("x").requires_grad_(True)
        y = tensors.pop("y")
        if impl.input_form == "logits":
            loss = functional.binary_cross_entropy_with_logits(x, y, reduction=reduction, **tensors)
        else:
            loss = functional.binary_cross_entropy(x, y, reduction=reduction, **tensors)
        (grad,) = self.torch.autograd.grad(loss.sum(), x)
        return Output(
            loss=self._numpy(loss),
            grad=self._numpy(grad),
            out_dtype=self._dtype_name(loss),
            grad_dtype=self._dtype_name(grad),
            api=api,
        )
