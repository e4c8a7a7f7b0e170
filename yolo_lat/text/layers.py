"""Small building blocks of the text models: RMS norm, rotary position embedding, SwiGLU FFN."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["RMSNorm", "SwiGLU", "apply_rope", "rope_angles"]


class RMSNorm(nn.Module):
    """Root-mean-square normalisation with a learnable gain.

    Args:
        dim: size of the last axis.
        eps: added to the mean square.

    Example:
        >>> RMSNorm(8)(torch.randn(2, 5, 8)).shape
        torch.Size([2, 5, 8])
    """

    def __init__(self, dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:
        """``x / rms(x) * weight`` over the last axis; same shape as ``x``."""
        return F.rms_norm(x, (x.shape[-1],), self.weight, self.eps)


def rope_angles(
    positions: Tensor, head_dim: int, base: float = 10000.0, dtype: torch.dtype = torch.float32
) -> tuple[Tensor, Tensor]:
    """Cosines and sines of the rotary embedding for the given positions.

    Args:
        positions: ``(L,)`` integer positions (an offset range during decoding).
        head_dim: even head width D.
        base: frequency base.
        dtype: dtype of the returned tables.

    Returns:
        ``(cos, sin)``, each ``(L, D / 2)``.

    Example:
        >>> cos, sin = rope_angles(torch.arange(4), 8)
        >>> cos.shape
        torch.Size([4, 4])
    """
    # Angles in float64 so positions up to 128k keep their precision, then cast.
    inv_freq = base ** (-torch.arange(0, head_dim, 2, dtype=torch.float64, device=positions.device) / head_dim)
    angles = positions.to(torch.float64)[:, None] * inv_freq[None, :]
    return angles.cos().to(dtype), angles.sin().to(dtype)


def apply_rope(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotate pairs ``(x[..., i], x[..., i + D/2])`` by the position's angles.

    Args:
        x: ``(B, H, L, D)`` queries or keys.
        cos: ``(L, D / 2)`` from :func:`rope_angles`.
        sin: ``(L, D / 2)``.

    Returns:
        ``(B, H, L, D)``; the dot product of two rotated vectors depends only on their distance.

    Example:
        >>> x = torch.randn(1, 2, 3, 8)
        >>> apply_rope(x, *rope_angles(torch.arange(3), 8)).shape
        torch.Size([1, 2, 3, 8])
    """
    first, second = x.chunk(2, dim=-1)
    return torch.cat([first * cos - second * sin, first * sin + second * cos], dim=-1)


class SwiGLU(nn.Module):
    """Gated feed-forward network ``W_out (silu(W_gate x) * W_up x)``.

    Args:
        dim: input and output width.
        hidden: hidden width.

    Example:
        >>> SwiGLU(16, 48)(torch.randn(2, 3, 16)).shape
        torch.Size([2, 3, 16])
    """

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.gate_up = nn.Linear(dim, 2 * hidden, bias=False)
        self.down = nn.Linear(hidden, dim, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        """``(..., dim) -> (..., dim)``, position by position."""
        gate, up = self.gate_up(x).chunk(2, dim=-1)
        return self.down(F.silu(gate) * up)
