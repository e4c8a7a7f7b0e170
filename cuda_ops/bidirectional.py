"""Bidirectional ELA in Triton: feature map, state ``(S, C)`` and readout fused (gradients:
:mod:`.bidirectional_backward`).

Forward, per (batch, head):

1. ``_state_partial_kernel``: programs split the keys into ``P`` slices; each folds its slice
   into a partial state with an online per-feature maximum (one read of k and v).
2. ``_state_combine_kernel``: moves the partials to the global shift and sums them: the state of
   :class:`~yolo_lat.ela.ELAState` (``S``, ``C``, ``shift``), in float32.
3. ``_readout_kernel``: each program loads the state once, then maps a run of query tiles to
   features and reads them out.

Tensors are addressed through their strides, so the ``(B, heads, N, D)`` views of an NCHW
feature map (last dimension of stride ``N``) are read in place, and outputs of such inputs are
allocated channel-first (see :func:`like_layout`).
"""

from __future__ import annotations

import functools

import torch
import triton
import triton.language as tl
from torch import Tensor

from . import const
from ._common import (
    TL_DTYPES,
    cast,
    extra_inner,
    extra_outer,
    feature_maps,
    finite_or_zero,
    kernel_flags,
    launch_options,
    launch_warps,
    log_magnitude,
    masked_rows_max,
    mm_f32,
    query_log_norm,
    rescale_factor,
    scale_keys,
    scale_queries,
    state_operand,
    state_product,
    state_warps,
)
from .buffers import cdiv, empty, like_layout, padded_features
from .launcher import direct

#: Rows per tile of queries or keys.
BLOCK_ROWS = 64
#: Feature rows per program when combining partial states (the last block is masked at F).
COMBINE_ROWS = 16
#: Programs per multiprocessor aimed at by the forward's pass over key slices: as many as fit at
#: once (bfloat16, D = Dv = 64, 4 warps: 144 registers a thread, 48 KiB of shared memory, so 3
#: fit; more would wait for a second wave).
PROGRAMS_PER_SM = 3
#: Programs per multiprocessor aimed at by the readout; each loads the state once and reads it
#: out for a run of query tiles (bfloat16: 126 registers, 32 KiB, so 4 fit; float16: 166, 3 fit).
READOUT_PROGRAMS_PER_SM = 4
#: Longest key sequence for which an output-only forward takes one launch (:func:`attend_short`)
#: instead of three (short sequences are bound by launches, not by bandwidth). Not yet tuned on a
#: GPU; ``yolo-lat benchmark kernels`` times both forms.
SHORT_KEYS = 1024


@functools.cache
def _multiprocessors(device: torch.device) -> int:
    if device.type == "cuda":
        return torch.cuda.get_device_properties(device).multi_processor_count
    return 4  # the interpreter: a few slices, so that the combine is exercised


