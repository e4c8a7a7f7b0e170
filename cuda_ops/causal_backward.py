"""Gradients of the chunked causal ELA of :mod:`.causal`, in Triton.

Backward (FlashAttention style, normalised by ``lse_i = log sum_j w_ij`` saved by the forward):
the gradient of every chunk's incoming state is
``G_t = sum_{i after chunk t} phi_i^T [dy_i, -delta_i]`` with ``delta_i = dy_i . y_i``, in two
phases as the forward: ``_chunk_grad_delta_kernel`` (parallel over chunks) computes ``delta`` of
the chunk's rows (from ``dy``, the output and its rounding residual: one read of each, where
PyTorch ops would make float32 copies) and the chunk's term ``dG_t``; ``_chunk_grad_scan_kernel``
sums the terms from the end (elementwise, with the forward's shifts); then ``_chunk_grad_kernel``
(parallel over chunks) writes dq, dk, dv: in one program, or as a dq launch and a dk/dv launch
where one program would spill registers (``SPLIT_GRAD``, :func:`_split_by_default`).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import Tensor

from . import const
from ._common import (
    TL_DTYPES,
    cast,
    extra_inner,
    extra_left_transposed,
    extra_outer,
    extra_pair,
    extra_project,
    extra_right,
    feature_input_grad,
    feature_maps,
    kernel_flags,
    key_coefficient,
    launch_options,
    launch_warps,
    mm,
    mm_f32,
    query_coefficient,
    rescale_factor,
    scale_keys,
    scale_queries,
    state_warps,
)
from .buffers import cdiv, empty, feature_count, like_layout, padded_features
from .causal import GROWTH_LIMIT, SCAN_ROWS, chunk_growth, chunk_length, load_rows, row_block, state_rows_or_zeros
from .launcher import direct

#: ``_chunk_grad_kernel`` as two launches (dq; dk and dv) when True, one when False; None picks
#: by head dims and dtype (:func:`_split_by_default`).
SPLIT_GRAD: bool | None = None


@triton.jit(do_not_specialize=["heads", "length", "n_chunks"])
def _chunk_grad_delta_kernel(
    q_ptr, dy_ptr, out_ptr, residual_ptr, lse_ptr, delta_ptr, chunk_shift_ptr, chunk_g_ptr, chunk_gc_ptr,
    sq_b, sq_h, sq_l, sq_d, sg_b, sg_h, sg_l, sg_d, so_b, so_h, so_l, so_d, sr_b, sr_h, sr_l, sr_d,
    heads, length, n_chunks, scale,
    D: tl.constexpr, DV: tl.constexpr, FP: tl.constexpr, BT: tl.constexpr,
    KERNEL: tl.constexpr, LOG_DOMAIN: tl.constexpr, HAS_EXTRA: tl.constexpr, EW: tl.constexpr,
    HAS_RESIDUAL: tl.constexpr, DT: tl.constexpr,
):  # fmt: skip
    # one program per (chunk, batch x head): delta = dy . y for the chunk's rows (y = out plus the
    # forward's rounding residual), stored for _chunk_grad_kernel, and the chunk's term
    # phi_in^T [dy, -delta] at start_t
    t = tl.program_id(0)
    bh = tl.program_id(1)
    batch, head = bh // heads, bh % heads
    d = tl.arange(0, D)
    dv = tl.arange(0, DV)
    e = tl.arange(0, EW)
    local = tl.arange(0, BT)
    row0 = t * BT
    valid = row0 + local < length
    slot = bh.to(tl.int64) * n_chunks + t
    shift_slot = bh.to(tl.int64) * (n_chunks + 1) + t
    q_base = q_ptr + batch.to(tl.int64) * sq_b + head.to(tl.int64) * sq_h
    g_base = dy_ptr + batch.to(tl.int64) * sg_b + head.to(tl.int64) * sg_h
    start = tl.load(chunk_shift_ptr + shift_slot * FP + d)
    lse = tl.load(lse_ptr + bh.to(tl.int64) * length + row0 + local, mask=valid, other=const.POS_INF)
    dy = tl.load(g_base + (row0 + local)[:, None] * sg_l + dv[None, :] * sg_d, mask=valid[:, None], other=0.0)
    o_base = out_ptr + batch.to(tl.int64) * so_b + head.to(tl.int64) * so_h
    y = load_rows(o_base, row0, local, dv, so_l, so_d, length - row0, BT, DV, 0.0)
    if HAS_RESIDUAL:
        r_base = residual_ptr + batch.to(tl.int64) * sr_b + head.to(tl.int64) * sr_h
        y += load_rows(r_base, row0, local, dv, sr_l, sr_d, length - row0, BT, DV, 0.0)
    delta = tl.sum(dy.to(tl.float32) * y, axis=1)
    tl.store(delta_ptr + bh.to(tl.int64) * length + row0 + local, delta, mask=valid)
    xq = load_rows(q_base, row0, local, d, sq_l, sq_d, length - row0, BT, D, 0.0) * scale
    fq, fq_x = feature_maps(xq, KERNEL, False, EW)
    # normalised weights (about 1/L), split and scaled per feature by mm_f32 (float16 subnormals)
    phi_in = scale_queries(fq, start, lse, LOG_DOMAIN)
    g = mm_f32(tl.trans(phi_in), dy, DT, const.SPLIT, const.EXACT)
    tl.store(chunk_g_ptr + (slot * FP + d)[:, None] * DV + dv[None, :], g)
    tl.store(chunk_gc_ptr + slot * FP + d, -tl.sum(phi_in * delta[:, None], axis=0))
    if HAS_EXTRA:
        start_x = tl.load(chunk_shift_ptr + shift_slot * FP + D + e)
        phi_in_x = scale_queries(fq_x, start_x, lse, LOG_DOMAIN)
        tl.store(chunk_g_ptr + (slot * FP + D + e)[:, None] * DV + dv[None, :],
                 extra_outer(phi_in_x, dy.to(tl.float32), EW))  # fmt: skip
        tl.store(chunk_gc_ptr + slot * FP + D + e, -tl.sum(phi_in_x * delta[:, None], axis=0))


@triton.jit(do_not_specialize=["n_chunks"])
def _chunk_grad_scan_kernel(
    chunk_g_ptr, chunk_gc_ptr, chunk_shift_ptr, ds_final_ptr, dc_final_ptr, ds0_ptr, dc0_ptr, n_chunks,
    DV: tl.constexpr, F: tl.constexpr, R: tl.constexpr,
    HAS_FINAL_GRAD: tl.constexpr, WANT_INITIAL_GRAD: tl.constexpr,
):  # fmt: skip
    # one program per (block of R feature rows, batch x head), from the last chunk to the first
    rows, bh, inside, state_rows = row_block(F, R)
    dv = tl.arange(0, DV)
    g, gc = state_rows_or_zeros(ds_final_ptr, dc_final_ptr, state_rows, inside, DV, R, HAS_FINAL_GRAD)
    for step in tl.range(0, n_chunks, num_stages=4):
        t = n_chunks - 1 - step
        slot_rows = (bh * n_chunks + t) * F + rows
        chunk_g = tl.load(chunk_g_ptr + slot_rows[:, None] * DV + dv[None, :], mask=inside[:, None], other=0.0)
        chunk_gc = tl.load(chunk_gc_ptr + slot_rows, mask=inside, other=0.0)
        start = tl.load(chunk_shift_ptr + (bh * (n_chunks + 1) + t) * F + rows, mask=inside, other=0.0)
        end = tl.load(chunk_shift_ptr + (bh * (n_chunks + 1) + t + 1) * F + rows, mask=inside, other=0.0)
        # the chunk's own term is replaced by the gradient of the state entering it
        tl.store(chunk_g_ptr + slot_rows[:, None] * DV + dv[None, :], g, mask=inside[:, None])
        tl.store(chunk_gc_ptr + slot_rows, gc, mask=inside)
        decay = rescale_factor(start, end)
        g = g * decay[:, None] + chunk_g
        gc = gc * decay + chunk_gc
    if WANT_INITIAL_GRAD:
        tl.store(ds0_ptr + state_rows[:, None] * DV + dv[None, :], g, mask=inside[:, None])
        tl.store(dc0_ptr + state_rows, gc, mask=inside)


@triton.jit(do_not_specialize=["heads", "length", "n_chunks"])
def _chunk_grad_kernel(
    q_ptr, k_ptr, v_ptr, dy_ptr, lse_ptr, delta_ptr,
    chunk_s_ptr, chunk_c_ptr, chunk_shift_ptr, chunk_g_ptr, chunk_gc_ptr, dq_ptr, dk_ptr, dv_ptr,
    sq_b, sq_h, sq_l, sq_d, sk_b, sk_h, sk_l, sk_d, sv_b, sv_h, sv_l, sv_d, sg_b, sg_h, sg_l, sg_d,
    sdq_b, sdq_h, sdq_l, sdq_d, sdk_b, sdk_h, sdk_l, sdk_d, sdv_b, sdv_h, sdv_l, sdv_d,
    heads, length, n_chunks, scale,
    D: tl.constexpr, DV: tl.constexpr, FP: tl.constexpr, BT: tl.constexpr,
    KERNEL: tl.constexpr, LOG_DOMAIN: tl.constexpr, HAS_EXTRA: tl.constexpr, EW: tl.constexpr,
    GROWTH_LIMIT: tl.constexpr, DT: tl.constexpr, WANT_DQ: tl.constexpr, WANT_DKDV: tl.constexpr,
):  # fmt: skip
    # one program per (chunk, batch x head); WANT_DQ / WANT_DKDV select the gradients it writes
    # (both in one program, or a dq kernel and a dk/dv kernel that each hold half the live tiles)
    t = tl.program_id(0)
    bh = tl.program_id(1)
    batch, head = bh // heads, bh % heads
    d = tl.arange(0, D)
    dv = tl.arange(0, DV)
    e = tl.arange(0, EW)
    local = tl.arange(0, BT)
    row0 = t * BT
    valid = row0 + local < length
    slot = bh.to(tl.int64) * n_chunks + t
    shift_slot = bh.to(tl.int64) * (n_chunks + 1) + t
    start = tl.load(chunk_shift_ptr + shift_slot * FP + d)
    end = tl.load(chunk_shift_ptr + (shift_slot + 1) * FP + d)
    if WANT_DQ:  # the state entering the chunk
        s_in = tl.load(chunk_s_ptr + (slot * FP + d)[:, None] * DV + dv[None, :])
        c_in = tl.load(chunk_c_ptr + slot * FP + d)
    if WANT_DKDV:  # the gradient of that state
        g = tl.load(chunk_g_ptr + (slot * FP + d)[:, None] * DV + dv[None, :])
        gc = tl.load(chunk_gc_ptr + slot * FP + d)
    q_base = q_ptr + batch.to(tl.int64) * sq_b + head.to(tl.int64) * sq_h
    k_base = k_ptr + batch.to(tl.int64) * sk_b + head.to(tl.int64) * sk_h
    v_base = v_ptr + batch.to(tl.int64) * sv_b + head.to(tl.int64) * sv_h
    g_base = dy_ptr + batch.to(tl.int64) * sg_b + head.to(tl.int64) * sg_h
    dq_base = dq_ptr + batch.to(tl.int64) * sdq_b + head.to(tl.int64) * sdq_h
    dk_base = dk_ptr + batch.to(tl.int64) * sdk_b + head.to(tl.int64) * sdk_h
    dv_base = dv_ptr + batch.to(tl.int64) * sdv_b + head.to(tl.int64) * sdv_h
    row_stats = bh.to(tl.int64) * length + row0
    xk = load_rows(k_base, row0, local, d, sk_l, sk_d, length - row0, BT, D, 0.0) * scale
    values = tl.load(v_base + (row0 + local)[:, None] * sv_l + dv[None, :] * sv_d, mask=valid[:, None], other=0.0)
    fk, fk_x = feature_maps(xk, KERNEL, True, EW)
    psi = tl.where(valid[:, None], scale_keys(fk, end, LOG_DOMAIN), 0.0)
    growth = chunk_growth(start, fk, valid, local, end, LOG_DOMAIN)
    if growth > GROWTH_LIMIT:
        # exact path (log domain only), the gradient of the forward's exact path
        v32 = values.to(tl.float32)
        if WANT_DKDV:
            grad_k = tl.zeros([BT, D], tl.float32)
            grad_v = tl.zeros([BT, DV], tl.float32)
        for i in range(0, tl.minimum(BT, length - row0)):
            fq_i = tl.load(q_base + (row0 + i) * sq_l + d * sq_d).to(tl.float32) * scale
            dy_i = tl.load(g_base + (row0 + i) * sg_l + dv * sg_d).to(tl.float32)
            lse_i = tl.load(lse_ptr + row_stats + i)
            delta_i = tl.load(delta_ptr + row_stats + i)
            seen = (local <= i)[:, None]
            pair = tl.where(seen, tl.exp(fq_i[None, :] + fk - lse_i), 0.0)  # normalised w_ijf
            d_weight = tl.where(local <= i, tl.sum(dy_i[None, :] * v32, axis=1) - delta_i, 0.0)
            if WANT_DQ:
                phi_in = tl.exp(fq_i + start - lse_i)
                grad_q = tl.sum(d_weight[:, None] * pair, axis=0)
                grad_q += phi_in * (tl.sum(s_in * dy_i[None, :], axis=1) - delta_i * c_in)
                tl.store(dq_base + (row0 + i) * sdq_l + d * sdq_d, cast(grad_q * scale, dq_ptr.dtype.element_ty))
            if WANT_DKDV:
                grad_k += d_weight[:, None] * pair
                grad_v += tl.sum(pair, axis=1)[:, None] * dy_i[None, :]
        if WANT_DKDV:
            grad_v = mm_f32(psi, g, DT, const.SPLIT, const.SPLIT, grad_v)
            grad_k += psi * (mm_f32(values, tl.trans(g), DT, const.EXACT, const.SPLIT) + gc[None, :])
            tl.store(dk_base + (row0 + local)[:, None] * sdk_l + d[None, :] * sdk_d,
                     cast(grad_k * scale, dk_ptr.dtype.element_ty), mask=valid[:, None])  # fmt: skip
            tl.store(dv_base + (row0 + local)[:, None] * sdv_l + dv[None, :] * sdv_d,
                     cast(grad_v, dv_ptr.dtype.element_ty), mask=valid[:, None])  # fmt: skip
    else:
        lse = tl.load(lse_ptr + row_stats + local, mask=valid, other=const.POS_INF)
        delta = tl.load(delta_ptr + row_stats + local, mask=valid, other=0.0)
        dy = tl.load(g_base + (row0 + local)[:, None] * sg_l + dv[None, :] * sg_d, mask=valid[:, None], other=0.0)
        xq = load_rows(q_base, row0, local, d, sq_l, sq_d, length - row0, BT, D, 0.0) * scale
        fq, fq_x = feature_maps(xq, KERNEL, False, EW)
        causal = (local[None, :] <= local[:, None]) & valid[None, :]
        d_weight = tl.where(causal, mm(dy, tl.trans(values), DT) - delta[:, None], 0.0)
        if HAS_EXTRA:
            start_x = tl.load(chunk_shift_ptr + shift_slot * FP + D + e)
            end_x = tl.load(chunk_shift_ptr + (shift_slot + 1) * FP + D + e)
            psi_x = tl.where(valid[:, None], scale_keys(fk_x, end_x, LOG_DOMAIN), 0.0)
        if WANT_DQ:
            grad_q = query_coefficient(fq, end, lse, LOG_DOMAIN) * mm_f32(d_weight, psi, DT, const.SPLIT, const.SPLIT)
            grad_q += query_coefficient(fq, start, lse, LOG_DOMAIN) * (
                mm_f32(dy, tl.trans(s_in), DT, const.EXACT, const.SPLIT) - delta[:, None] * c_in[None, :]
            )
            grad_q_x = tl.zeros([BT, EW], tl.float32)
            if HAS_EXTRA:
                s_in_x = tl.load(chunk_s_ptr + (slot * FP + D + e)[:, None] * DV + dv[None, :])
                c_in_x = tl.load(chunk_c_ptr + slot * FP + D + e)
                grad_q_x = query_coefficient(fq_x, end_x, lse, LOG_DOMAIN) * extra_right(d_weight, psi_x, EW)
                grad_q_x += query_coefficient(fq_x, start_x, lse, LOG_DOMAIN) * (
                    extra_project(dy.to(tl.float32), s_in_x, EW) - delta[:, None] * c_in_x[None, :]
                )
            dq = feature_input_grad(xq, grad_q, grad_q_x, KERNEL, False, EW) * scale
            tl.store(dq_base + (row0 + local)[:, None] * sdq_l + d[None, :] * sdq_d,
                     cast(dq, dq_ptr.dtype.element_ty), mask=valid[:, None])  # fmt: skip
        if WANT_DKDV:
            # phi_hat and the weights are normalised (about 1/L): scaled by powers of two around
            # every rounding to DT (float16 subnormals, see mm_f32)
            phi_hat = scale_queries(fq, end, lse, LOG_DOMAIN)
            weights = mm_f32(phi_hat, tl.trans(psi), DT, const.ROUND, const.ROUND)
            if HAS_EXTRA:
                phi_hat_x = scale_queries(fq_x, end_x, lse, LOG_DOMAIN)
                weights += extra_pair(phi_hat_x, psi_x, EW)
            weights = tl.where(causal, weights, 0.0)
            grad_v = mm_f32(
                psi, g, DT, const.SPLIT, const.SPLIT, mm_f32(tl.trans(weights), dy, DT, const.ROUND, const.EXACT)
            )
            grad_k = key_coefficient(fk, end, LOG_DOMAIN) * (
                mm_f32(
                    values,
                    tl.trans(g),
                    DT,
                    const.EXACT,
                    const.SPLIT,
                    mm_f32(tl.trans(d_weight), phi_hat, DT, const.SPLIT, const.ROUND),
                )
                + gc[None, :]
            )
            grad_k_x = tl.zeros([BT, EW], tl.float32)
            if HAS_EXTRA:
                g_x = tl.load(chunk_g_ptr + (slot * FP + D + e)[:, None] * DV + dv[None, :])
                gc_x = tl.load(chunk_gc_ptr + slot * FP + D + e)
                grad_v += extra_inner(psi_x, g_x, EW)
                grad_k_x = key_coefficient(fk_x, end_x, LOG_DOMAIN) * (
                    extra_left_transposed(d_weight, phi_hat_x, EW)
                    + extra_project(values.to(tl.float32), g_x, EW)
                    + gc_x[None, :]
                )
            dk = feature_input_grad(xk, grad_k, grad_k_x, KERNEL, True, EW) * scale
            tl.store(dk_base + (row0 + local)[:, None] * sdk_l + d[None, :] * sdk_d,
                     cast(dk, dk_ptr.dtype.element_ty), mask=valid[:, None])  # fmt: skip
            tl.store(dv_base + (row0 + local)[:, None] * sdv_l + dv[None, :] * sdv_d,
                     cast(grad_v, dv_ptr.dtype.element_ty), mask=valid[:, None])  # fmt: skip


def _split_by_default(head_dim: int, value_dim: int, dtype: torch.dtype) -> bool:
    """Split the gradient kernel where one program spills (sm_90 builds at 8 warps, Hadamard Exp,
    ``yolo-lat benchmark compile_check``): from 64 x 64 up in float16 and float32 (364 B spilled per thread in
    float16 at 64 x 64; 0 B in either half when split) and above 64 x 64 in bfloat16 (968 B at
    128 x 128; 64 B and 240 B split). bfloat16 at 64 x 64 spills 40 B in one program and keeps it:
    one read of the chunk's inputs instead of two; so does bfloat16 at 32 x 128, where the dk/dv
    half alone spills about as much as the whole (3.8 KB, 4.3 KB)."""
    size = head_dim * value_dim
    return size > 64 * 64 or (size == 64 * 64 and dtype != torch.bfloat16)


def _grad_launches(head_dim: int, value_dim: int, dtype: torch.dtype) -> tuple[tuple[bool, bool], ...]:
    """``(WANT_DQ, WANT_DKDV)`` of each ``_chunk_grad_kernel`` launch: one program writing all
    three gradients, or :data:`SPLIT_GRAD` a dq launch and a dk/dv launch (they read the chunk's
    inputs twice but each holds about half the tiles)."""
    split = SPLIT_GRAD if SPLIT_GRAD is not None else _split_by_default(head_dim, value_dim, dtype)
    return ((True, False), (False, True)) if split else ((True, True),)


def causal_backward(
    grad_out: Tensor,
    grad_s: Tensor | None,
    grad_c: Tensor | None,
    q: Tensor,
    k: Tensor,
    v: Tensor,
    out: Tensor,
    residual: Tensor,
    lse: Tensor,
    chunk_s: Tensor,
    chunk_c: Tensor,
    chunk_shift: Tensor,
    kernel_id: int,
    scale: float,
    want_initial_grad: bool,
) -> tuple[Tensor, Tensor, Tensor, Tensor | None, Tensor | None]:
    """Gradients of :func:`causal_forward`.

    Args:
        grad_out: ``(B, H, L, Dv)`` gradient of the output; grad_s, grad_c: gradients of the final
            state (or None).
        q, k, v, kernel_id, scale: the forward's inputs; out, residual, lse, chunk_*: its outputs.
        want_initial_grad: also return the gradients of the initial state.

    Returns:
        ``(dq, dk, dv, d_initial_s, d_initial_c)`` (the last two None unless asked for).

    Example:
        >>> out, S, C, shift, lse, cs, cc, cshift, res = causal_forward(  # doctest: +SKIP
        ...     q, k, v, None, None, None, 0, 1.0, True)
        >>> grads = causal_backward(  # doctest: +SKIP
        ...     dy, None, None, q, k, v, out, res, lse, cs, cc, cshift, 0, 1.0, False)
    """
    batch, heads, length, head_dim = q.shape
    value_dim = v.shape[-1]
    features = feature_count(head_dim, kernel_id)
    padded = padded_features(head_dim, kernel_id)
    flags = kernel_flags(kernel_id, head_dim)
    dt = TL_DTYPES[v.dtype]
    block_t = chunk_length(head_dim, value_dim)
    n_chunks = cdiv(length, block_t)
    bh = batch * heads
    device = q.device
    f32 = torch.float32
    has_residual = residual.numel() > 0
    delta = empty(bh, length, device=device, dtype=f32)  # dy . y, written by the first kernel
    chunk_g = empty(bh, n_chunks, padded, value_dim, device=device, dtype=f32)
    chunk_gc = empty(bh, n_chunks, padded, device=device, dtype=f32)
    has_final = grad_s is not None or grad_c is not None
    if has_final:
        grad_s = (torch.zeros(batch, heads, features, value_dim, device=device) if grad_s is None else grad_s).float()
        grad_c = (torch.zeros(batch, heads, features, device=device) if grad_c is None else grad_c).float()
        grad_s, grad_c = grad_s.contiguous(), grad_c.contiguous()
    d_initial_s = d_initial_c = None
    if want_initial_grad:
        d_initial_s = empty(batch, heads, features, value_dim, device=device, dtype=f32)
        d_initial_c = empty(batch, heads, features, device=device, dtype=f32)
    options = launch_options(
        "_chunk_grad_delta_kernel", state_warps(head_dim, value_dim, v.dtype), v.dtype, head_dim, value_dim
    )
    direct(_chunk_grad_delta_kernel)[(n_chunks, bh)](
        q, grad_out, out, residual if has_residual else out, lse, delta, chunk_shift, chunk_g, chunk_gc,
        *q.stride(), *grad_out.stride(), *out.stride(), *(residual if has_residual else out).stride(),
        heads, length, n_chunks, scale, DV=value_dim, FP=padded, BT=block_t, HAS_RESIDUAL=has_residual, DT=dt,
        **options, **flags,
    )  # fmt: skip
    direct(_chunk_grad_scan_kernel)[(cdiv(padded, SCAN_ROWS), bh)](
        chunk_g, chunk_gc, chunk_shift, grad_s if has_final else chunk_g, grad_c if has_final else chunk_gc,
        d_initial_s if want_initial_grad else chunk_g, d_initial_c if want_initial_grad else chunk_gc, n_chunks,
        DV=value_dim, F=padded, R=SCAN_ROWS, HAS_FINAL_GRAD=has_final, WANT_INITIAL_GRAD=want_initial_grad,
        num_warps=launch_warps("_chunk_grad_scan_kernel", 4),
    )  # fmt: skip
    dq = like_layout(q, head_dim, q.dtype)
    dk = like_layout(k, head_dim, k.dtype)
    dv = like_layout(v, value_dim, v.dtype)
    options = launch_options("_chunk_grad_kernel", 8, v.dtype, head_dim, value_dim)
    for want_dq, want_dkdv in _grad_launches(head_dim, value_dim, v.dtype):
        direct(_chunk_grad_kernel)[(n_chunks, bh)](
            q, k, v, grad_out, lse, delta, chunk_s, chunk_c, chunk_shift, chunk_g, chunk_gc, dq, dk, dv,
            *q.stride(), *k.stride(), *v.stride(), *grad_out.stride(), *dq.stride(), *dk.stride(), *dv.stride(),
            heads, length, n_chunks, scale,
            DV=value_dim, FP=padded, BT=block_t, GROWTH_LIMIT=GROWTH_LIMIT[v.dtype], DT=dt,
            WANT_DQ=want_dq, WANT_DKDV=want_dkdv, **options, **flags,
        )  # fmt: skip
    return dq, dk, dv, d_initial_s, d_initial_c
