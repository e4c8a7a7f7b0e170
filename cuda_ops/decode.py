"""Fused ELA decode step in Triton: fold one token into the state ``(S, C, shift)`` and read it.

One program per (sequence, head) does everything :func:`yolo_lat.ela.ela_step` does in about a
dozen PyTorch kernels: feature maps of q and k, the new running shift, the rescaling of the old
state, the rank-1 update ``S += psi v^T``, and the readout ``phi S / phi C``. Its cost is one read
and one write of the float32 state, whatever the context length.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import Tensor

from . import const
from ._common import (
    cast,
    feature_maps,
    finite_or_zero,
    kernel_flags,
    log_magnitude,
    num_warps_for,
    rescale_factor,
    scale_keys,
    scale_queries,
)
from .buffers import empty, feature_count
from .launcher import direct


@triton.jit
def _as_row(x):
    """A ``(D,)`` vector as a ``(1, D)`` tile (for the tile-shaped feature helpers)."""
    return x[None, :]


@triton.jit
def _squeeze_row(x):
    """The single row of a ``(1, D)`` tile as a ``(D,)`` vector."""
    return tl.sum(x, axis=0)


@triton.jit
def _step_features(q_row, k_row, scale, KERNEL: tl.constexpr, LOG_DOMAIN: tl.constexpr, EW: tl.constexpr):
    fq, fq_x = feature_maps(_as_row(q_row.to(tl.float32) * scale), KERNEL, False, EW)
    fk, fk_x = feature_maps(_as_row(k_row.to(tl.float32) * scale), KERNEL, True, EW)
    return fq, fq_x, fk, fk_x


@triton.jit(do_not_specialize=["heads"])
def _decode_step_kernel(
    q_ptr, k_ptr, v_ptr, s_ptr, c_ptr, shift_ptr, y_ptr, s_out_ptr, c_out_ptr, shift_out_ptr,
    sq_b, sq_h, sk_b, sk_h, sv_b, sv_h, heads, scale,
    D: tl.constexpr, DV: tl.constexpr, F: tl.constexpr,
    KERNEL: tl.constexpr, LOG_DOMAIN: tl.constexpr, HAS_EXTRA: tl.constexpr, EW: tl.constexpr,
):  # fmt: skip
    # q, k, v rows have unit stride; states and y are contiguous (B*H, F, DV), (B*H, F), (B*H, DV)
    bh = tl.program_id(0)
    batch, head = bh // heads, bh % heads
    d = tl.arange(0, D)
    dv = tl.arange(0, DV)
    e = tl.arange(0, EW)
    keep_x = e < F - D
    b64, h64 = batch.to(tl.int64), head.to(tl.int64)
    q_row = tl.load(q_ptr + b64 * sq_b + h64 * sq_h + d)
    k_row = tl.load(k_ptr + b64 * sk_b + h64 * sk_h + d)
    v_row = tl.load(v_ptr + b64 * sv_b + h64 * sv_h + dv).to(tl.float32)
    state = bh.to(tl.int64) * F
    s = tl.load(s_ptr + (state + d)[:, None] * DV + dv[None, :])
    c = tl.load(c_ptr + state + d)
    shift = tl.load(shift_ptr + state + d)
    fq, fq_x, fk, fk_x = _step_features(q_row, k_row, scale, KERNEL, LOG_DOMAIN, EW)
    new_shift = tl.maximum(shift, _squeeze_row(log_magnitude(fk, LOG_DOMAIN)))
    decay = rescale_factor(shift, new_shift)
    psi = _squeeze_row(scale_keys(fk, new_shift, LOG_DOMAIN))
    s = s * decay[:, None] + psi[:, None] * v_row[None, :]
    c = c * decay + psi
    top = tl.max(_squeeze_row(log_magnitude(fq, LOG_DOMAIN)) + new_shift, axis=0)
    if HAS_EXTRA:
        s_x = tl.load(s_ptr + (state + D + e)[:, None] * DV + dv[None, :], mask=keep_x[:, None], other=0.0)
        c_x = tl.load(c_ptr + state + D + e, mask=keep_x, other=0.0)
        shift_x = tl.load(shift_ptr + state + D + e, mask=keep_x, other=const.NEG_INF)
        new_shift_x = tl.maximum(shift_x, _squeeze_row(log_magnitude(fk_x, LOG_DOMAIN)))
        decay_x = rescale_factor(shift_x, new_shift_x)
        psi_x = _squeeze_row(scale_keys(fk_x, new_shift_x, LOG_DOMAIN))
        s_x = s_x * decay_x[:, None] + psi_x[:, None] * v_row[None, :]
        c_x = c_x * decay_x + psi_x
        top = tl.maximum(top, tl.max(_squeeze_row(log_magnitude(fq_x, LOG_DOMAIN)) + new_shift_x, axis=0))
    log_norm = tl.zeros([1], tl.float32) + finite_or_zero(top)  # (1,): one query row
    phi = _squeeze_row(scale_queries(fq, new_shift, log_norm, LOG_DOMAIN))
    num = tl.sum(phi[:, None] * s, axis=0)
    den = tl.sum(phi * c, axis=0)
    if HAS_EXTRA:
        phi_x = _squeeze_row(scale_queries(fq_x, new_shift_x, log_norm, LOG_DOMAIN))
        num += tl.sum(phi_x[:, None] * s_x, axis=0)
        den += tl.sum(phi_x * c_x, axis=0)
        tl.store(s_out_ptr + (state + D + e)[:, None] * DV + dv[None, :], s_x, mask=keep_x[:, None])
        tl.store(c_out_ptr + state + D + e, c_x, mask=keep_x)
        tl.store(shift_out_ptr + state + D + e, new_shift_x, mask=keep_x)
    y = tl.where(den > 0, num / tl.where(den > 0, den, 1.0), 0.0)
    tl.store(y_ptr + bh.to(tl.int64) * DV + dv, cast(y, y_ptr.dtype.element_ty))
    tl.store(s_out_ptr + (state + d)[:, None] * DV + dv[None, :], s)
    tl.store(c_out_ptr + state + d, c)
    tl.store(shift_out_ptr + state + d, new_shift)


def decode_step(
    q: Tensor, k: Tensor, v: Tensor, state_s: Tensor, state_c: Tensor, state_shift: Tensor, kernel_id: int, scale: float
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Launch the fused decode step.

    Args:
        q, k: ``(B, H, D)``; v: ``(B, H, Dv)`` (one dtype; any batch and head strides, rows
            whose elements are not adjacent are copied first).
        state_s: ``(B, H, F, Dv)``; state_c, state_shift: ``(B, H, F)``; float32 (copied first
            unless contiguous, as the kernels' own states are).

    The kernel takes 18 arguments instead of the 36 of a fully strided one: an eager step is bound
    by the launch's Python side, whose cost grows with the argument count.
        kernel_id: built-in kernel number; scale: multiplies q and k before the feature maps.

    Returns:
        ``(y (B, H, Dv) in v's dtype, S, C, shift)``: the new state, freshly allocated.

    Example:
        >>> y, S, C, shift = decode_step(q_t, k_t, v_t, state.S, state.C, state.shift, 0, 0.125)  # doctest: +SKIP
    """
    batch, heads, head_dim = q.shape
    value_dim = v.shape[-1]
    features = feature_count(head_dim, kernel_id)
    q, k, v = (t if t.stride(-1) == 1 else t.contiguous() for t in (q, k, v))
    state_s, state_c, state_shift = (t.contiguous() for t in (state_s, state_c, state_shift))
    y = empty(batch, heads, value_dim, device=q.device, dtype=v.dtype)
    new_s = empty(batch, heads, features, value_dim, device=q.device, dtype=torch.float32)
    new_c = empty(batch, heads, features, device=q.device, dtype=torch.float32)
    new_shift = empty(batch, heads, features, device=q.device, dtype=torch.float32)
    direct(_decode_step_kernel)[(batch * heads,)](
        q, k, v, state_s, state_c, state_shift, y, new_s, new_c, new_shift,
        q.stride(0), q.stride(1), k.stride(0), k.stride(1), v.stride(0), v.stride(1), heads, scale,
        DV=value_dim, F=features, num_warps=num_warps_for(head_dim * value_dim), **kernel_flags(kernel_id, head_dim),
    )  # fmt: skip
    return y, new_s, new_c, new_shift
