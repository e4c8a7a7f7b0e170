"""Entry points that ``yolo_lat.ela`` calls: route a call to the fused ops or decline it.

:func:`ela_dispatch` and :func:`ela_step_fused` return ``None`` for anything the kernels do not
cover, so the PyTorch implementation runs instead; with ``strict=True`` (the ``kernels='triton'``
setting) they raise a ``RuntimeError`` that names the reason. Importing this module raises ``ImportError``
when Triton is missing or unusable (``yolo_lat.ela.backend`` catches it).
"""

from __future__ import annotations

import torch
from torch import Tensor

from yolo_lat.ela import kernels as _kernels
from yolo_lat.ela.recurrent import ELAState

from . import INTERPRETED
from .bidirectional import bidirectional_forward, bidirectional_output
from .causal import causal_forward
from .decode import decode_step
from .ops import KERNEL_IDS, ela_bidirectional, ela_causal, ela_decode_step
from .verified import variant, verified_variants

__all__ = [
    "SUPPORTED_DIMS",
    "SUPPORTED_DTYPES",
    "ela_dispatch",
    "ela_step_fused",
    "unsupported_reason",
    "unverified_reason",
]

SUPPORTED_DTYPES = (torch.float32, torch.float16, torch.bfloat16)
SUPPORTED_DIMS = (16, 32, 64, 128)
_BUILTIN = {id(getattr(_kernels, name)): name for name in KERNEL_IDS}


def _device_reason(q: Tensor, k: Tensor, v: Tensor) -> str | None:
    # (written for a decode step's budget: one device object, no set)
    device = q.device
    if k.device != device or v.device != device:
        return f"tensors on several devices ({q.device}, {k.device}, {v.device})"
    if device.type == "cuda" or (device.type == "cpu" and INTERPRETED):
        return None
    return f"tensors on {device} (the kernels run on CUDA, or on the CPU in Triton's interpreter)"


def _state_reason(state: ELAState, batch: int, heads: int, features: int, value_dim: int, device) -> str | None:
    s, c, shift = state.S, state.C, state.shift
    if s.dtype != torch.float32 or c.dtype != torch.float32 or shift.dtype != torch.float32:
        return f"a {state.S.dtype} state (the kernels keep float32 states)"
    if s.device != device or c.device != device or shift.device != device:
        return "a state on another device"
    if s.shape != (batch, heads, features, value_dim) or c.shape != shift.shape or c.shape != s.shape[:3]:
        return f"a state of shape S={tuple(s.shape)} that does not fit the inputs"
    return None


def unsupported_reason(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    kernel: _kernels.Kernel,
    key_padding_mask: Tensor | None,
    initial_state: ELAState | None,
) -> str | None:
    """Why the fused kernels cannot run this call (``None`` when they can).

    Args:
        q, k: ``(B, H, L, D)`` (``(B, H, D)`` for a decode step); v: ``(..., Dv)``.
        kernel: the resolved :class:`~yolo_lat.ela.Kernel`.
        key_padding_mask: must be None (padding masks run in PyTorch).
        initial_state: optional float32 state to continue from.

    Returns:
        A short phrase such as ``"a key padding mask"``, or None.

    Example:
        >>> unsupported_reason(q, k, v, get_kernel("hadamard_exp"), None, None)  # doctest: +SKIP
    """
    if id(kernel) not in _BUILTIN:
        return f"kernel {kernel.name!r} (user-registered kernels run in PyTorch)"
    if key_padding_mask is not None:
        return "a key padding mask"
    reason = _device_reason(q, k, v)
    if reason:
        return reason
    if not (q.dtype == k.dtype == v.dtype) or q.dtype not in SUPPORTED_DTYPES:
        return f"dtypes {q.dtype}/{k.dtype}/{v.dtype} (need one of float32, float16, bfloat16 for q, k and v)"
    head_dim, value_dim = q.shape[-1], v.shape[-1]
    if head_dim not in SUPPORTED_DIMS or value_dim not in SUPPORTED_DIMS:
        return f"head dims D={head_dim}, Dv={value_dim} (need 16, 32, 64 or 128)"
    if q.dim() == 4 and (q.shape[2] == 0 or k.shape[2] == 0):
        return "an empty sequence"
    if initial_state is not None:
        features = head_dim if KERNEL_IDS[kernel.name] == 0 else head_dim + 2
        return _state_reason(initial_state, q.shape[0], q.shape[1], features, value_dim, q.device)
    return None


def unverified_reason(
    op: str, kernel_name: str, dtype: torch.dtype, head_dim: int, grad: bool, device: torch.device
) -> str | None:
    """Why the default dispatch keeps a supported call off the fused kernels on CUDA: its variant
    (:func:`~yolo_lat.cuda_ops.verified.variant`) has not passed a GPU check of the current kernel
    source (``None``: it has, or the tensors are not on CUDA).

    Example:
        >>> unverified_reason("decode", "hadamard_exp", torch.float16, 64, False, torch.device("cpu")) is None
        True
    """
    if device.type != "cuda":
        return None
    name = variant(op, kernel_name, str(dtype), head_dim, grad)
    if name in verified_variants():
        return None
    return f"{name} (no GPU check has passed it with the current kernel source; kernels='triton' runs it)"


