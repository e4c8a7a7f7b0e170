"""Gradients of the bidirectional ELA of :mod:`.bidirectional`, in Triton, from its saved float32 state.

``_query_grad_kernel`` recomputes the forward of a query tile, writes ``dq`` and a partial
gradient ``G = sum_i phi_i [dy_i, -delta_i]`` of the state; the partials are summed and
``_key_grad_kernel`` turns ``G`` into ``dk`` and ``dv``. Strides as in the forward: NCHW views are
read in place and their gradients allocated channel-first.
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
    extra_outer,
    extra_project,
    feature_input_grad,
    feature_maps,
    kernel_flags,
    key_coefficient,
    launch_options,
    mm_f32,
    query_coefficient,
    scale_keys,
    scale_queries,
)
from .bidirectional import BLOCK_ROWS, load_state, query_features, sequence_slices
from .buffers import cdiv, empty, feature_count, like_layout, padded_features
from .launcher import direct

#: Programs per multiprocessor aimed at by the backward's query pass: 8 warps (4 would spill) of
#: 219 registers, so one fits; more would only add partial gradients to sum.
QUERY_GRAD_PROGRAMS_PER_SM = 1


@triton.jit(do_not_specialize=["heads", "length", "rows_per_part", "n_parts"])
def _query_grad_kernel(
    q_ptr, dout_ptr, s_ptr, c_ptr, shift_ptr, dq_ptr, part_g_ptr, part_gc_ptr,
    sq_b, sq_h, sq_l, sq_d, sg_b, sg_h, sg_l, sg_d, sdq_b, sdq_h, sdq_l, sdq_d,
    heads, length, rows_per_part, n_parts, scale,
    D: tl.constexpr, DV: tl.constexpr, F: tl.constexpr, FP: tl.constexpr, BL: tl.constexpr,
    KERNEL: tl.constexpr, LOG_DOMAIN: tl.constexpr, HAS_EXTRA: tl.constexpr, EW: tl.constexpr,
    DT: tl.constexpr,
):  # fmt: skip
    part = tl.program_id(0)
    bh = tl.program_id(1)
    batch, head = bh // heads, bh % heads
    d = tl.arange(0, D)
    dv = tl.arange(0, DV)
    e = tl.arange(0, EW)
    s, c, shift, s_x, c_x, shift_x = load_state(s_ptr, c_ptr, shift_ptr, bh, D, DV, F, HAS_EXTRA, EW)
    q_base = q_ptr + batch.to(tl.int64) * sq_b + head.to(tl.int64) * sq_h
    g_base = dout_ptr + batch.to(tl.int64) * sg_b + head.to(tl.int64) * sg_h
    dq_base = dq_ptr + batch.to(tl.int64) * sdq_b + head.to(tl.int64) * sdq_h
    g_acc = tl.zeros([D, DV], tl.float32)
    gc_acc = tl.zeros([D], tl.float32)
    g_acc_x = tl.zeros([EW, DV], tl.float32)
    gc_acc_x = tl.zeros([EW], tl.float32)
    start = part * rows_per_part
    stop = tl.minimum(start + rows_per_part, length)
    for row0 in range(start, stop, BL):
        rows = row0 + tl.arange(0, BL)
        valid = rows < stop
        x, main, extra, log_norm = query_features(
            q_base, rows, valid, sq_l, sq_d, scale, shift, shift_x, D, KERNEL, LOG_DOMAIN, HAS_EXTRA, EW
        )
        dy = tl.load(g_base + rows[:, None] * sg_l + dv[None, :] * sg_d, mask=valid[:, None], other=0.0)
        dy = cast(dy, DT)
        dy32 = dy.to(tl.float32)
        phi = scale_queries(main, shift, log_norm, LOG_DOMAIN)
        # X = S dy per feature, accurate (dy is exact in DT, S is split); delta = dy . y is then
        # phi . X / den, computed in float32 without a rounded y: the query gradient
        # X - delta C cancels strongly when features discriminate little.
        proj = mm_f32(dy, tl.trans(s), DT, const.EXACT, const.SPLIT)
        den = tl.sum(phi * c[None, :], axis=1)
        num_dy = tl.sum(phi * proj, axis=1)
        if HAS_EXTRA:
            phi_x = scale_queries(extra, shift_x, log_norm, LOG_DOMAIN)
            proj_x = extra_project(dy32, s_x, EW)
            den += tl.sum(phi_x * c_x[None, :], axis=1)
            num_dy += tl.sum(phi_x * proj_x, axis=1)
        live = (den > 0) & valid
        safe_den = tl.where(live, den, 1.0)
        # lse = log of the true denominator; dead rows (no weight) get +inf: no gradient
        lse = tl.where(live, log_norm + tl.log(safe_den), const.POS_INF)
        delta = tl.where(live, num_dy / safe_den, 0.0)
        coef = query_coefficient(main, shift, lse, LOG_DOMAIN)
        grad_main = coef * (proj - delta[:, None] * c[None, :])
        # G = sum_i phi_i dy_i / den_i: normalised weights of about 1/L, scaled per feature before
        # rounding (float16 subnormals) and split in two parts (dk and dv are differences of such sums)
        phi_hat = scale_queries(main, shift, lse, LOG_DOMAIN)
        g_acc = mm_f32(tl.trans(phi_hat), dy, DT, const.SPLIT, const.EXACT, g_acc)
        gc_acc -= tl.sum(phi_hat * delta[:, None], axis=0)
        grad_extra = tl.zeros([BL, EW], tl.float32)
        if HAS_EXTRA:
            coef_x = query_coefficient(extra, shift_x, lse, LOG_DOMAIN)
            grad_extra = coef_x * (proj_x - delta[:, None] * c_x[None, :])
            phi_hat_x = scale_queries(extra, shift_x, lse, LOG_DOMAIN)
            g_acc_x += extra_outer(phi_hat_x, dy32, EW)
            gc_acc_x -= tl.sum(phi_hat_x * delta[:, None], axis=0)
        dx = feature_input_grad(x, grad_main, grad_extra, KERNEL, False, EW) * scale
        tl.store(dq_base + rows[:, None] * sdq_l + d[None, :] * sdq_d, cast(dx, dq_ptr.dtype.element_ty),
                 mask=valid[:, None])  # fmt: skip
    slot = bh.to(tl.int64) * n_parts + part
    tl.store(part_g_ptr + slot * FP * DV + d[:, None] * DV + dv[None, :], g_acc)
    tl.store(part_gc_ptr + slot * FP + d, gc_acc)
    if HAS_EXTRA:
        tl.store(part_g_ptr + slot * FP * DV + (D + e)[:, None] * DV + dv[None, :], g_acc_x)
        tl.store(part_gc_ptr + slot * FP + D + e, gc_acc_x)


@triton.jit(do_not_specialize=["heads", "length"])
def _key_grad_kernel(
    k_ptr, v_ptr, g_ptr, gc_ptr, shift_ptr, dk_ptr, dv_ptr,
    sk_b, sk_h, sk_l, sk_d, sv_b, sv_h, sv_l, sv_d,
    sdk_b, sdk_h, sdk_l, sdk_d, sdv_b, sdv_h, sdv_l, sdv_d,
    heads, length, scale,
    D: tl.constexpr, DV: tl.constexpr, F: tl.constexpr, BL: tl.constexpr,
    KERNEL: tl.constexpr, LOG_DOMAIN: tl.constexpr, HAS_EXTRA: tl.constexpr, EW: tl.constexpr,
    DT: tl.constexpr,
):  # fmt: skip
    tile = tl.program_id(0)
    bh = tl.program_id(1)
    batch, head = bh // heads, bh % heads
    rows = tile * BL + tl.arange(0, BL)
    valid = rows < length
    d = tl.arange(0, D)
    dv = tl.arange(0, DV)
    g, gc, shift, g_x, gc_x, shift_x = load_state(g_ptr, gc_ptr, shift_ptr, bh, D, DV, F, HAS_EXTRA, EW)
    k_base = k_ptr + batch.to(tl.int64) * sk_b + head.to(tl.int64) * sk_h
    v_base = v_ptr + batch.to(tl.int64) * sv_b + head.to(tl.int64) * sv_h
    x = tl.load(k_base + rows[:, None] * sk_l + d[None, :] * sk_d, mask=valid[:, None], other=0.0)
    x = x.to(tl.float32) * scale
    values = tl.load(v_base + rows[:, None] * sv_l + dv[None, :] * sv_d, mask=valid[:, None], other=0.0)
    main, extra = feature_maps(x, KERNEL, True, EW)
    psi = tl.where(valid[:, None], scale_keys(main, shift, LOG_DOMAIN), 0.0)
    dvalue = mm_f32(psi, g, DT, const.SPLIT, const.SPLIT)
    grad_main = key_coefficient(main, shift, LOG_DOMAIN) * (
        mm_f32(values, tl.trans(g), DT, const.EXACT, const.SPLIT) + gc[None, :]
    )
    grad_extra = tl.zeros([BL, EW], tl.float32)
    if HAS_EXTRA:
        psi_x = tl.where(valid[:, None], scale_keys(extra, shift_x, LOG_DOMAIN), 0.0)
        dvalue += extra_inner(psi_x, g_x, EW)
        grad_extra = key_coefficient(extra, shift_x, LOG_DOMAIN) * (
            extra_project(values.to(tl.float32), g_x, EW) + gc_x[None, :]
        )
    dx = feature_input_grad(x, grad_main, grad_extra, KERNEL, True, EW) * scale
    dk_base = dk_ptr + batch.to(tl.int64) * sdk_b + head.to(tl.int64) * sdk_h
    dv_base = dv_ptr + batch.to(tl.int64) * sdv_b + head.to(tl.int64) * sdv_h
    tl.store(dk_base + rows[:, None] * sdk_l + d[None, :] * sdk_d, cast(dx, dk_ptr.dtype.element_ty),
             mask=valid[:, None])  # fmt: skip
    tl.store(dv_base + rows[:, None] * sdv_l + dv[None, :] * sdv_d, cast(dvalue, dv_ptr.dtype.element_ty),
             mask=valid[:, None])  # fmt: skip


def bidirectional_backward(
    grad_out: Tensor,
    grad_s: Tensor | None,
    grad_c: Tensor | None,
    q: Tensor,
    k: Tensor,
    v: Tensor,
    state_s: Tensor,
    state_c: Tensor,
    state_shift: Tensor,
    kernel_id: int,
    scale: float,
) -> tuple[Tensor, Tensor, Tensor]:
    """Gradients ``(dq, dk, dv)`` of the bidirectional forward, from the saved float32 state.

    Args:
        grad_out: ``(B, H, Lq, Dv)`` gradient of the output (any strides).
        grad_s, grad_c: gradients of the returned state ``S``/``C`` (or None).
        q, k, v, kernel_id, scale: the forward's inputs.
        state_s, state_c, state_shift: the forward's float32 state.

    Returns:
        ``dq, dk, dv`` in the dtypes and layouts of ``q, k, v``.

    Example:
        >>> out, S, C, shift = bidirectional_forward(q, k, v, 0, 0.125)  # doctest: +SKIP
        >>> dy = torch.ones_like(out)  # doctest: +SKIP
        >>> dq, dk, dv = bidirectional_backward(dy, None, None, q, k, v, S, C, shift, 0, 0.125)  # doctest: +SKIP
    """
    batch, heads, length_q, head_dim = q.shape
    length_k, value_dim = v.shape[2], v.shape[3]
    features = feature_count(head_dim, kernel_id)
    padded = padded_features(head_dim, kernel_id)
    flags = kernel_flags(kernel_id, head_dim)
    dt = TL_DTYPES[v.dtype]
    heavy = 8 if head_dim * value_dim >= 4096 else 4
    device = q.device
    n_parts, rows = sequence_slices(length_q, batch * heads, q.device, QUERY_GRAD_PROGRAMS_PER_SM)
    part_g = empty(batch * heads, n_parts, padded, value_dim, device=device, dtype=torch.float32)
    part_gc = empty(batch * heads, n_parts, padded, device=device, dtype=torch.float32)
    dq = like_layout(q, head_dim, q.dtype)
    options = launch_options("_query_grad_kernel", 8, v.dtype, head_dim, value_dim)
    direct(_query_grad_kernel)[(n_parts, batch * heads)](
        q, grad_out, state_s, state_c, state_shift, dq, part_g, part_gc,
        *q.stride(), *grad_out.stride(), *dq.stride(), heads, length_q, rows, n_parts, scale,
        DV=value_dim, F=features, FP=padded, BL=BLOCK_ROWS, DT=dt, **options,
        **flags,
    )  # fmt: skip
    g = part_g.sum(1)[:, :features]
    gc = part_gc.sum(1)[:, :features]
    if grad_s is not None:
        g = g + grad_s.reshape(batch * heads, features, value_dim)
    if grad_c is not None:
        gc = gc + grad_c.reshape(batch * heads, features)
    g, gc = g.contiguous(), gc.contiguous()
    dk = like_layout(k, head_dim, k.dtype)
    dv = like_layout(v, value_dim, v.dtype)
    options = launch_options("_key_grad_kernel", heavy, v.dtype, head_dim, value_dim)
    direct(_key_grad_kernel)[(cdiv(length_k, BLOCK_ROWS), batch * heads)](
        k, v, g, gc, state_shift, dk, dv, *k.stride(), *v.stride(), *dk.stride(), *dv.stride(),
        heads, length_k, scale, DV=value_dim, F=features, BL=BLOCK_ROWS, DT=dt,
        **options, **flags,
    )  # fmt: skip
    return dq, dk, dv
