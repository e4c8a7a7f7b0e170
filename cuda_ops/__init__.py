"""Fused GPU kernels for ELA, importable as ``yolo_lat.cuda_ops`` (loaded lazily by ``yolo_lat.ela``).

Triton kernels for every built-in ELA kernel (Hadamard Exp, sum/sub squared Euclidean, modulated
dot), head dims 16/32/64/128, float32/float16/bfloat16 inputs with float32 accumulation:

* bidirectional attention, forward (:mod:`.bidirectional`) and backward
  (:mod:`.bidirectional_backward`), reading the ``(B, heads, N, D)`` views of NCHW feature maps in
  place;
* chunked causal attention with initial and final state, forward (:mod:`.causal`) and backward
  (:mod:`.causal_backward`);
* a fused decode step (:mod:`.decode`).

They are registered as ``torch.library`` custom ops (:mod:`.ops`, namespace ``yolo_lat``) and
reached through :func:`ela_dispatch` / :func:`ela_step_fused` (:mod:`.dispatch`), which
``yolo_lat.ela`` calls for CUDA tensors unless the ``kernels`` setting is ``torch``
(:mod:`yolo_lat.settings`).

Importing this package never needs Triton or a GPU; the names below are loaded on first use
and raise ``ImportError`` when Triton is missing or unusable. The package reads the
``interpreter`` setting once, here, into :data:`INTERPRETED`: the kernels are defined for Triton's
interpreter (numpy, on the CPU) or for the GPU when their modules load, and settings refuse to
change it afterwards. Triton's own library is defined when Triton is imported, so the setting
must also come before the first ``import triton`` of the process (an ``ImportError`` says so).
Tests that run the kernels on the CPU call ``settings.configure(interpreter=True)`` before
importing this package.

Example:
    >>> import yolo_lat.cuda_ops as cuda_ops
    >>> from yolo_lat import settings
    >>> cuda_ops.available() in (True, False)
    True
    >>> cuda_ops.INTERPRETED == settings.get().interpreter
    True
"""

from __future__ import annotations

import os
import sys

from yolo_lat import settings

#: Whether the kernels run in Triton's interpreter: the ``interpreter`` setting when this package
#: was imported (``const`` hands it to Triton's knob before any kernel of ours is defined).
INTERPRETED: bool = settings.get().interpreter

if "triton" not in sys.modules:
    # Triton defines its own library (tl.zeros, tl.sum, ...) for the interpreter or not when it is
    # first imported, from this variable: the one way to hand it the setting that early.
    os.environ["TRITON_INTERPRET"] = "1" if INTERPRETED else "0"

_LAZY = {"ela_dispatch", "ela_step_fused", "unsupported_reason", "KERNEL_IDS"}

__all__ = ["INTERPRETED", "KERNEL_IDS", "available", "ela_dispatch", "ela_step_fused", "unsupported_reason"]


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
