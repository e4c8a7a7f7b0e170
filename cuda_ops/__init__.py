"""Fused GPU kernels for ELA, importable as ``yolo_lat.cuda_ops`` (loaded lazily by ``yolo_lat.ela``).

Triton kernels for every built-in ELA kernel (Hadamard Exp, sum/sub squared Euclidean, modulated
dot), head dims 16/32/64/128, float32/float16/bfloat16 inputs with float32 accumulation:

* bidirectional attention, forward and backward (:mod:`.bidirectional`), reading the
  ``(B, heads, N, D)`` views of NCHW feature maps in place;
* chunked causal attention, forward and backward, with initial and final state (:mod:`.causal`);
* a fused decode step (:mod:`.decode`).

They are registered as ``torch.library`` custom ops (:mod:`.ops`, namespace ``yolo_lat``) and
reached through :func:`ela_dispatch` / :func:`ela_step_fused` (:mod:`.dispatch`), which
``yolo_lat.ela`` calls for CUDA tensors unless ``YOLO_LAT_KERNELS=torch``.

Importing this package never needs Triton or a GPU; the names below are loaded on first use
and raise ``ImportError`` when Triton is missing or unusable.

Example:
    >>> import yolo_lat.cuda_ops as cuda_ops
    >>> cuda_ops.available() in (True, False)
    True
"""

from __future__ import annotations

_LAZY = {"ela_dispatch", "ela_step_fused", "unsupported_reason", "KERNEL_IDS"}

__all__ = ["KERNEL_IDS", "available", "ela_dispatch", "ela_step_fused", "unsupported_reason"]


def _load():
    try:
        from . import dispatch
    except ImportError:
        raise
    except Exception as err:  # a broken Triton install can fail in many ways; report it as ImportError
        raise ImportError(f"yolo_lat.cuda_ops cannot load its Triton kernels: {err!r}") from err
    return dispatch


def available() -> bool:
    """Whether the Triton kernels load (Triton installed and importable; says nothing about a GPU)."""
    try:
        _load()
    except ImportError:
        return False
    return True


def __getattr__(name: str):
    if name in _LAZY:
        module = _load()
        return getattr(module, name) if name != "KERNEL_IDS" else module.KERNEL_IDS
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