def sequence_slices(
    length: int, programs_per_slice: int, device: torch.device, per_sm: int | None = None
) -> tuple[int, int]:
    """Number of slices and rows per slice (a multiple of the tile) for a pass split along a
    sequence, aiming at ``per_sm`` (default :data:`PROGRAMS_PER_SM`) programs per multiprocessor."""
    tiles = cdiv(length, BLOCK_ROWS)
    target = (PROGRAMS_PER_SM if per_sm is None else per_sm) * _multiprocessors(device)
    parts = max(1, min(tiles, target // max(1, programs_per_slice)))
    rows = cdiv(tiles, parts) * BLOCK_ROWS
    return cdiv(length, rows), rows


@triton.jit
def fold_keys(k_base, v_base, sk_l, sk_d, sv_l, sv_d, start, stop, scale,
              D: tl.constexpr, DV: tl.constexpr, BL: tl.constexpr, KERNEL: tl.constexpr, LOG_DOMAIN: tl.constexpr,
              HAS_EXTRA: tl.constexpr, EW: tl.constexpr, DT: tl.constexpr):  # fmt: skip
    """State of keys ``start .. stop`` of one (batch, head), with an online per-feature maximum.

    Returns ``(S (D, DV), C (D,), shift (D,))`` and the same for the extra features, in float32
    (one read of k and v, tiles of ``BL`` rows).
    """
    d = tl.arange(0, D)
    dv = tl.arange(0, DV)
    shift = tl.full([D], const.NEG_INF, tl.float32)
    acc = tl.zeros([D, DV], tl.float32)
    count = tl.zeros([D], tl.float32)
    shift_x = tl.full([EW], const.NEG_INF, tl.float32)
    acc_x = tl.zeros([EW, DV], tl.float32)
    count_x = tl.zeros([EW], tl.float32)
    for row0 in range(start, stop, BL):
        rows = row0 + tl.arange(0, BL)
        valid = rows < stop
        x = tl.load(k_base + rows[:, None] * sk_l + d[None, :] * sk_d, mask=valid[:, None], other=0.0)
        values = tl.load(v_base + rows[:, None] * sv_l + dv[None, :] * sv_d, mask=valid[:, None], other=0.0)
        main, extra = feature_maps(x.to(tl.float32) * scale, KERNEL, True, EW)
        new_shift = tl.maximum(shift, masked_rows_max(log_magnitude(main, LOG_DOMAIN), valid))
        decay = rescale_factor(shift, new_shift)
        psi = tl.where(valid[:, None], scale_keys(main, new_shift, LOG_DOMAIN), 0.0)
        acc = mm_f32(tl.trans(psi), values, DT, const.UNIT_SPLIT, const.EXACT, acc * decay[:, None])
        count = count * decay + tl.sum(psi, axis=0)
        shift = new_shift
        if HAS_EXTRA:
            new_shift_x = tl.maximum(shift_x, masked_rows_max(log_magnitude(extra, LOG_DOMAIN), valid))
            decay_x = rescale_factor(shift_x, new_shift_x)
            psi_x = tl.where(valid[:, None], scale_keys(extra, new_shift_x, LOG_DOMAIN), 0.0)
            acc_x = acc_x * decay_x[:, None] + extra_outer(psi_x, values.to(tl.float32), EW)
            count_x = count_x * decay_x + tl.sum(psi_x, axis=0)
            shift_x = new_shift_x
    return acc, count, shift, acc_x, count_x, shift_x


@triton.jit(do_not_specialize=["heads", "length", "rows_per_part", "n_parts"])
def _state_partial_kernel(
    k_ptr, v_ptr, part_s_ptr, part_c_ptr, part_shift_ptr,
    sk_b, sk_h, sk_l, sk_d, sv_b, sv_h, sv_l, sv_d,
    heads, length, rows_per_part, n_parts, scale,
    D: tl.constexpr, DV: tl.constexpr, FP: tl.constexpr, BL: tl.constexpr,
    KERNEL: tl.constexpr, LOG_DOMAIN: tl.constexpr, HAS_EXTRA: tl.constexpr, EW: tl.constexpr,
    DT: tl.constexpr,
):  # fmt: skip
    part = tl.program_id(0)
    bh = tl.program_id(1)
    batch, head = bh // heads, bh % heads
    k_base = k_ptr + batch.to(tl.int64) * sk_b + head.to(tl.int64) * sk_h
    v_base = v_ptr + batch.to(tl.int64) * sv_b + head.to(tl.int64) * sv_h
    d = tl.arange(0, D)
    dv = tl.arange(0, DV)
    e = tl.arange(0, EW)
    start = part * rows_per_part
    stop = tl.minimum(start + rows_per_part, length)
    acc, count, shift, acc_x, count_x, shift_x = fold_keys(
        k_base, v_base, sk_l, sk_d, sv_l, sv_d, start, stop, scale, D, DV, BL, KERNEL, LOG_DOMAIN, HAS_EXTRA, EW, DT
    )
    slot = bh.to(tl.int64) * n_parts + part
    tl.store(part_s_ptr + slot * FP * DV + d[:, None] * DV + dv[None, :], acc)
    tl.store(part_c_ptr + slot * FP + d, count)
    tl.store(part_shift_ptr + slot * FP + d, shift)
    if HAS_EXTRA:
        tl.store(part_s_ptr + slot * FP * DV + (D + e)[:, None] * DV + dv[None, :], acc_x)
        tl.store(part_c_ptr + slot * FP + D + e, count_x)
        tl.store(part_shift_ptr + slot * FP + D + e, shift_x)


@triton.jit
def _combine_rows(part_s_ptr, part_c_ptr, part_shift_ptr, bh, n_parts, row0, R: tl.constexpr, FP: tl.constexpr,
                  DV: tl.constexpr):  # fmt: skip
    """Sum ``n_parts`` partial states of rows ``row0 .. row0 + R`` (those below ``FP``) at their
    common largest shift; rows from ``FP`` on come back empty (``-inf`` shift)."""
    r = row0 + tl.arange(0, R)
    inside = r < FP
    dv = tl.arange(0, DV)
    shift = tl.full([R], const.NEG_INF, tl.float32)
    acc = tl.zeros([R, DV], tl.float32)
    count = tl.zeros([R], tl.float32)
    for part in tl.range(0, n_parts, num_stages=4):
        slot = bh.to(tl.int64) * n_parts + part
        part_shift = tl.load(part_shift_ptr + slot * FP + r, mask=inside, other=const.NEG_INF)
        new_shift = tl.maximum(shift, part_shift)
        old_factor = rescale_factor(shift, new_shift)
        part_factor = rescale_factor(part_shift, new_shift)
        part_s = tl.load(part_s_ptr + slot * FP * DV + r[:, None] * DV + dv[None, :], mask=inside[:, None], other=0.0)
        acc = acc * old_factor[:, None] + part_s * part_factor[:, None]
        count = count * old_factor + tl.load(part_c_ptr + slot * FP + r, mask=inside, other=0.0) * part_factor
        shift = new_shift
    return acc, count, shift


@triton.jit(do_not_specialize=["n_parts"])
def _state_combine_kernel(
    part_s_ptr, part_c_ptr, part_shift_ptr, s_ptr, c_ptr, shift_ptr, n_parts,
    DV: tl.constexpr, F: tl.constexpr, FP: tl.constexpr, R: tl.constexpr,
):  # fmt: skip
    # one program per (batch x head, block of R feature rows): rows are independent
    bh = tl.program_id(0)
    row0 = tl.program_id(1) * R
    rows = row0 + tl.arange(0, R)
    dv = tl.arange(0, DV)
    acc, count, shift = _combine_rows(part_s_ptr, part_c_ptr, part_shift_ptr, bh, n_parts, row0, R, FP, DV)
    keep = rows < F  # the last block of rows may run past F
    base = bh.to(tl.int64) * F
    tl.store(s_ptr + (base + rows)[:, None] * DV + dv[None, :], acc, mask=keep[:, None])
    tl.store(c_ptr + base + rows, count, mask=keep)
    tl.store(shift_ptr + base + rows, shift, mask=keep)


@triton.jit
def load_state(s_ptr, c_ptr, shift_ptr, bh, D: tl.constexpr, DV: tl.constexpr, F: tl.constexpr,
                HAS_EXTRA: tl.constexpr, EW: tl.constexpr):  # fmt: skip
    """Load a float32 state ``(S (F, DV), C (F,), shift (F,))`` as main and extra tiles.

    Missing extra rows come back as ``S = C = 0`` and ``shift = -inf``: features that never appear.
    """
    d = tl.arange(0, D)
    dv = tl.arange(0, DV)
    e = tl.arange(0, EW)
    base = bh.to(tl.int64) * F
    s = tl.load(s_ptr + (base + d)[:, None] * DV + dv[None, :])
    c = tl.load(c_ptr + base + d)
    shift = tl.load(shift_ptr + base + d)
    if HAS_EXTRA:
        keep = e < F - D
        s_x = tl.load(s_ptr + (base + D + e)[:, None] * DV + dv[None, :], mask=keep[:, None], other=0.0)
        c_x = tl.load(c_ptr + base + D + e, mask=keep, other=0.0)
        shift_x = tl.load(shift_ptr + base + D + e, mask=keep, other=const.NEG_INF)
    else:
        s_x = tl.zeros([EW, DV], tl.float32)
        c_x = tl.zeros([EW], tl.float32)
        shift_x = tl.full([EW], const.NEG_INF, tl.float32)
    return s, c, shift, s_x, c_x, shift_x


@triton.jit
def query_features(q_base, rows, valid, sq_l, sq_d, scale, shift, shift_x,
                    D: tl.constexpr, KERNEL: tl.constexpr, LOG_DOMAIN: tl.constexpr, HAS_EXTRA: tl.constexpr,
                    EW: tl.constexpr):  # fmt: skip
    """Load a query tile; return scaled inputs, raw features and the per-row log-normaliser."""
    d = tl.arange(0, D)
    x = tl.load(q_base + rows[:, None] * sq_l + d[None, :] * sq_d, mask=valid[:, None], other=0.0)
    x = x.to(tl.float32) * scale
    main, extra = feature_maps(x, KERNEL, False, EW)
    if HAS_EXTRA:
        top = tl.maximum(
            tl.max(log_magnitude(main, LOG_DOMAIN) + shift[None, :], axis=1),
            tl.max(log_magnitude(extra, LOG_DOMAIN) + shift_x[None, :], axis=1),
        )
        log_norm = finite_or_zero(top)
    else:
        log_norm = query_log_norm(main, shift, LOG_DOMAIN)
    return x, main, extra, log_norm


@triton.jit
def read_state(q_base, rows, valid, sq_l, sq_d, scale, s_op, s_scale, c, shift, s_x, c_x, shift_x,
               D: tl.constexpr, KERNEL: tl.constexpr, LOG_DOMAIN: tl.constexpr, HAS_EXTRA: tl.constexpr,
               EW: tl.constexpr, DT: tl.constexpr):  # fmt: skip
    """Outputs ``(rows, DV)`` in float32 of a tile of queries against a state (rows with no
    positively weighted key are 0, as ``guarded_divide``); ``s_op, s_scale`` are the state's
    main rows as :func:`~._common.state_operand` returns them."""
    _, main, extra, log_norm = query_features(
        q_base, rows, valid, sq_l, sq_d, scale, shift, shift_x, D, KERNEL, LOG_DOMAIN, HAS_EXTRA, EW
    )
    phi = scale_queries(main, shift, log_norm, LOG_DOMAIN)
    num = state_product(phi, s_op, s_scale, DT)
    den = tl.sum(phi * c[None, :], axis=1)
    if HAS_EXTRA:
        phi_x = scale_queries(extra, shift_x, log_norm, LOG_DOMAIN)
        num += extra_inner(phi_x, s_x, EW)
        den += tl.sum(phi_x * c_x[None, :], axis=1)
    positive = den > 0
    return tl.where(positive[:, None], num / tl.where(positive, den, 1.0)[:, None], 0.0)


@triton.jit(do_not_specialize=["heads", "length", "rows_per_part"])
def _readout_kernel(
    q_ptr, s_ptr, c_ptr, shift_ptr, out_ptr,
    sq_b, sq_h, sq_l, sq_d, so_b, so_h, so_l, so_d,
    heads, length, rows_per_part, scale,
    D: tl.constexpr, DV: tl.constexpr, F: tl.constexpr, BL: tl.constexpr,
    KERNEL: tl.constexpr, LOG_DOMAIN: tl.constexpr, HAS_EXTRA: tl.constexpr, EW: tl.constexpr,
    DT: tl.constexpr,
):  # fmt: skip
    # one program per (slice of queries, batch x head): the state is loaded and rounded once
    part = tl.program_id(0)
    bh = tl.program_id(1)
    batch, head = bh // heads, bh % heads
    dv = tl.arange(0, DV)
    s, c, shift, s_x, c_x, shift_x = load_state(s_ptr, c_ptr, shift_ptr, bh, D, DV, F, HAS_EXTRA, EW)
    s_op, s_scale = state_operand(s, DT)
    q_base = q_ptr + batch.to(tl.int64) * sq_b + head.to(tl.int64) * sq_h
    out_base = out_ptr + batch.to(tl.int64) * so_b + head.to(tl.int64) * so_h
    start = part * rows_per_part
    stop = tl.minimum(start + rows_per_part, length)
    for row0 in range(start, stop, BL):
        rows = row0 + tl.arange(0, BL)
        valid = rows < stop
        out = read_state(q_base, rows, valid, sq_l, sq_d, scale, s_op, s_scale, c, shift, s_x, c_x, shift_x,
                         D, KERNEL, LOG_DOMAIN, HAS_EXTRA, EW, DT)  # fmt: skip
        tl.store(out_base + rows[:, None] * so_l + dv[None, :] * so_d, cast(out, out_ptr.dtype.element_ty),
                 mask=valid[:, None])  # fmt: skip


@triton.jit
def attend_tile(q_base, k_base, v_base, out_base, sq_l, sq_d, sk_l, sk_d, sv_l, sv_d, so_l, so_d,
                tile, length_q, length_k, scale,
                D: tl.constexpr, DV: tl.constexpr, BL: tl.constexpr, KERNEL: tl.constexpr, LOG_DOMAIN: tl.constexpr,
                HAS_EXTRA: tl.constexpr, EW: tl.constexpr, DT: tl.constexpr):  # fmt: skip
    """Outputs of query tile ``tile`` of one (batch, head): fold all ``length_k`` keys into a
    state, read it out, store (the whole forward in one program; programs of a head re-read its
    keys, from L2 for short sequences)."""
    s, c, shift, s_x, c_x, shift_x = fold_keys(
        k_base, v_base, sk_l, sk_d, sv_l, sv_d, 0, length_k, scale, D, DV, BL, KERNEL, LOG_DOMAIN, HAS_EXTRA, EW, DT
    )
    rows = tile * BL + tl.arange(0, BL)
    valid = rows < length_q
    s_op, s_scale = state_operand(s, DT)
    out = read_state(q_base, rows, valid, sq_l, sq_d, scale, s_op, s_scale, c, shift, s_x, c_x, shift_x,
                     D, KERNEL, LOG_DOMAIN, HAS_EXTRA, EW, DT)  # fmt: skip
    dv = tl.arange(0, DV)
    tl.store(out_base + rows[:, None] * so_l + dv[None, :] * so_d, cast(out, out_base.dtype.element_ty),
             mask=valid[:, None])  # fmt: skip


@triton.jit(do_not_specialize=["heads", "length_q", "length_k"])
def _short_kernel(
    q_ptr, k_ptr, v_ptr, out_ptr,
    sq_b, sq_h, sq_l, sq_d, sk_b, sk_h, sk_l, sk_d, sv_b, sv_h, sv_l, sv_d, so_b, so_h, so_l, so_d,
    heads, length_q, length_k, scale,
    D: tl.constexpr, DV: tl.constexpr, BL: tl.constexpr,
    KERNEL: tl.constexpr, LOG_DOMAIN: tl.constexpr, HAS_EXTRA: tl.constexpr, EW: tl.constexpr,
    DT: tl.constexpr,
):  # fmt: skip
    tile = tl.program_id(0)
    bh = tl.program_id(1)
    batch, head = (bh // heads).to(tl.int64), (bh % heads).to(tl.int64)
    attend_tile(
        q_ptr + batch * sq_b + head * sq_h, k_ptr + batch * sk_b + head * sk_h, v_ptr + batch * sv_b + head * sv_h,
        out_ptr + batch * so_b + head * so_h, sq_l, sq_d, sk_l, sk_d, sv_l, sv_d, so_l, so_d,
        tile, length_q, length_k, scale, D, DV, BL, KERNEL, LOG_DOMAIN, HAS_EXTRA, EW, DT,
    )  # fmt: skip


def fold_key_slices(k: Tensor, v: Tensor, kernel_id: int, scale: float, rows_per_part: int,
                    block_rows: int = BLOCK_ROWS) -> tuple[Tensor, Tensor, Tensor]:  # fmt: skip
    """Partial states of consecutive slices of ``rows_per_part`` keys (one launch).

    Args:
        k: ``(B, H, Lk, D)``; v: ``(B, H, Lk, Dv)`` (any strides, one dtype).
        kernel_id, scale: as :func:`bidirectional_forward`.
        rows_per_part: keys per slice, a multiple of ``block_rows`` (the rows of a tile).

    Returns:
        ``(S (B*H, P, F, Dv), C (B*H, P, F), shift (B*H, P, F))`` in float32 for the
        ``P = ceil(Lk / rows_per_part)`` slices, each at its own shift (the slice's largest key
        log-magnitude per feature, ``-inf`` for a feature no key reaches).
    """
    batch, heads, length, head_dim = k.shape
    value_dim = v.shape[-1]
    padded = padded_features(head_dim, kernel_id)
    n_parts = cdiv(length, rows_per_part)
    shape, f32 = (batch * heads, n_parts, padded), torch.float32
    part_s = empty(*shape, value_dim, device=k.device, dtype=f32)
    part_c, part_shift = empty(*shape, device=k.device, dtype=f32), empty(*shape, device=k.device, dtype=f32)
    warps = state_warps(head_dim, value_dim, v.dtype)
    options = launch_options("_state_partial_kernel", warps, v.dtype, head_dim, value_dim)
    direct(_state_partial_kernel)[(n_parts, batch * heads)](
        k, v, part_s, part_c, part_shift, *k.stride(), *v.stride(),
        heads, length, rows_per_part, n_parts, scale,
        DV=value_dim, FP=padded, BL=block_rows, DT=TL_DTYPES[v.dtype],
        **options, **kernel_flags(kernel_id, head_dim),
    )  # fmt: skip
    return part_s, part_c, part_shift


def combine_slices(part_s: Tensor, part_c: Tensor, part_shift: Tensor, batch: int, heads: int) -> tuple[Tensor, ...]:
    """Sum the partial states of :func:`fold_key_slices` at their common shift (one launch).

    Returns:
        ``(S (B, H, F, Dv), C (B, H, F), shift (B, H, F))`` in float32, the layout of
        :class:`~yolo_lat.ela.ELAState`.
    """
    _, n_parts, features, value_dim = part_s.shape
    kwargs = {"device": part_s.device, "dtype": torch.float32}
    state_s = empty(batch, heads, features, value_dim, **kwargs)
    state_c, state_shift = empty(batch, heads, features, **kwargs), empty(batch, heads, features, **kwargs)
    direct(_state_combine_kernel)[(batch * heads, cdiv(features, COMBINE_ROWS))](
        part_s, part_c, part_shift, state_s, state_c, state_shift, n_parts,
        DV=value_dim, F=features, FP=features, R=COMBINE_ROWS,
        num_warps=launch_warps("_state_combine_kernel", 4),
    )  # fmt: skip
    return state_s, state_c, state_shift


def read_out(q: Tensor, state_s: Tensor, state_c: Tensor, state_shift: Tensor, kernel_id: int, scale: float,
             dtype: torch.dtype) -> Tensor:  # fmt: skip
    """Outputs ``(B, H, Lq, Dv)`` in ``dtype`` of queries ``q`` against a float32 state (one launch)."""
    batch, heads, length, head_dim = q.shape
    features, value_dim = state_s.shape[-2:]
    out = like_layout(q, value_dim, dtype)
    n_parts, rows = sequence_slices(length, batch * heads, q.device, READOUT_PROGRAMS_PER_SM)
    options = launch_options("_readout_kernel", 4, dtype, head_dim, value_dim)
    direct(_readout_kernel)[(n_parts, batch * heads)](
        q, state_s, state_c, state_shift, out, *q.stride(), *out.stride(), heads, length, rows, scale,
        DV=value_dim, F=features, BL=BLOCK_ROWS, DT=TL_DTYPES[dtype], **options,
        **kernel_flags(kernel_id, head_dim),
    )  # fmt: skip
    return out


def attend_short(q: Tensor, k: Tensor, v: Tensor, kernel_id: int, scale: float) -> Tensor:
    """Outputs ``(B, H, Lq, Dv)`` in v's dtype in one launch (no state): each program folds all
    keys of its head, then reads out one tile of queries. Meant for short key sequences (see
    :data:`SHORT_KEYS`), where one launch instead of three saves more than the re-reads cost."""
    batch, heads, length_q, head_dim = q.shape
    value_dim = v.shape[-1]
    out = like_layout(q, value_dim, v.dtype)
    warps = state_warps(head_dim, value_dim, v.dtype)
    options = launch_options("_short_kernel", warps, v.dtype, head_dim, value_dim)
    direct(_short_kernel)[(cdiv(length_q, BLOCK_ROWS), batch * heads)](
        q, k, v, out, *q.stride(), *k.stride(), *v.stride(), *out.stride(), heads, length_q, k.shape[2], scale,
        DV=value_dim, BL=BLOCK_ROWS, DT=TL_DTYPES[v.dtype],
        **options, **kernel_flags(kernel_id, head_dim),
    )  # fmt: skip
    return out


def bidirectional_output(q: Tensor, k: Tensor, v: Tensor, kernel_id: int, scale: float) -> Tensor:
    """Outputs only (inference): :func:`attend_short` up to :data:`SHORT_KEYS` keys, else the
    three launches of :func:`bidirectional_forward` without returning the state."""
    if k.shape[2] <= SHORT_KEYS:
        return attend_short(q, k, v, kernel_id, scale)
    return bidirectional_forward(q, k, v, kernel_id, scale)[0]


def bidirectional_forward(
    q: Tensor, k: Tensor, v: Tensor, kernel_id: int, scale: float
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Launch the bidirectional forward kernels: key slices, their sum, the readout.

    Args:
        q: ``(B, H, Lq, D)``; k: ``(B, H, Lk, D)``; v: ``(B, H, Lk, Dv)``; any strides, one dtype
            among float32/float16/bfloat16; D, Dv powers of two in 16..128.
        kernel_id: 0 Hadamard Exp, 1 sum / 2 sub squared Euclidean, 3 modulated dot.
        scale: multiplies q and k before the feature maps.

    Returns:
        ``(out (B, H, Lq, Dv) in v's dtype, S (B, H, F, Dv), C (B, H, F), shift (B, H, F))``, the
        state in float32 with the layout of :class:`~yolo_lat.ela.ELAState`.

    Example:
        >>> out, S, C, shift = bidirectional_forward(q, k, v, 0, 64**-0.5)  # doctest: +SKIP
    """
    batch, heads = q.shape[:2]
    _, rows = sequence_slices(k.shape[2], batch * heads, q.device)
    state = combine_slices(*fold_key_slices(k, v, kernel_id, scale, rows), batch, heads)
    return read_out(q, *state, kernel_id, scale, v.dtype), *state
