"""Exact Linear Attention: bidirectional and chunked causal forms, key padding masks, dispatch.

Every form computes exactly ``Y_i = sum_j k(q_i, k_j) v_j / sum_j k(q_i, k_j)`` for the chosen
kernel (see docs/ela.md), in O(L F Dv) time, with the shifts of :mod:`yolo_lat.ela.stable`.
"""

from __future__ import annotations

import torch
from torch import Tensor

from . import backend, forms
from .checks import check_head_dim, check_scale
from .kernels import Kernel, get_kernel
from .onnx import custom_node_active, emit_custom_node
from .recurrent import ELAState

__all__ = ["default_chunk_size", "ela_attention"]


def default_chunk_size(kernel: Kernel) -> int:
    """Causal chunk length used when none is given.

    Inside a chunk, log-domain kernels weigh each (query, key) pair exactly in log space, an
    ``L x chunk x F`` intermediate, so their chunks are short (8); linear-domain kernels use plain
    matrix products there and prefer longer chunks (32).
    """
    return 8 if kernel.log_domain else 32


def ela_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    *,
    kernel: str | Kernel = "hadamard_exp",
    causal: bool = False,
    key_padding_mask: Tensor | None = None,
    scale: float | None = None,
    return_state: bool = False,
    initial_state: ELAState | None = None,
    chunk_size: int | None = None,
) -> Tensor | tuple[Tensor, ELAState]:
    """Exact Linear Attention with kernel ``k(a, b) = phi(a) . psi(b)``.

    Args:
        q: ``(B, H, Lq, D)`` queries.
        k: ``(B, H, Lk, D)`` keys.
        v: ``(B, H, Lk, Dv)`` values.
        kernel: registered kernel name (see :func:`~yolo_lat.ela.list_kernels`) or a ``Kernel``.
        causal: position ``i`` attends to keys ``j <= i`` only (needs ``Lq == Lk``).
        key_padding_mask: ``(B, Lk)`` bool, ``True`` marks padding keys to ignore (the
            ``nn.MultiheadAttention`` convention).
        scale: multiplies q and k before the feature maps; ``None`` means 1; must be finite.
        return_state: also return the :class:`ELAState` of all keys (causal: for decoding on with
            :func:`~yolo_lat.ela.ela_step`; bidirectional: for :func:`~yolo_lat.ela.ela_readout`).
        initial_state: causal only: state of earlier tokens to continue from (chunked prefill).
        chunk_size: causal chunk length (default :func:`default_chunk_size`).

    Returns:
        ``(B, H, Lq, Dv)`` in ``v``'s dtype, or ``(output, state)`` with ``return_state``. Rows
        with no positively weighted key (all keys padded, or ``Lk = 0``) are zeros. Empty sizes
        (``B``, ``H``, ``Lq``, ``Lk`` or ``Dv`` = 0) give outputs and states of the matching empty
        shapes, as ``scaled_dot_product_attention`` does (which averages where ELA gives zeros).

    Raises:
        ValueError: shapes that do not fit together, a head dim ``D = 0``, a non-finite ``scale``.

    Example:
        >>> import torch
        >>> from yolo_lat.ela import ela_attention, naive_attention
        >>> q, k, v = (torch.randn(1, 2, 50, 8, dtype=torch.float64) for _ in range(3))
        >>> y = ela_attention(q, k, v, kernel="sum_sq_euclid", causal=True)
        >>> torch.allclose(y, naive_attention(q, k, v, kernel="sum_sq_euclid", causal=True))
        True
    """
    kern = get_kernel(kernel)
    _check_inputs(q, k, v, causal, key_padding_mask, scale, initial_state, chunk_size, kern)
    if custom_node_active():
        if causal or key_padding_mask is not None or return_state:
            raise ValueError("ela_op=custom exports bidirectional, unmasked ELA only; use ela_op=standard")
        return emit_custom_node(q, k, v, kern.name, scale)
    fast = backend.dispatch(q, k, v, kern, causal, key_padding_mask, scale, return_state, initial_state)
    if fast is not None:
        return fast
    if causal:
        out, state = forms.causal(
            q, k, v, kern, key_padding_mask, scale, initial_state, chunk_size or default_chunk_size(kern)
        )
    else:
        out, state = forms.bidirectional(q, k, v, kern, key_padding_mask, scale)
    return (out, state) if return_state else out


def _check_inputs(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    causal: bool,
    key_padding_mask: Tensor | None,
    scale: float | None,
    initial_state: ELAState | None,
    chunk_size: int | None,
    kern: Kernel,
) -> None:
    if q.dim() != 4 or k.dim() != 4 or v.dim() != 4:
        raise ValueError(
            "q, k, v must be 4-D (batch, heads, length, dim); got shapes "
            f"{tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)}"
        )
    if q.shape[:2] != k.shape[:2] or q.shape[-1] != k.shape[-1]:
        raise ValueError(f"q {tuple(q.shape)} and k {tuple(k.shape)} must agree in batch, heads and dim")
    check_head_dim(q.shape[-1])
    if v.shape[:3] != k.shape[:3]:
        raise ValueError(f"v {tuple(v.shape)} must match k {tuple(k.shape)} in batch, heads and length")
    if not (q.is_floating_point() and k.is_floating_point() and v.is_floating_point()):
        raise ValueError("q, k, v must be floating-point tensors")
    if causal and q.shape[2] != k.shape[2]:
        raise ValueError(f"causal attention needs as many queries as keys; got Lq={q.shape[2]}, Lk={k.shape[2]}")
    expected_mask = (k.shape[0], k.shape[2])
    if key_padding_mask is not None and (
        key_padding_mask.dtype != torch.bool or tuple(key_padding_mask.shape) != expected_mask
    ):
        raise ValueError(
            f"key_padding_mask must be a bool tensor of shape (batch, Lk) = {expected_mask}, "
            f"got {key_padding_mask.dtype} {tuple(key_padding_mask.shape)}"
        )
    check_scale(scale)
    if initial_state is not None:
        if not causal:
            raise ValueError("initial_state continues a causal sequence; pass causal=True")
        if initial_state.kernel != kern.name:
            raise ValueError(f"initial_state was built with kernel {initial_state.kernel!r}, not {kern.name!r}")
    if chunk_size is not None and (not isinstance(chunk_size, int) or chunk_size < 1):
        raise ValueError(f"chunk_size must be a positive int, got {chunk_size!r}")
