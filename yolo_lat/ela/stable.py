"""Shift-and-rescale helpers that keep ELA's feature maps finite (see docs/ela.md).

Attention is a ratio, so scaling every key feature ``f`` by one positive constant ``exp(-m_f)``
shared by all keys a query sees, and every query by any positive constant of its own, leaves the
output unchanged. Choosing ``m_f`` as the largest key log-magnitude of feature ``f`` bounds every
scaled key feature by 1; choosing the query constant as the largest scaled query log-magnitude
bounds every scaled query feature by 1. For log-domain kernels (Hadamard Exp) this is what stops
``exp`` from overflowing and, since the query's dominant feature then meets a key sum of at least
one, stops denominators from underflowing to ``0/0``.

Shifts are ``-inf`` where nothing has been seen yet (no valid key): those features scale to 0.
All shifts are computed from detached tensors: the output does not depend on them, so they carry
no gradient.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .kernels import Kernel

NEG_INF = float("-inf")


def finite_or_zero(x: Tensor) -> Tensor:
    """Replace non-finite entries (shifts of features nothing has reached) by 0; the gradient
    passes where ``x`` is finite.

    Eager, ``nan_to_num`` is one kernel where ``isfinite`` is four; exported to ONNX it is the other
    way round (nan_to_num with both infinities becomes 9 nodes, ``where(isfinite)`` 5).
    """
    if torch.onnx.is_in_onnx_export():
        return torch.where(torch.isfinite(x), x, 0.0)
    return torch.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0)


def mask_keys(kernel: Kernel, fk: Tensor, valid: Tensor | None) -> Tensor:
    """Make invalid keys contribute nothing: log-features ``-inf``, linear features 0."""
    if valid is None:
        return fk
    fill = NEG_INF if kernel.log_domain else 0.0
    return fk.masked_fill(~valid, fill)


def key_log_magnitude(kernel: Kernel, fk: Tensor) -> Tensor:
    """Per-feature log-magnitude of key features (``-inf`` for zero features), detached."""
    fk = fk.detach()
    return fk if kernel.log_domain else fk.abs().log()


def scale_keys(kernel: Kernel, fk: Tensor, shift: Tensor) -> Tensor:
    """Key features times ``exp(-shift)``; ``shift`` must be finite (see :func:`finite_or_zero`)."""
    return (fk - shift).exp() if kernel.log_domain else fk * (-shift).exp()


def query_log_norm(kernel: Kernel, fq: Tensor, shift: Tensor) -> Tensor:
    """Per-query log-normaliser: largest log-magnitude of ``phi * exp(shift)``, shape ``(..., 1)``."""
    fq = fq.detach()
    magnitude = fq if kernel.log_domain else fq.abs().log()
    return finite_or_zero((magnitude + shift).amax(dim=-1, keepdim=True))


def scale_queries(kernel: Kernel, fq: Tensor, shift: Tensor, log_norm: Tensor) -> Tensor:
    """Query features times ``exp(shift - log_norm)``; features with ``shift = -inf`` become 0."""
    if kernel.log_domain:
        return (fq + shift - log_norm).exp()
    return fq * (shift - log_norm).exp()


def rescale_factor(old_shift: Tensor, new_shift: Tensor) -> Tensor:
    """``exp(old - new)`` for moving a state to a larger shift; 0 where the old state was empty."""
    # new >= old, so exp(old - new) is in [0, 1] where both are finite and 0 where only old is
    # -inf; where both are -inf (or anything is NaN or +inf) the difference is NaN: 0 as well
    return torch.nan_to_num((old_shift - new_shift).exp(), nan=0.0)


def append_ones(v: Tensor) -> Tensor:
    """``[v, 1]``: one matmul against it yields numerator and denominator together."""
    if v.shape[-1] == 0:  # no value columns: just the ones (an empty sum plus 1, so v keeps a gradient)
        return v.sum(-1, keepdim=True) + 1
    return torch.cat([v, torch.ones_like(v[..., :1])], dim=-1)


def guarded_divide(numerator_and_denominator: Tensor) -> Tensor:
    """Split ``[num, den]`` on the last axis and return ``num / den``, or 0 where ``den <= 0``.

    A zero denominator means no visible key carries positive weight (every key padded, or a
    squared-distance kernel that is exactly 0 for every key); such rows output zeros, and so do
    their gradients, instead of NaN.
    """
    num, den = numerator_and_denominator[..., :-1], numerator_and_denominator[..., -1:]
    positive = den > 0
    return torch.where(positive, num / torch.where(positive, den, 1.0), 0.0)


def compute_dtype(*tensors: Tensor) -> torch.dtype:
    """float64 when any input is float64, else float32 (fp16/bf16 accumulate in fp32)."""
    return torch.float64 if any(t.dtype == torch.float64 for t in tensors) else torch.float32
