"""Choice between the plain PyTorch implementation and the fused GPU kernels of ``cuda_ops``.

``YOLO_LAT_KERNELS`` selects: ``auto`` (default: fused kernels for CUDA tensors when they load),
``torch`` (always plain PyTorch, e.g. for export or debugging) or ``triton`` (fused kernels
required on CUDA; an error if they cannot load). The GPU package is imported lazily, so a missing
Triton or GPU never breaks ``import yolo_lat``.
"""

from __future__ import annotations

import importlib
import os

import torch
from torch import Tensor

from .kernels import Kernel

__all__ = ["dispatch", "dispatch_step", "selected_backend"]

_CHOICES = ("auto", "torch", "triton")


#: Validated values of ``YOLO_LAT_KERNELS`` by raw string, and the loaded entry points by name:
#: a decode step's budget has no room for re-parsing the variable or re-importing the package.
_NORMALIZED: dict[str, str] = {}
_LOADED: dict[str, object] = {}


def selected_backend() -> str:
    """The value of ``YOLO_LAT_KERNELS`` (``auto`` when unset), validated."""
    raw = os.environ.get("YOLO_LAT_KERNELS", "auto")
    choice = _NORMALIZED.get(raw)
    if choice is None:
        choice = raw.strip().lower() or "auto"
        if choice not in _CHOICES:
            raise ValueError(f"YOLO_LAT_KERNELS must be one of {', '.join(_CHOICES)}; got {choice!r}")
        _NORMALIZED[raw] = choice
    return choice


def _on_gpu(q: Tensor) -> bool:
    """Whether ``q`` is a CUDA tensor (a seam: ``benchmarks/launch_overhead.py`` times the public
    entry points with CPU tensors standing in for CUDA ones)."""
    return q.is_cuda


def _fused(q: Tensor, name: str):
    """``(function, strict)`` from ``yolo_lat.cuda_ops`` when the fused path applies, else ``None``."""
    if not _on_gpu(q) or torch.onnx.is_in_onnx_export():
        return None
    choice = selected_backend()
    if choice == "torch":
        return None
    function = _LOADED.get(name)
    if function is None:
        try:
            function = _LOADED[name] = getattr(importlib.import_module("yolo_lat.cuda_ops"), name)
        except (ImportError, AttributeError) as err:
            if choice == "triton":
                raise RuntimeError(f"YOLO_LAT_KERNELS=triton but the fused kernels cannot load: {err}") from err
            return None
    return function, choice == "triton"


def dispatch(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    kernel: Kernel,
    causal: bool,
    key_padding_mask: Tensor | None,
    scale: float | None,
    return_state: bool,
    initial_state: object,
):
    """Run the fused kernels when they apply; ``None`` means "use the PyTorch implementation"."""
    fused = _fused(q, "ela_dispatch")
    if fused is None:
        return None
    function, strict = fused
    return function(q, k, v, kernel, causal, key_padding_mask, scale, return_state, initial_state, strict=strict)


def dispatch_step(q: Tensor, k: Tensor, v: Tensor, state: object, kernel: Kernel, scale: float | None):
    """The fused decode step when it applies (see :func:`dispatch`); ``None`` means "use PyTorch".

    ``ela_step`` calls it after resolving the kernel; it returns ``(y, new_state)`` like ``ela_step``.
    """
    fused = _fused(q, "ela_step_fused")
    if fused is None:
        return None
    function, strict = fused
    return function(q, k, v, state, kernel, scale, strict=strict)
