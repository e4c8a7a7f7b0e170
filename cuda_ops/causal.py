"""Chunked causal ELA in Triton, forward and backward, with initial and final state.

The sequence is cut into chunks of ``BT`` tokens. Forward:

1. :func:`~.bidirectional.fold_key_slices` (parallel over chunks and batch x heads) folds each
   chunk's keys into a state ``dS_t``, ``dC_t`` at the chunk's own shift ``m_t`` (its largest key
   log-magnitude per feature).
2. ``_chunk_scan_kernel`` (sequential over chunks, parallel over batch x heads x blocks of
   feature rows, elementwise) turns them into the state entering every chunk, ``S_t``, ``C_t`` at
   shift ``start_t``, in place, and the final state. ``start_t`` is the running per-feature maximum
   of key log-magnitudes before chunk ``t`` (``end_t = start_{t+1} = max(start_t, m_t)``), exactly
   as in :func:`yolo_lat.ela.attention._causal`.
3. ``_chunk_output_kernel`` (parallel over chunks) adds the intra-chunk part and reads the state:
   ``y_i = (sum_{j<=i in chunk} w_ij v_j + phi_in_i S_t) / (... C_t)``.

The only sequential pass reads and writes one float32 state per chunk and does no matrix product,
so its loads are prefetched and its programs are many (a first design carried the whole state
through one loop of loads, exponentials and products per chunk, with batch x heads x 2 programs:
2.9 us a chunk on an H200, most of the forward's time from 4k tokens on).

Intra-chunk weights on tensor cores (the GLA-style bound): with the chunk's end shift ``end``,
``w_ij = sum_f exp(phi_if + end_f - s_i) exp(psi_jf - end_f)``, both factors <= 1 when the query
normaliser is ``s_i = max_f(phi_if + end_f)`` (the torch path uses the running maximum ``R_i``
instead of ``end``). Then a query's largest weight is at least ``exp(-(s_i - max_f(phi_if + R_if)))
>= exp(-growth)`` with ``growth = max_f(end_f - max(start_f, psi_0f))``, the rise of the running
maximum inside the chunk after its first key. **Bound relied on**: while ``growth <= THRESH``
(30, or 8 for float16 whose range is narrower), nothing overflows or underflows and the products
are as exact as the rounding of the operands. A chunk whose keys rise more than that (Hadamard
Exp only; e.g. the first chunk of inputs of magnitude 50) takes the exact path instead: one query
at a time, weights summed elementwise in log space from the running maximum ``R_i``, as the torch
path does. Linear-domain kernels need no bound (no exponentials) and never take it.

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
    cast,
    extra_inner,
    extra_left_transposed,
    extra_outer,
    extra_pair,
    extra_project,
    extra_right,
    feature_input_grad,
    feature_maps,
    finite_or_zero,
    key_coefficient,
    launch_options,
    launch_warps,
    log_magnitude,
    mm,
    mm_f32,
    query_coefficient,
    rescale_factor,
    scale_keys,
    scale_queries,
    state_operand,
    state_product,
)
from .bidirectional import _TL_DTYPES, _kernel_flags, _state_warps, fold_key_slices
from .buffers import cdiv, empty, feature_count, like_layout, padded_features
from .launcher import direct

#: Feature rows per program of the sequential scans (many small programs keep many loads in flight).
SCAN_ROWS = 4
#: ``_chunk_grad_kernel`` as two launches (dq; dk and dv) when True, one when False; None picks
#: by head dims and dtype (:func:`_split_by_default`).
SPLIT_GRAD: bool | None = None
#: Largest rise of the running key maximum inside a chunk for the tensor-core path (see above).
GROWTH_LIMIT = {torch.float16: 8.0, torch.bfloat16: 30.0, torch.float32: 30.0}


def chunk_length(head_dim: int, value_dim: int) -> int:
    """Tokens per chunk: 64, or 32 when a head dimension is 128 (register pressure)."""
    return 64 if max(head_dim, value_dim) <= 64 else 32


@triton.jit
def _mm_maybe_precise(a, b, DT: tl.constexpr, PRECISE: tl.constexpr):
    if PRECISE:
        return mm_f32(a, b, DT, const.SPLIT, const.SPLIT)
    return mm(a, b, DT)


@triton.jit
def _load_rows(base, row_offset, rows, cols, s_row, s_col, n_rows, R: tl.constexpr, C: tl.constexpr, other):
    """Load ``(R, C)`` float32 values of rows ``row_offset + rows`` (rows >= n_rows give ``other``)."""
    ptrs = base + (row_offset + rows)[:, None] * s_row + cols[None, :] * s_col
    return tl.load(ptrs, mask=(rows < n_rows)[:, None], other=other).to(tl.float32)


@triton.jit
def _row_block(F: tl.constexpr, R: tl.constexpr):
    """A scan program's rows: block ``program_id(0)`` of ``R`` feature rows of batch x head
    ``program_id(1)``: ``(rows, bh, rows inside F, their offsets in a (B*H, F) state)``."""
    rows = tl.program_id(0) * R + tl.arange(0, R)
    bh = tl.program_id(1).to(tl.int64)
    return rows, bh, rows < F, bh * F + rows


@triton.jit
def _state_rows_or_zeros(s_ptr, c_ptr, state_rows, inside, DV: tl.constexpr, R: tl.constexpr, PRESENT: tl.constexpr):
    """Rows ``state_rows`` of a float32 ``(S, C)`` pair, or zeros when it is not ``PRESENT``."""
    if PRESENT:
        s = tl.load(s_ptr + state_rows[:, None] * DV + tl.arange(0, DV)[None, :], mask=inside[:, None], other=0.0)
        c = tl.load(c_ptr + state_rows, mask=inside, other=0.0)
    else:
        s = tl.zeros([R, DV], tl.float32)
        c = tl.zeros([R], tl.float32)
    return s, c


@triton.jit(do_not_specialize=["n_chunks"])
def _chunk_scan_kernel(
    chunk_s_ptr, chunk_c_ptr, chunk_m_ptr, chunk_shift_ptr, s0_ptr, c0_ptr, shift0_ptr,
    s_out_ptr, c_out_ptr, shift_out_ptr, n_chunks,
    DV: tl.constexpr, F: tl.constexpr, R: tl.constexpr, HAS_INITIAL: tl.constexpr,
):  # fmt: skip
    # one program per (block of R feature rows, batch x head): the rows are independent
    rows, bh, inside, state_rows = _row_block(F, R)
    dv = tl.arange(0, DV)
    s, c = _state_rows_or_zeros(s0_ptr, c0_ptr, state_rows, inside, DV, R, HAS_INITIAL)
    if HAS_INITIAL:
        shift = tl.load(shift0_ptr + state_rows, mask=inside, other=const.NEG_INF)
    else:
        shift = tl.full([R], const.NEG_INF, tl.float32)
    for t in tl.range(0, n_chunks, num_stages=4):
        slot_rows = (bh * n_chunks + t) * F + rows
        chunk_s = tl.load(chunk_s_ptr + slot_rows[:, None] * DV + dv[None, :], mask=inside[:, None], other=0.0)
        chunk_c = tl.load(chunk_c_ptr + slot_rows, mask=inside, other=0.0)
        chunk_max = tl.load(chunk_m_ptr + slot_rows, mask=inside, other=const.NEG_INF)
        # the chunk's own state is replaced by the state entering it
        tl.store(chunk_s_ptr + slot_rows[:, None] * DV + dv[None, :], s, mask=inside[:, None])
        tl.store(chunk_c_ptr + slot_rows, c, mask=inside)
        tl.store(chunk_shift_ptr + (bh * (n_chunks + 1) + t) * F + rows, shift, mask=inside)
        end = tl.maximum(shift, chunk_max)
        old_factor = rescale_factor(shift, end)
        new_factor = rescale_factor(chunk_max, end)
        s = s * old_factor[:, None] + chunk_s * new_factor[:, None]
        c = c * old_factor + chunk_c * new_factor
        shift = end
    tl.store(chunk_shift_ptr + (bh * (n_chunks + 1) + n_chunks) * F + rows, shift, mask=inside)
    tl.store(s_out_ptr + state_rows[:, None] * DV + dv[None, :], s, mask=inside[:, None])
    tl.store(c_out_ptr + state_rows, c, mask=inside)
    tl.store(shift_out_ptr + state_rows, shift, mask=inside)


@triton.jit
def _chunk_growth(start, main, valid, local, end, LOG_DOMAIN: tl.constexpr):
    """Rise of the running key maximum inside the chunk after its first key (0 for linear kernels)."""
    if LOG_DOMAIN:
        first = tl.maximum(start, tl.max(tl.where((local == 0)[:, None] & valid[:, None], main, const.NEG_INF), axis=0))
        growth = tl.max(end - first, axis=0)
    else:
        growth = 0.0
    return growth


@triton.jit(do_not_specialize=["heads", "length", "n_chunks"])
def _chunk_output_kernel(
    q_ptr, k_ptr, v_ptr, chunk_s_ptr, chunk_c_ptr, chunk_shift_ptr, out_ptr, residual_ptr, lse_ptr,
    sq_b, sq_h, sq_l, sq_d, sk_b, sk_h, sk_l, sk_d, sv_b, sv_h, sv_l, sv_d, so_b, so_h, so_l, so_d,
    sr_b, sr_h, sr_l, sr_d,
    heads, length, n_chunks, scale,
    D: tl.constexpr, DV: tl.constexpr, FP: tl.constexpr, BT: tl.constexpr,
    KERNEL: tl.constexpr, LOG_DOMAIN: tl.constexpr, HAS_EXTRA: tl.constexpr, EW: tl.constexpr,
    SAVE_RESIDUAL: tl.constexpr, GROWTH_LIMIT: tl.constexpr, DT: tl.constexpr,
):  # fmt: skip
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
    s_in = tl.load(chunk_s_ptr + (slot * FP + d)[:, None] * DV + dv[None, :])
    c_in = tl.load(chunk_c_ptr + slot * FP + d)
    q_base = q_ptr + batch.to(tl.int64) * sq_b + head.to(tl.int64) * sq_h
    k_base = k_ptr + batch.to(tl.int64) * sk_b + head.to(tl.int64) * sk_h
    v_base = v_ptr + batch.to(tl.int64) * sv_b + head.to(tl.int64) * sv_h
    o_base = out_ptr + batch.to(tl.int64) * so_b + head.to(tl.int64) * so_h
    r_base = residual_ptr + batch.to(tl.int64) * sr_b + head.to(tl.int64) * sr_h
    lse_base = lse_ptr + bh.to(tl.int64) * length + row0
    xk = _load_rows(k_base, row0, local, d, sk_l, sk_d, length - row0, BT, D, 0.0) * scale
    values = tl.load(v_base + (row0 + local)[:, None] * sv_l + dv[None, :] * sv_d, mask=valid[:, None], other=0.0)
    fk, fk_x = feature_maps(xk, KERNEL, True, EW)
    growth = _chunk_growth(start, fk, valid, local, end, LOG_DOMAIN)
    if growth > GROWTH_LIMIT:
        # exact path (log domain only): one query at a time from the running maximum R_i
        running = start
        v32 = values.to(tl.float32)
        for i in range(0, tl.minimum(BT, length - row0)):
            fq_i = tl.load(q_base + (row0 + i) * sq_l + d * sq_d).to(tl.float32) * scale
            running = tl.maximum(running, tl.sum(tl.where((local == i)[:, None], fk, 0.0), axis=0))
            s_i = finite_or_zero(tl.max(fq_i + running, axis=0))
            pair = tl.exp(fq_i[None, :] + fk - s_i)
            weights = tl.sum(tl.where((local <= i)[:, None], pair, 0.0), axis=1)
            phi_in = tl.exp(fq_i + start - s_i)
            num = tl.sum(weights[:, None] * v32, axis=0) + tl.sum(phi_in[:, None] * s_in, axis=0)
            den = tl.sum(weights, axis=0) + tl.sum(phi_in * c_in, axis=0)
            y = tl.where(den > 0, num / tl.where(den > 0, den, 1.0), 0.0)
            rounded = cast(y, out_ptr.dtype.element_ty)
            tl.store(o_base + (row0 + i) * so_l + dv * so_d, rounded)
            if SAVE_RESIDUAL:
                tl.store(r_base + (row0 + i) * sr_l + dv * sr_d, cast(y - rounded.to(tl.float32), DT))
            tl.store(lse_base + i, tl.where(den > 0, s_i + tl.log(tl.where(den > 0, den, 1.0)), const.POS_INF))
    else:
        xq = _load_rows(q_base, row0, local, d, sq_l, sq_d, length - row0, BT, D, 0.0) * scale
        fq, fq_x = feature_maps(xq, KERNEL, False, EW)
        causal = (local[None, :] <= local[:, None]) & valid[None, :]
        psi = tl.where(valid[:, None], scale_keys(fk, end, LOG_DOMAIN), 0.0)
        log_norm = tl.max(log_magnitude(fq, LOG_DOMAIN) + end[None, :], axis=1)
        if HAS_EXTRA:
            start_x = tl.load(chunk_shift_ptr + shift_slot * FP + D + e)
            end_x = tl.load(chunk_shift_ptr + (shift_slot + 1) * FP + D + e)
            log_norm = tl.maximum(log_norm, tl.max(log_magnitude(fq_x, LOG_DOMAIN) + end_x[None, :], axis=1))
        log_norm = finite_or_zero(log_norm)
        phi_end = scale_queries(fq, end, log_norm, LOG_DOMAIN)
        phi_in = scale_queries(fq, start, log_norm, LOG_DOMAIN)
        # For training (SAVE_RESIDUAL) the products are split into high and low parts: the
        # backward's delta = dy . y must be accurate (see mm_f32); inference rounds once.
        weights = _mm_maybe_precise(phi_end, tl.trans(psi), DT, SAVE_RESIDUAL)
        if SAVE_RESIDUAL:
            num = mm_f32(phi_in, s_in, DT, const.SPLIT, const.SPLIT)
        else:
            num = state_product(phi_in, *state_operand(s_in, DT), DT)
        den = tl.sum(phi_in * c_in[None, :], axis=1)
        if HAS_EXTRA:
            s_in_x = tl.load(chunk_s_ptr + (slot * FP + D + e)[:, None] * DV + dv[None, :])
            c_in_x = tl.load(chunk_c_ptr + slot * FP + D + e)
            psi_x = tl.where(valid[:, None], scale_keys(fk_x, end_x, LOG_DOMAIN), 0.0)
            phi_in_x = scale_queries(fq_x, start_x, log_norm, LOG_DOMAIN)
            phi_end_x = scale_queries(fq_x, end_x, log_norm, LOG_DOMAIN)
            weights += extra_pair(phi_end_x, psi_x, EW)
            num += extra_inner(phi_in_x, s_in_x, EW)
            den += tl.sum(phi_in_x * c_in_x[None, :], axis=1)
        weights = tl.where(causal, weights, 0.0)
        if SAVE_RESIDUAL:
            num = mm_f32(weights, values, DT, const.SPLIT, const.EXACT, num)
        else:
            num = mm(weights, values, DT, num)
        den += tl.sum(weights, axis=1)
        positive = den > 0
        y = tl.where(positive[:, None], num / tl.where(positive, den, 1.0)[:, None], 0.0)
        rounded = cast(y, out_ptr.dtype.element_ty)
        tl.store(o_base + (row0 + local)[:, None] * so_l + dv[None, :] * so_d, rounded, mask=valid[:, None])
        if SAVE_RESIDUAL:
            tl.store(r_base + (row0 + local)[:, None] * sr_l + dv[None, :] * sr_d,
                     cast(y - rounded.to(tl.float32), DT), mask=valid[:, None])  # fmt: skip
        lse = tl.where(positive, log_norm + tl.log(tl.where(positive, den, 1.0)), const.POS_INF)
        tl.store(lse_base + local, lse, mask=valid)


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
    y = _load_rows(o_base, row0, local, dv, so_l, so_d, length - row0, BT, DV, 0.0)
    if HAS_RESIDUAL:
        r_base = residual_ptr + batch.to(tl.int64) * sr_b + head.to(tl.int64) * sr_h
        y += _load_rows(r_base, row0, local, dv, sr_l, sr_d, length - row0, BT, DV, 0.0)
    delta = tl.sum(dy.to(tl.float32) * y, axis=1)
    tl.store(delta_ptr + bh.to(tl.int64) * length + row0 + local, delta, mask=valid)
    xq = _load_rows(q_base, row0, local, d, sq_l, sq_d, length - row0, BT, D, 0.0) * scale
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
    rows, bh, inside, state_rows = _row_block(F, R)
    dv = tl.arange(0, DV)
    g, gc = _state_rows_or_zeros(ds_final_ptr, dc_final_ptr, state_rows, inside, DV, R, HAS_FINAL_GRAD)
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
    xk = _load_rows(k_base, row0, local, d, sk_l, sk_d, length - row0, BT, D, 0.0) * scale
    values = tl.load(v_base + (row0 + local)[:, None] * sv_l + dv[None, :] * sv_d, mask=valid[:, None], other=0.0)
    fk, fk_x = feature_maps(xk, KERNEL, True, EW)
    psi = tl.where(valid[:, None], scale_keys(fk, end, LOG_DOMAIN), 0.0)
    growth = _chunk_growth(start, fk, valid, local, end, LOG_DOMAIN)
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
        xq = _load_rows(q_base, row0, local, d, sq_l, sq_d, length - row0, BT, D, 0.0) * scale
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


def _output_warps(head_dim: int, value_dim: int, dtype: torch.dtype, save_residual: bool) -> int:
    """Warps per chunk-output program: 4 for inference up to 64 x 64 in 16 bits (184 registers, no
    spill: two programs per multiprocessor; on an H200 the first design's causal forward was 5%
    faster at 4 than at 8 warps), else 8 (the training variant's extra products would spill)."""
    return 4 if not save_residual and dtype != torch.float32 and head_dim * value_dim <= 4096 else 8


def _split_by_default(head_dim: int, value_dim: int, dtype: torch.dtype) -> bool:
    """Split the gradient kernel where one program spills (sm_90 builds at 8 warps, Hadamard Exp,
    ``compile_check.py``): from 64 x 64 up in float16 and float32 (364 B spilled per thread in
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


def chunk_states(
    k: Tensor,
    v: Tensor,
    initial_s: Tensor | None,
    initial_c: Tensor | None,
    initial_shift: Tensor | None,
    kernel_id: int,
    scale: float,
) -> tuple[Tensor, ...]:
    """The state entering every chunk and the final state (two launches: chunk states, scan).

    Args:
        k: ``(B, H, L, D)``; v: ``(B, H, L, Dv)``; initial_*, kernel_id, scale: as
            :func:`causal_forward`.

    Returns:
        ``(chunk_s (B*H, NT, F, Dv), chunk_c (B*H, NT, F), chunk_shift (B*H, NT + 1, F), S, C,
        shift)``, all float32: the state entering each chunk at shift ``chunk_shift[:, t]`` (the
        last row is the final shift) and the final state in the layout of
        :class:`~yolo_lat.ela.ELAState`.
    """
    batch, heads, length, head_dim = k.shape
    value_dim = v.shape[-1]
    features = feature_count(head_dim, kernel_id)
    padded = padded_features(head_dim, kernel_id)
    block_t = chunk_length(head_dim, value_dim)
    n_chunks = cdiv(length, block_t)
    bh = batch * heads
    kwargs = {"device": k.device, "dtype": torch.float32}
    chunk_shift = empty(bh, n_chunks + 1, padded, **kwargs)
    state_s = empty(batch, heads, features, value_dim, **kwargs)
    state_c, state_shift = empty(batch, heads, features, **kwargs), empty(batch, heads, features, **kwargs)
    has_initial = initial_s is not None
    if has_initial:
        initial_s, initial_c, initial_shift = (t.contiguous() for t in (initial_s, initial_c, initial_shift))
    chunk_s, chunk_c, chunk_max = fold_key_slices(k, v, kernel_id, scale, block_t, block_t)
    direct(_chunk_scan_kernel)[(cdiv(padded, SCAN_ROWS), bh)](
        chunk_s, chunk_c, chunk_max, chunk_shift, initial_s if has_initial else state_s,
        initial_c if has_initial else state_c, initial_shift if has_initial else state_shift,
        state_s, state_c, state_shift, n_chunks,
        DV=value_dim, F=padded, R=SCAN_ROWS, HAS_INITIAL=has_initial, num_warps=launch_warps("_chunk_scan_kernel", 4),
    )  # fmt: skip
    return chunk_s, chunk_c, chunk_shift, state_s, state_c, state_shift


def causal_forward(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    initial_s: Tensor | None,
    initial_c: Tensor | None,
    initial_shift: Tensor | None,
    kernel_id: int,
    scale: float,
    save_residual: bool,
) -> tuple[Tensor, ...]:
    """Launch the causal forward kernels.

    Args:
        q, k: ``(B, H, L, D)``; v: ``(B, H, L, Dv)`` (any strides, one dtype).
        initial_s, initial_c, initial_shift: float32 state to continue from (``(B, H, F, Dv)``,
            ``(B, H, F)``, ``(B, H, F)``), or all None.
        kernel_id: built-in kernel number (0 Hadamard Exp, 1 sum, 2 sub, 3 modulated dot).
        scale: multiplies q and k before the feature maps.
        save_residual: also return ``y - out`` in v's dtype (the float32 output's rounding), which
            the backward uses for an accurate ``delta = dy . y``.

    Returns:
        ``(out, S, C, shift, lse, chunk_s, chunk_c, chunk_shift, residual)``: the output
        ``(B, H, L, Dv)``; the final float32 state; and what the backward needs: ``lse``
        ``(B*H, L)``, the state entering each chunk and the shifts at chunk boundaries
        (``(B*H, NT + 1, F')``, the last row the final shift), and the residual (empty unless
        ``save_residual``).

    Example:
        >>> out, S, C, shift, *saved = causal_forward(q, k, v, None, None, None, 0, 0.125, False)  # doctest: +SKIP
    """
    batch, heads, length, head_dim = q.shape
    value_dim = v.shape[-1]
    padded = padded_features(head_dim, kernel_id)
    block_t = chunk_length(head_dim, value_dim)
    n_chunks = cdiv(length, block_t)
    bh = batch * heads
    chunk_s, chunk_c, chunk_shift, state_s, state_c, state_shift = chunk_states(
        k, v, initial_s, initial_c, initial_shift, kernel_id, scale
    )
    out = like_layout(q, value_dim, v.dtype)
    residual = like_layout(q, value_dim, v.dtype) if save_residual else out.new_empty(0)
    lse = empty(bh, length, device=q.device, dtype=torch.float32)
    residual_strides = residual.stride() if save_residual else out.stride()
    warps = _output_warps(head_dim, value_dim, v.dtype, save_residual)
    options = launch_options("_chunk_output_kernel", warps, v.dtype, head_dim, value_dim)
    direct(_chunk_output_kernel)[(n_chunks, bh)](
        q, k, v, chunk_s, chunk_c, chunk_shift, out, residual if save_residual else out, lse,
        *q.stride(), *k.stride(), *v.stride(), *out.stride(), *residual_strides,
        heads, length, n_chunks, scale,
        DV=value_dim, FP=padded, BT=block_t, SAVE_RESIDUAL=save_residual, GROWTH_LIMIT=GROWTH_LIMIT[v.dtype],
        DT=_TL_DTYPES[v.dtype], **options, **_kernel_flags(kernel_id, head_dim),
    )  # fmt: skip
    return out, state_s, state_c, state_shift, lse, chunk_s, chunk_c, chunk_shift, residual


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
    flags = _kernel_flags(kernel_id, head_dim)
    dt = _TL_DTYPES[v.dtype]
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
        "_chunk_grad_delta_kernel", _state_warps(head_dim, value_dim, v.dtype), v.dtype, head_dim, value_dim
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
