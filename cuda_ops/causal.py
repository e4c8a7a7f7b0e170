"""Chunked causal ELA in Triton: the forward, with initial and final state (gradients: :mod:`.causal_backward`).

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
so its loads are prefetched and its programs are many; the per-chunk work (loads, exponentials,
products) runs in parallel over chunks instead (see docs/gpu-kernels.md).

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
    extra_pair,
    feature_maps,
    finite_or_zero,
    kernel_flags,
    launch_options,
    launch_warps,
    log_magnitude,
    mm,
    mm_f32,
    rescale_factor,
    scale_keys,
    scale_queries,
    state_operand,
    state_product,
)
from .bidirectional import fold_key_slices
from .buffers import cdiv, empty, feature_count, like_layout, padded_features
from .launcher import direct

#: Feature rows per program of the sequential scans (many small programs keep many loads in flight).
SCAN_ROWS = 4
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
def load_rows(base, row_offset, rows, cols, s_row, s_col, n_rows, R: tl.constexpr, C: tl.constexpr, other):
    """Load ``(R, C)`` float32 values of rows ``row_offset + rows`` (rows >= n_rows give ``other``)."""
    ptrs = base + (row_offset + rows)[:, None] * s_row + cols[None, :] * s_col
    return tl.load(ptrs, mask=(rows < n_rows)[:, None], other=other).to(tl.float32)


@triton.jit
def row_block(F: tl.constexpr, R: tl.constexpr):
    """A scan program's rows: block ``program_id(0)`` of ``R`` feature rows of batch x head
    ``program_id(1)``: ``(rows, bh, rows inside F, their offsets in a (B*H, F) state)``."""
    rows = tl.program_id(0) * R + tl.arange(0, R)
    bh = tl.program_id(1).to(tl.int64)
    return rows, bh, rows < F, bh * F + rows


@triton.jit
def state_rows_or_zeros(s_ptr, c_ptr, state_rows, inside, DV: tl.constexpr, R: tl.constexpr, PRESENT: tl.constexpr):
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
    rows, bh, inside, state_rows = row_block(F, R)
    dv = tl.arange(0, DV)
    s, c = state_rows_or_zeros(s0_ptr, c0_ptr, state_rows, inside, DV, R, HAS_INITIAL)
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
def chunk_growth(start, main, valid, local, end, LOG_DOMAIN: tl.constexpr):
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
    xk = load_rows(k_base, row0, local, d, sk_l, sk_d, length - row0, BT, D, 0.0) * scale
    values = tl.load(v_base + (row0 + local)[:, None] * sv_l + dv[None, :] * sv_d, mask=valid[:, None], other=0.0)
    fk, fk_x = feature_maps(xk, KERNEL, True, EW)
    growth = chunk_growth(start, fk, valid, local, end, LOG_DOMAIN)
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
        xq = load_rows(q_base, row0, local, d, sq_l, sq_d, length - row0, BT, D, 0.0) * scale
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


def _output_warps(head_dim: int, value_dim: int, dtype: torch.dtype, save_residual: bool) -> int:
    """Warps per chunk-output program: 4 for inference up to 64 x 64 in 16 bits (no register spill,
    two programs per multiprocessor), else 8 (the training variant's extra products would spill)."""
    return 4 if not save_residual and dtype != torch.float32 and head_dim * value_dim <= 4096 else 8


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
        DT=TL_DTYPES[v.dtype], **options, **kernel_flags(kernel_id, head_dim),
    )  # fmt: skip
    return out, state_s, state_c, state_shift, lse, chunk_s, chunk_c, chunk_shift, residual