def _decline(reason: str, strict: bool) -> None:
    if strict:
        raise RuntimeError(f"kernels='triton', but the fused ELA kernels do not support {reason}")


def _wants_grad(*tensors: Tensor | None) -> bool:
    return torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)


def _without_ops(*tensors: Tensor | None) -> bool:
    """Call the launch functions themselves, not the custom ops: eager, plain tensors, and the
    caller has ruled out autograd.

    The ``torch.library`` dispatch costs tens of microseconds of Python per call, which is most of
    a decode step or of a short attention; tracing (torch.compile, export) and autograd need the
    ops, so they keep them.
    """
    return not torch.compiler.is_compiling() and all(t is None or type(t) is torch.Tensor for t in tensors)


def ela_dispatch(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    kernel: _kernels.Kernel,
    causal: bool,
    key_padding_mask: Tensor | None,
    scale: float | None,
    return_state: bool,
    initial_state: ELAState | None,
    *,
    strict: bool = False,
) -> Tensor | tuple[Tensor, ELAState] | None:
    """Run :func:`~yolo_lat.ela.ela_attention` with the fused kernels, or return None.

    Same arguments as ``ela_attention`` (already validated by it) plus ``strict``.

    Returns:
        What ``ela_attention`` returns (output in v's dtype, or ``(output, ELAState)``), or None
        when the kernels do not cover the call (``strict=True`` raises instead).

    Example:
        >>> out = ela_dispatch(q, k, v, get_kernel("hadamard_exp"), False, None, 0.125, False, None)  # doctest: +SKIP
    """
    reason = unsupported_reason(q, k, v, kernel, key_padding_mask, initial_state)
    initial = (None,) * 3 if initial_state is None else (initial_state.S, initial_state.C, initial_state.shift)
    grad = _wants_grad(q, k, v, *initial)
    if reason is None and not strict:
        op = "causal" if causal else "bidirectional"
        reason = unverified_reason(op, kernel.name, q.dtype, q.shape[-1], grad, q.device)
    if reason is not None:
        _decline(reason, strict)
        return None
    kernel_id = KERNEL_IDS[kernel.name]
    factor = 1.0 if scale is None else float(scale)
    if causal:
        save_residual = v.dtype != torch.float32 and grad
        launch = causal_forward if not grad and _without_ops(q, k, v, *initial) else ela_causal
        result = launch(q, k, v, *initial, kernel_id, factor, save_residual)
        out, state_s, state_c, state_shift = result[:4]
        tokens = q.shape[2] + (0 if initial_state is None else initial_state.tokens)
    else:
        without_ops = not grad and _without_ops(q, k, v)
        if without_ops and not return_state:
            return bidirectional_output(q, k, v, kernel_id, factor)
        launch = bidirectional_forward if without_ops else ela_bidirectional
        out, state_s, state_c, state_shift = launch(q, k, v, kernel_id, factor)
        tokens = k.shape[2]
    if return_state:
        return out, ELAState(state_s, state_c, state_shift, kernel.name, tokens)
    return out


def ela_step_fused(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    state: ELAState | None,
    kernel: _kernels.Kernel,
    scale: float | None,
    *,
    strict: bool = False,
) -> tuple[Tensor, ELAState] | None:
    """Run :func:`~yolo_lat.ela.ela_step` as one fused kernel, or return None.

    Args:
        q, k: ``(B, H, D)``; v: ``(B, H, Dv)``; state: float32 state or None (start empty);
        kernel: the resolved kernel; scale: multiplies q and k (None means 1).
        strict: raise instead of returning None.

    Returns:
        ``(y (B, H, Dv) in v's dtype, new ELAState)`` or None (gradients requested, unsupported
        kernel, dtype, dims or device).

    Example:
        >>> y, state = ela_step_fused(q, k, v, state, get_kernel("hadamard_exp"), None)  # doctest: +SKIP
    """
    if q.dim() != 3 or k.shape != q.shape or v.dim() != 3 or v.shape[:2] != q.shape[:2]:
        return None  # the PyTorch path raises the shape error
    reason = unsupported_reason(q, k, v, kernel, None, state)
    if reason is None and _wants_grad(q, k, v, *(() if state is None else (state.S, state.C))):
        reason = "gradients through a decode step"  # (the launch below needs no autograd)
    if reason is None and not strict:
        reason = unverified_reason("decode", kernel.name, q.dtype, q.shape[-1], False, q.device)
    if reason is not None:
        _decline(reason, strict)
        return None
    if state is None:
        state = ELAState.empty(*q.shape[:2], q.shape[-1], v.shape[-1], kernel=kernel, device=q.device)
    factor = 1.0 if scale is None else float(scale)
    launch = decode_step if _without_ops(q, k, v, state.S, state.C, state.shift) else ela_decode_step
    y, state_s, state_c, state_shift = launch(q, k, v, state.S, state.C, state.shift, KERNEL_IDS[kernel.name], factor)
    return y, ELAState(state_s, state_c, state_shift, kernel.name, state.tokens + 1)
