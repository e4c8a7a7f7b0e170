"""The fused ELA kernels as ``torch.library`` custom ops, with fake implementations and autograd.

Registered ops (namespace ``yolo_lat``):

* ``ela_bidirectional(q, k, v, kernel_id, scale) -> (out, S, C, shift)``
* ``ela_bidirectional_backward(...) -> (dq, dk, dv)``
* ``ela_causal(q, k, v, S0?, C0?, shift0?, kernel_id, scale, save_residual) -> (out, S, C, shift, ...)``
* ``ela_causal_backward(...) -> (dq, dk, dv, dS0, dC0)``
* ``ela_decode_step(q, k, v, S, C, shift, kernel_id, scale) -> (y, S, C, shift)`` (no autograd)

The fake implementations give every output's shape, dtype and strides from the inputs alone, so
``torch.compile(fullgraph=True)``, ``torch.export`` and CUDA graphs see through the ops; the
backward ops are ops too, so compiled training graphs contain them. The implementations run on
any device Triton can launch on (CUDA, or CPU tensors in Triton's interpreter).
"""

from __future__ import annotations

import torch
from torch import Tensor

from .bidirectional import bidirectional_forward
from .bidirectional_backward import bidirectional_backward
from .buffers import cdiv, feature_count, like_layout, padded_features
from .causal import causal_forward, chunk_length
from .causal_backward import causal_backward
from .decode import decode_step

__all__ = ["KERNEL_IDS"]

#: Built-in kernels the fused ops implement, by name.
KERNEL_IDS = {"hadamard_exp": 0, "sum_sq_euclid": 1, "sub_sq_euclid": 2, "modulated_dot": 3}


def _state_like(q: Tensor, value_dim: int, kernel_id: int) -> tuple[Tensor, Tensor, Tensor]:
    batch, heads, _, head_dim = q.shape
    features = feature_count(head_dim, kernel_id)
    s = q.new_empty(batch, heads, features, value_dim, dtype=torch.float32)
    c = q.new_empty(batch, heads, features, dtype=torch.float32)
    return s, c, torch.empty_like(c)


# ---------------------------------------------------------------- bidirectional


