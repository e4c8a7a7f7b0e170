"""Choice between the plain PyTorch implementation and the fused GPU kernels of ``cuda_ops``.

The ``kernels`` setting (:mod:`yolo_lat.settings`; default from ``YOLO_LAT_KERNELS``) selects:
``auto`` (fused kernels for CUDA tensors when they load), ``torch`` (always plain PyTorch) or
``triton`` (fused kernels required on CUDA; an error if they cannot load). The GPU package is
imported on first use, so a missing Triton or GPU never breaks ``import yolo_lat.ela``.
"""

from __future__ import annotations

import importlib

import torch
from torch import Tensor

from yolo_lat import settings

from .kernels import Kernel

__all__ = ["dispatch", "dispatch_step"]

#: The loaded entry points of ``yolo_lat.cuda_ops`` by name (a decode step has no time to re-import).
_LOADED: dict[str, object] = {}


def _on_gpu(q: Tensor) -> bool:
    """Whether ``q`` is a CUDA tensor (a seam: ``yolo-lat benchmark launch_overhead`` times the public
    entry points with CPU tensors standing in for CUDA ones)."""
    return q.is_cuda


def _fused(q: Tensor, name: str):
    """``(function, strict)`` from ``yolo_lat.cuda_ops`` when the fused path applies, else ``None``."""
    if not _on_gpu(q) or torch.onnx.is_in_onnx_export():
        return None
    choice = settings.get().kernels
    if choice == "torch":
        return None
    function = _LOADED.get(name)
    if function is None:
        try:  # by name: Triton (which yolo_lat.cuda_ops needs) is optional
            function = _LOADED[name] = getattr(importlib.import_module("yolo_lat.cuda_ops"), name)
        except (ImportError, AttributeError) as err:
            if choice == "triton":
                message = f"kernels='triton' (YOLO_LAT_KERNELS=triton) but the fused kernels cannot load: {err}"
                raise RuntimeError(message) from err
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
