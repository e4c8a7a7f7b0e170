"""Triton building blocks shared by the ELA kernels: feature maps, shifts, matrix products.

Features are held as two register tiles: ``main`` of shape ``(rows, D)`` and, for the
linear-domain kernels whose feature size is ``D + 2``, ``extra`` of shape ``(rows, EXTRA_W)``
(``EXTRA_W = 2``) holding the two extra features. Products with the ``extra`` tile never use
``tl.dot``: they are rank-2 updates in float32 on the CUDA cores (:func:`extra_inner` and friends),
exact and cheap (2 features against D on the tensor cores). Tensor-core products with a
16-wide padded extra tile beside the 64-wide ones gave wrong key gradients and illegal memory
accesses on a GPU in low precision (see docs/gpu-kernels.md).

Every helper mirrors a function of :mod:`yolo_lat.ela.stable` so that the kernels compute the same
function as the PyTorch path:

* shifts are per-feature log-magnitudes, ``-inf`` where no key has been seen;
* keys are scaled by ``exp(-shift)``, queries by ``exp(shift - log_norm)``;
* a state moved to a larger shift is multiplied by ``exp(old - new)``, or 0 when it was empty.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from . import buffers, const

#: Width of the tile that holds the two extra features of the linear-domain kernels.
EXTRA_W = buffers.EXTRA_W


@triton.jit
def cast(x, DT: tl.constexpr):
    """``x.to(DT)``, rounding to nearest even. (The interpreter truncates float32 to bfloat16,
    triton 3.8; there the rounding is done on the bits, as the GPU does it.)"""
    if const.INTERPRETED and DT == tl.bfloat16:  # noqa: SIM300 (a constexpr comparison)
        bits = x.to(tl.float32).to(tl.uint32, bitcast=True)
        bits = (bits + 0x7FFF + ((bits >> 16) & 1)) & 0xFFFF0000
        return bits.to(tl.float32, bitcast=True).to(DT)
    return x.to(DT)


@triton.jit
def mm(a, b, DT: tl.constexpr, acc=None):
    """``a @ b`` (``+ acc``) with operands rounded to ``DT`` and float32 accumulation (IEEE for float32).

    Passing the running sum as ``acc`` keeps one accumulator in the tensor cores' layout across a
    chain of products (``tl.dot(a, b, acc)``) instead of converting a fresh product to it.
    """
    a = cast(a, DT)
    b = cast(b, DT)
    if const.INTERPRETED:
        return tl.dot(a.to(tl.float32), b.to(tl.float32), acc)
    if DT == tl.float32:  # noqa: SIM300
        return tl.dot(a, b, acc, input_precision="ieee")
    return tl.dot(a, b, acc)


@triton.jit
def power_of_two_scale(x, axis: tl.constexpr):
    """Per-slice power of two ``2^-floor(log2(max |x|))`` along ``axis`` (1 for all-zero slices).

    Multiplying by it is exact and brings the slice's largest magnitude into ``[1, 2)``: rounded
    to float16, normalised attention weights (about ``1 / L``) would otherwise fall among the
    subnormals (below 6.1e-5), whose absolute spacing of 6e-8 is a large relative error. The
    exponent is clamped to +-100 so the scale stays finite for slices of float32 subnormals
    (e.g. ``exp(-100)``, keys far below the running maximum).
    """
    top = tl.max(tl.abs(x), axis=axis)
    exponent = tl.floor(tl.log2(tl.where(top > 0, top, 1.0)))
    return tl.exp2(-tl.minimum(tl.maximum(exponent, -100.0), 100.0))


@triton.jit
def state_operand(s, DT: tl.constexpr):
    """A float32 state ``s`` (F, N) as the second operand of a product in ``DT``: ``(rounded,
    column scale)``; divide the product's columns by the scale.

    A state sums up to L key terms, so in float16 a column can pass its largest value, 65504 (then
    outputs were inf): a column whose largest magnitude reaches 2^15 is scaled down by a power of
    two first (exact), so that it peaks in ``[2^14, 2^15)``. Smaller columns keep scale 1 (and
    their absolute precision); in bfloat16 and float32 the scale is 1.
    """
    if DT == tl.float16:  # noqa: SIM300
        top = tl.max(tl.abs(s), axis=0)
        exponent = tl.maximum(tl.floor(tl.log2(tl.where(top > 0, top, 1.0))) - 14.0, 0.0)
        column_scale = tl.exp2(-exponent)
    else:
        column_scale = tl.full([s.shape[1]], 1.0, tl.float32)
    return cast(s * column_scale[None, :], DT), column_scale


@triton.jit
def state_product(a, s_op, s_scale, DT: tl.constexpr):
    """``a @ S`` from the ``(s_op, s_scale)`` of :func:`state_operand` (scaled back in float16)."""
    out = mm(a, s_op, DT)
    if DT == tl.float16:  # noqa: SIM300
        out = out / s_scale[None, :]
    return out


@triton.jit
def mm_f32(a, b, DT: tl.constexpr, A: tl.constexpr, B: tl.constexpr, acc=None):
    """``a @ b`` (``+ acc``) on the tensor cores with float32 operands made accurate (see :data:`.const.EXACT`).

    ``A``/``B`` give each operand's kind. A split operand adds one product
    (``a_high b_high + a_low b_high + a_high b_low``); splitting is used where the product meets a
    cancelling subtraction (``S dy - C delta``, ``v G + gc``), which magnifies rounding errors,
    and for the key features of a state. In float16 a float32 operand (``ROUND`` or ``SPLIT``) is
    first scaled by powers of two, per row of ``a`` and per column of ``b``
    (:func:`power_of_two_scale`), and the product is scaled back, so that its rounding error is
    relative to each row's or column's largest element and not lost among float16's subnormals;
    a ``UNIT_SPLIT`` operand takes the fixed :data:`.const.UNIT_SCALE` instead. bfloat16 has float32's
    exponent range, where such a scaling changes no rounding. Without a per-row scaling the
    products chain straight into ``acc``. In float32 this is :func:`mm` (IEEE products).
    """
    tl.static_assert(B != const.UNIT_SPLIT, "UNIT_SPLIT is for the first operand")
    if DT == tl.float32:  # noqa: SIM300
        out = mm(a, b, DT, acc)
    elif DT == tl.bfloat16 or A == const.UNIT_SPLIT:  # noqa: SIM300
        if DT == tl.float16:  # noqa: SIM300 (a float16 UNIT_SPLIT operand)
            tl.static_assert(B == const.EXACT, "a float16 UNIT_SPLIT product needs an exact second operand")
            a = a * const.UNIT_SCALE
            if acc is not None:
                acc = acc * const.UNIT_SCALE
        a_high = cast(a, DT)
        b_high = cast(b, DT)
        out = mm(a_high, b_high, DT, acc)
        if A == const.SPLIT or A == const.UNIT_SPLIT:
            out = mm(a - a_high.to(tl.float32), b_high, DT, out)
        if B == const.SPLIT:
            out = mm(a_high, b - b_high.to(tl.float32), DT, out)
        if DT == tl.float16:  # noqa: SIM300
            out = out * (1.0 / const.UNIT_SCALE)
    else:
        if A != const.EXACT:
            a_scale = power_of_two_scale(a, 1)[:, None]
            a = a * a_scale
        if B != const.EXACT:
            b_scale = power_of_two_scale(b, 0)[None, :]
            b = b * b_scale
        a_high = cast(a, DT)
        b_high = cast(b, DT)
        out = mm(a_high, b_high, DT)
        if A == const.SPLIT:
            out = mm(a - a_high.to(tl.float32), b_high, DT, out)
        if B == const.SPLIT:
            out = mm(a_high, b - b_high.to(tl.float32), DT, out)
        if A != const.EXACT:
            out = out / a_scale
        if B != const.EXACT:
            out = out / b_scale
        if acc is not None:
            out += acc
    return out


@triton.jit
def extra_inner(a_x, b_x, EW: tl.constexpr):
    """``a_x @ b_x`` for ``a_x (R, EW)`` and ``b_x (EW, N)``: a float32 sum over the extra features."""
    cols = tl.arange(0, EW)[None, :]
    rows = tl.arange(0, EW)[:, None]
    out = tl.zeros([a_x.shape[0], b_x.shape[1]], tl.float32)
    for c in tl.static_range(EW):
        a_c = tl.sum(tl.where(cols == c, a_x, 0.0), axis=1)
        b_c = tl.sum(tl.where(rows == c, b_x, 0.0), axis=0)
        out += a_c[:, None] * b_c[None, :]
    return out


@triton.jit
def extra_pair(a_x, b_x, EW: tl.constexpr):
    """``a_x @ b_x^T`` for ``a_x (R, EW)`` and ``b_x (S, EW)``: ``(R, S)`` pairwise extra-feature products."""
    cols = tl.arange(0, EW)[None, :]
    out = tl.zeros([a_x.shape[0], b_x.shape[0]], tl.float32)
    for c in tl.static_range(EW):
        a_c = tl.sum(tl.where(cols == c, a_x, 0.0), axis=1)
        b_c = tl.sum(tl.where(cols == c, b_x, 0.0), axis=1)
        out += a_c[:, None] * b_c[None, :]
    return out


@triton.jit
def extra_outer(a_x, b, EW: tl.constexpr):
    """``a_x^T @ b`` for ``a_x (K, EW)`` and ``b (K, N)``: ``(EW, N)``, e.g. a state ``psi^T V``."""
    cols = tl.arange(0, EW)[None, :]
    rows = tl.arange(0, EW)[:, None]
    out = tl.zeros([EW, b.shape[1]], tl.float32)
    for c in tl.static_range(EW):
        a_c = tl.sum(tl.where(cols == c, a_x, 0.0), axis=1)
        out += tl.where(rows == c, tl.sum(a_c[:, None] * b, axis=0)[None, :], 0.0)
    return out


@triton.jit
def extra_project(a, b_x, EW: tl.constexpr):
    """``a @ b_x^T`` for ``a (R, N)`` and ``b_x (EW, N)``: ``(R, EW)``, e.g. ``dy S_x^T``."""
    cols = tl.arange(0, EW)[None, :]
    rows = tl.arange(0, EW)[:, None]
    out = tl.zeros([a.shape[0], EW], tl.float32)
    for c in tl.static_range(EW):
        b_c = tl.sum(tl.where(rows == c, b_x, 0.0), axis=0)
        out += tl.where(cols == c, tl.sum(a * b_c[None, :], axis=1)[:, None], 0.0)
    return out


@triton.jit
def extra_right(m, b_x, EW: tl.constexpr):
    """``m @ b_x`` for ``m (R, S)`` and ``b_x (S, EW)``: ``(R, EW)``."""
    cols = tl.arange(0, EW)[None, :]
    out = tl.zeros([m.shape[0], EW], tl.float32)
    for c in tl.static_range(EW):
        b_c = tl.sum(tl.where(cols == c, b_x, 0.0), axis=1)
        out += tl.where(cols == c, tl.sum(m * b_c[None, :], axis=1)[:, None], 0.0)
    return out


@triton.jit
def extra_left_transposed(m, a_x, EW: tl.constexpr):
    """``m^T @ a_x`` for ``m (R, S)`` and ``a_x (R, EW)``: ``(S, EW)``."""
    cols = tl.arange(0, EW)[None, :]
    out = tl.zeros([m.shape[1], EW], tl.float32)
    for c in tl.static_range(EW):
        a_c = tl.sum(tl.where(cols == c, a_x, 0.0), axis=1)
        out += tl.where(cols == c, tl.sum(m * a_c[:, None], axis=0)[:, None], 0.0)
    return out


@triton.jit
def feature_maps(x, KERNEL: tl.constexpr, KEY_SIDE: tl.constexpr, EW: tl.constexpr):
    """Features of scaled inputs ``x`` (rows, D) float32: ``(main (rows, D), extra (rows, EW))``.

    Log-domain Hadamard Exp returns ``log phi = x`` (its ``extra`` is unused zeros). The others
    return linear features: sum/sub squared Euclidean ``phi = [a, |a|^2, 1]``,
    ``psi = [+-2b, 1, |b|^2]``; modulated dot ``(|x|^2 + 1) [x, sqrt(|x|^2 + 1e-12), 1]``.
    """
    cols = tl.arange(0, EW)[None, :]
    if KERNEL == const.HADAMARD_EXP:
        main = x
        extra = tl.zeros([x.shape[0], EW], tl.float32)
    else:
        norm2 = tl.sum(x * x, axis=1)[:, None]
        if KERNEL == const.MODULATED_DOT:
            amplitude = norm2 + 1.0
            main = amplitude * x
            first = amplitude * tl.sqrt(norm2 + 1e-12)
            second = amplitude
        elif KEY_SIDE:
            if KERNEL == const.SUM_SQ_EUCLID:
                main = 2.0 * x
            else:
                main = -2.0 * x
            first = tl.full(norm2.shape, 1.0, tl.float32)
            second = norm2
        else:
            main = x
            first = norm2
            second = tl.full(norm2.shape, 1.0, tl.float32)
        extra = tl.where(cols == 0, first, tl.where(cols == 1, second, 0.0))
    return main, extra


@triton.jit
def feature_input_grad(x, grad_main, grad_extra, KERNEL: tl.constexpr, KEY_SIDE: tl.constexpr, EW: tl.constexpr):
    """Chain rule through :func:`feature_maps`: gradient with respect to the scaled inputs ``x``.

    ``grad_main``/``grad_extra`` are gradients with respect to the features (for the log-domain
    kernel, with respect to the log-features).
    """
    if KERNEL == const.HADAMARD_EXP:
        return grad_main
    cols = tl.arange(0, EW)[None, :]
    g0 = tl.sum(tl.where(cols == 0, grad_extra, 0.0), axis=1)[:, None]
    g1 = tl.sum(tl.where(cols == 1, grad_extra, 0.0), axis=1)[:, None]
    if KERNEL == const.MODULATED_DOT:
        norm2 = tl.sum(x * x, axis=1)[:, None]
        amplitude = norm2 + 1.0
        radius = tl.sqrt(norm2 + 1e-12)
        inner = tl.sum(grad_main * x, axis=1)[:, None] + g0 * radius + g1
        return amplitude * (grad_main + g0 * x / radius) + 2.0 * x * inner
    if KEY_SIDE:
        if KERNEL == const.SUM_SQ_EUCLID:
            return 2.0 * grad_main + 2.0 * x * g1
        return -2.0 * grad_main + 2.0 * x * g1
    return grad_main + 2.0 * x * g0


@triton.jit
def log_magnitude(f, LOG_DOMAIN: tl.constexpr):
    """Per-element log-magnitude of features (``-inf`` for a zero linear feature)."""
    if LOG_DOMAIN:
        return f
    return tl.log(tl.abs(f))


@triton.jit
def finite_or_zero(x):
    """``x`` where finite, else 0 (shifts of features no key has reached)."""
    return tl.where((x > const.NEG_INF) & (x < const.POS_INF), x, 0.0)


@triton.jit
def scale_keys(f, shift, LOG_DOMAIN: tl.constexpr):
    """Key features times ``exp(-shift)`` for a per-feature ``shift`` (F,)."""
    safe = finite_or_zero(shift)[None, :]
    if LOG_DOMAIN:
        return tl.exp(f - safe)
    return f * tl.exp(-safe)


@triton.jit
def key_coefficient(f, shift, LOG_DOMAIN: tl.constexpr):
    """Derivative of a scaled key feature by its (log-)feature: the scaled feature, or the scale."""
    safe = finite_or_zero(shift)[None, :]
    if LOG_DOMAIN:
        return tl.exp(f - safe)
    return tl.exp(-safe) + 0.0 * f


@triton.jit
def query_log_norm(f, shift, LOG_DOMAIN: tl.constexpr):
    """Per-row ``max_f(log|phi_f| + shift_f)``, 0 where no feature is finite."""
    top = tl.max(log_magnitude(f, LOG_DOMAIN) + shift[None, :], axis=1)
    return finite_or_zero(top)


@triton.jit
def scale_queries(f, shift, log_norm, LOG_DOMAIN: tl.constexpr):
    """Query features times ``exp(shift - log_norm)``: 0 where the shift is ``-inf``.

    Also the derivative of that product by the log-feature (log domain); for linear features the
    derivative is :func:`query_coefficient`.
    """
    if LOG_DOMAIN:
        return tl.exp(f + shift[None, :] - log_norm[:, None])
    return f * tl.exp(shift[None, :] - log_norm[:, None])


@triton.jit
def query_coefficient(f, shift, log_norm, LOG_DOMAIN: tl.constexpr):
    """Derivative of a scaled query feature by its (log-)feature."""
    if LOG_DOMAIN:
        return tl.exp(f + shift[None, :] - log_norm[:, None])
    return tl.exp(shift[None, :] - log_norm[:, None]) + 0.0 * f


@triton.jit
def rescale_factor(old, new):
    """``exp(old - new)`` for moving a state to a larger shift; 0 where the old state was empty."""
    return tl.where(old > const.NEG_INF, tl.exp(finite_or_zero(old) - finite_or_zero(new)), 0.0)


@triton.jit
def masked_rows_max(values, valid_rows):
    """Column-wise maximum over the rows marked valid (``-inf`` if none)."""
    return tl.max(tl.where(valid_rows[:, None], values, const.NEG_INF), axis=0)


#: Warps per program by kernel name, overriding the defaults (benchmarks sweep them).
WARPS: dict[str, int] = {}


def num_warps_for(*tile_elements: int) -> int:
    """Warps per program from the largest float32 register tile (about 64 values per thread)."""
    largest = max(tile_elements)
    return 8 if largest >= 8192 else 4


def launch_warps(kernel_name: str, default: int) -> int:
    """Warps for a launch of ``kernel_name``: :data:`WARPS` if set there, else ``default``."""
    return WARPS.get(kernel_name, default)


#: Register limit given to ``ptxas`` for the variants it would otherwise starve (see
#: :func:`launch_options`): the most a thread can hold.
MAX_REGISTERS = 255


def launch_options(kernel_name: str, warps: int, dtype: torch.dtype, *dims: int) -> dict:
    """Launch options of a kernel holding large register tiles: ``num_warps`` (:func:`launch_warps`)
    and, for float32 inputs or a 128-wide head, ``maxnreg``.

    Given no register limit, ``ptxas`` compiles some of the largest variants (float32 products
    on the CUDA cores, 128-wide tiles) with few registers and kilobytes of spills
    (``yolo-lat benchmark compile_check registers=True`` shows them). The limit is not set for the other
    variants: there it also lets ``ptxas`` grow kernels that fit, which would cut the programs
    per multiprocessor that the grids are sized for.
    """
    options = {"num_warps": launch_warps(kernel_name, warps)}
    if dtype == torch.float32 or max(dims) >= 128:
        options["maxnreg"] = MAX_REGISTERS
    return options


#: Triton element type of each supported torch dtype.
TL_DTYPES = {torch.float32: tl.float32, torch.float16: tl.float16, torch.bfloat16: tl.bfloat16}


def state_warps(head_dim: int, value_dim: int, dtype: torch.dtype) -> int:
    """Warps per program of the key pass: 4 (one warp group), or 8 where 4 would spill registers
    (float32 tiles, or a state larger than 64 x 64). Fewer warps per program let more programs
    share a multiprocessor (see docs/gpu-kernels.md)."""
    return 4 if dtype != torch.float32 and head_dim * value_dim <= 4096 else 8


def kernel_flags(kernel_id: int, head_dim: int) -> dict:
    """Constexprs that select a built-in kernel: its id, log or linear domain, the extra-feature tile, D."""
    return {
        "KERNEL": kernel_id,
        "LOG_DOMAIN": kernel_id == 0,
        "HAS_EXTRA": kernel_id != 0,
        "EW": EXTRA_W,
        "D": head_dim,
    }