@torch.library.custom_op("yolo_lat::ela_bidirectional", mutates_args=())
def ela_bidirectional(
    q: Tensor, k: Tensor, v: Tensor, kernel_id: int, scale: float
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Bidirectional ELA: ``(out, S, C, shift)``, see :func:`.bidirectional.bidirectional_forward`."""
    return bidirectional_forward(q, k, v, kernel_id, scale)


@ela_bidirectional.register_fake
def _(q, k, v, kernel_id, scale):
    return (like_layout(q, v.shape[-1], v.dtype), *_state_like(q, v.shape[-1], kernel_id))


@torch.library.custom_op("yolo_lat::ela_bidirectional_backward", mutates_args=())
def ela_bidirectional_backward(
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
    """Gradients ``(dq, dk, dv)`` of :func:`ela_bidirectional`."""
    return bidirectional_backward(grad_out, grad_s, grad_c, q, k, v, state_s, state_c, state_shift, kernel_id, scale)


@ela_bidirectional_backward.register_fake
def _(grad_out, grad_s, grad_c, q, k, v, state_s, state_c, state_shift, kernel_id, scale):
    return tuple(like_layout(t, t.shape[-1], t.dtype) for t in (q, k, v))


def _bidirectional_setup(ctx, inputs, output):
    q, k, v, kernel_id, scale = inputs
    _, state_s, state_c, state_shift = output
    ctx.save_for_backward(q, k, v, state_s, state_c, state_shift)
    ctx.kernel_id, ctx.scale = kernel_id, scale


def _bidirectional_grad(ctx, grad_out, grad_s, grad_c, grad_shift):
    q, k, v, state_s, state_c, state_shift = ctx.saved_tensors
    if grad_out is None:
        grad_out = torch.zeros(*q.shape[:3], v.shape[-1], device=q.device, dtype=v.dtype)
    dq, dk, dv = ela_bidirectional_backward(
        grad_out, grad_s, grad_c, q, k, v, state_s, state_c, state_shift, ctx.kernel_id, ctx.scale
    )
    return dq, dk, dv, None, None


ela_bidirectional.register_autograd(_bidirectional_grad, setup_context=_bidirectional_setup)


# ---------------------------------------------------------------- causal


@torch.library.custom_op("yolo_lat::ela_causal", mutates_args=())
def ela_causal(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    initial_s: Tensor | None,
    initial_c: Tensor | None,
    initial_shift: Tensor | None,
    kernel_id: int,
    scale: float,
    save_residual: bool,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Chunked causal ELA: ``(out, S, C, shift, lse, chunk_s, chunk_c, chunk_shift, residual)``.

    See :func:`.causal.causal_forward`; the last five outputs are for the backward.
    """
    return causal_forward(q, k, v, initial_s, initial_c, initial_shift, kernel_id, scale, save_residual)


@ela_causal.register_fake
def _(q, k, v, initial_s, initial_c, initial_shift, kernel_id, scale, save_residual):
    batch, heads, length, head_dim = q.shape
    value_dim = v.shape[-1]
    padded = padded_features(head_dim, kernel_id)
    n_chunks = cdiv(length, chunk_length(head_dim, value_dim))
    bh = batch * heads
    f32 = torch.float32
    out = like_layout(q, value_dim, v.dtype)
    residual = like_layout(q, value_dim, v.dtype) if save_residual else out.new_empty(0)
    return (
        out,
        *_state_like(q, value_dim, kernel_id),
        q.new_empty(bh, length, dtype=f32),
        q.new_empty(bh, n_chunks, padded, value_dim, dtype=f32),
        q.new_empty(bh, n_chunks, padded, dtype=f32),
        q.new_empty(bh, n_chunks + 1, padded, dtype=f32),
        residual,
    )


@torch.library.custom_op("yolo_lat::ela_causal_backward", mutates_args=())
def ela_causal_backward(
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
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Gradients ``(dq, dk, dv, dS0, dC0)`` of :func:`ela_causal` (the last two empty unless asked)."""
    dq, dk, dv, ds0, dc0 = causal_backward(
        grad_out, grad_s, grad_c, q, k, v, out, residual, lse, chunk_s, chunk_c, chunk_shift, kernel_id, scale,
        want_initial_grad,
    )  # fmt: skip
    if ds0 is None:
        ds0, dc0 = q.new_empty(0, dtype=torch.float32), q.new_empty(0, dtype=torch.float32)
    return dq, dk, dv, ds0, dc0


@ela_causal_backward.register_fake
def _(grad_out, grad_s, grad_c, q, k, v, out, residual, lse, chunk_s, chunk_c, chunk_shift, kernel_id, scale,
      want_initial_grad):  # fmt: skip
    if want_initial_grad:
        ds0, dc0, _ = _state_like(q, v.shape[-1], kernel_id)
    else:
        ds0, dc0 = q.new_empty(0, dtype=torch.float32), q.new_empty(0, dtype=torch.float32)
    grads = (like_layout(t, t.shape[-1], t.dtype) for t in (q, k, v))
    return (*grads, ds0, dc0)


def _causal_setup(ctx, inputs, output):
    q, k, v, initial_s, _, _, kernel_id, scale, _ = inputs
    out, _, _, _, lse, chunk_s, chunk_c, chunk_shift, residual = output
    ctx.save_for_backward(q, k, v, out, residual, lse, chunk_s, chunk_c, chunk_shift)
    ctx.kernel_id, ctx.scale = kernel_id, scale
    ctx.has_initial = initial_s is not None


def _causal_grad(ctx, grad_out, grad_s, grad_c, *unused):
    q, k, v, out, residual, lse, chunk_s, chunk_c, chunk_shift = ctx.saved_tensors
    if grad_out is None:
        grad_out = torch.zeros_like(out)
    want_initial = ctx.has_initial and (ctx.needs_input_grad[3] or ctx.needs_input_grad[4])
    dq, dk, dv, ds0, dc0 = ela_causal_backward(
        grad_out, grad_s, grad_c, q, k, v, out, residual, lse, chunk_s, chunk_c, chunk_shift,
        ctx.kernel_id, ctx.scale, want_initial,
    )  # fmt: skip
    if not want_initial:
        ds0 = dc0 = None
    return dq, dk, dv, ds0, dc0, None, None, None, None


ela_causal.register_autograd(_causal_grad, setup_context=_causal_setup)


# ---------------------------------------------------------------- decode step


@torch.library.custom_op("yolo_lat::ela_decode_step", mutates_args=())
def ela_decode_step(
    q: Tensor, k: Tensor, v: Tensor, state_s: Tensor, state_c: Tensor, state_shift: Tensor, kernel_id: int, scale: float
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """One decode step: ``(y, S, C, shift)``, see :func:`.decode.decode_step`."""
    return decode_step(q, k, v, state_s, state_c, state_shift, kernel_id, scale)


@ela_decode_step.register_fake
def _(q, k, v, state_s, state_c, state_shift, kernel_id, scale):
    batch, heads, _ = q.shape
    y = v.new_empty(batch, heads, v.shape[-1])
    return y, state_s.new_empty(state_s.shape), state_c.new_empty(state_c.shape), state_shift.new_empty(state_c.shape)
