"""Output and scratch buffers of the fused kernels, and the sizes they depend on.

Set :data:`POISON_OUTPUTS` to fill every buffer with NaN before a kernel writes it (the GPU check
does): an element a kernel forgets to write then shows up as NaN instead of stale memory.
"""

from __future__ import annotations

import torch
from torch import Tensor

#: Fill new buffers with NaN (testing aid; costs one extra write per buffer).
POISON_OUTPUTS = False

#: Width of the tile holding the two extra features of the linear-domain kernels (see _common.py).
EXTRA_W = 2


def empty(*shape: int, device: torch.device, dtype: torch.dtype) -> Tensor:
    """``torch.empty``, or NaN-filled when :data:`POISON_OUTPUTS` is set."""
    out = torch.empty(*shape, device=device, dtype=dtype)
    return out.fill_(float("nan")) if POISON_OUTPUTS else out


def like_layout(x: Tensor, last_dim: int, dtype: torch.dtype) -> Tensor:
    """An empty ``(B, H, L, last_dim)`` tensor laid out like ``x``.

    Channel-first inputs (``stride(-2) == 1``: the transposed views of an NCHW conv output) get a
    channel-first output, a ``(B, H, last_dim, L)`` buffer seen through ``transpose(-1, -2)``, so
    turning the result back into an NCHW map is a free view; other inputs get a contiguous one.

    Example:
        >>> x = torch.randn(2, 8 * 16, 10, 10).view(2, 8, 16, 100).transpose(-1, -2)
        >>> like_layout(x, 16, x.dtype).stride()
        (12800, 1600, 1, 100)
    """
    batch, heads, length = x.shape[:3]
    if x.stride(-2) == 1 and x.stride(-1) != 1 and length > 1:
        return empty(batch, heads, last_dim, length, device=x.device, dtype=dtype).transpose(-1, -2)
    return empty(batch, heads, length, last_dim, device=x.device, dtype=dtype)


def cdiv(a: int, b: int) -> int:
    """``ceil(a / b)`` for host-side sizes (plain integer arithmetic, cheaper than ``triton.cdiv`` on the host).

    Example:
        >>> cdiv(1000, 64), cdiv(1024, 64)
        (16, 16)
    """
    return -(-a // b)


def feature_count(head_dim: int, kernel_id: int) -> int:
    """Feature size F of a built-in kernel: D for Hadamard Exp (id 0), D + 2 for the others."""
    return head_dim if kernel_id == 0 else head_dim + 2


def padded_features(head_dim: int, kernel_id: int) -> int:
    """Rows of the kernels' scratch states: D, or D + EXTRA_W with the extra-feature tile (= F)."""
    return head_dim if kernel_id == 0 else head_dim + EXTRA_W
