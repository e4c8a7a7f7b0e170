"""Exact Linear Attention: bidirectional and chunked causal forms, key padding masks, dispatch.

Every form computes exactly ``Y_i = sum_j k(q_i, k_j) v_j / sum_j k(q_i, k_j)`` for the chosen
kernel (ELA.md, section 1), in O(L F Dv) time, with the shifts of :mod:`yolo_lat.ela.stable`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from . import backend, kernels, stable
from .kernels import Kernel, get_kernel
from .onnx import custom_node_active, emit_custom_node
from .recurrent import ELAState

__all__ = ["default_chunk_size", "ela_attention"]


def default_chunk_size(kernel: Kernel) -> int:
    """Causal chunk length used when none is given.

    Inside a chunk, log-domain kernels weigh each (query, key) pair exactly in log space, an
    ``L x chunk x F`` intermediate, so their chunks are short (8); linear-domain kernels use plain
    matrix products there and prefer longer chunks (32). Both were the fastest on a 2-core CPU at
    L = 1k..16k (B=1, H=4, D=32).
    """
    return 8 if kernel.log_domain else 32


def ela_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    *,
    kernel: str | Kernel = "hadamard_exp",
    causal: bool = False,
    key_padding_mask: Tensor | None = None,
    scale: float | None = None,
    return_state: bool = False,
    initial_state: ELAState | None = None,
    chunk_size: int | None = None,
) -> Tensor | tuple[Tensor, ELAState]:
    """Exact Linear Attention with kernel ``k(a, b) = phi(a) . psi(b)``.

    Args:
        q: ``(B, H, Lq, D)`` queries.
        k: ``(B, H, Lk, D)`` keys.
        v: ``(B, H, Lk, Dv)`` values.
        kernel: registered kernel name (see :func:`~yolo_lat.ela.list_kernels`) or a ``Kernel``.
        causal: position ``i`` attends to keys ``j <= i`` only (needs ``Lq == Lk``).
        key_padding_mask: ``(B, Lk)`` bool, ``True`` marks padding keys to ignore (the
            ``nn.MultiheadAttention`` convention).
        scale: multiplies q and k before the feature maps; ``None`` means 1.
        return_state: also return the :class:`ELAState` of all keys (causal: for decoding on with
            :func:`~yolo_lat.ela.ela_step`; bidirectional: for :func:`~yolo_lat.ela.ela_readout`).
        initial_state: causal only: state of earlier tokens to continue from (chunked prefill).
        chunk_size: causal chunk length (default :func:`default_chunk_size`).

    Returns:
        ``(B, H, Lq, Dv)`` in ``v``'s dtype, or ``(output, state)`` with ``return_state``. Rows
        with no positively weighted key (all keys padded) are zeros.

    Example:
        >>> import torch
        >>> from yolo_lat.ela import ela_attention, naive_attention
        >>> q, k, v = (torch.randn(1, 2, 50, 8, dtype=torch.float64) for _ in range(3))
        >>> y = ela_attention(q, k, v, kernel="sum_sq_euclid", causal=True)
        >>> torch.allclose(y, naive_attention(q, k, v, kernel="sum_sq_euclid", causal=True))
        True
    """
    kern = get_kernel(kernel)
    _check_inputs(q, k, v, causal, key_padding_mask, scale, initial_state, chunk_size, kern)
    if custom_node_active():
        if causal or key_padding_mask is not None or return_state:
            raise ValueError("ela_op=custom exports bidirectional, unmasked ELA only; use ela_op=standard")
        return emit_custom_node(q, k, v, kern.name, scale)
    fast = backend.dispatch(q, k, v, kern, causal, key_padding_mask, scale, return_state, initial_state)
    if fast is not None:
        return fast
    if causal:
        out, state = _causal(
            q, k, v, kern, key_padding_mask, scale, initial_state, chunk_size or default_chunk_size(kern)
        )
    else:
        out, state = _bidirectional(q, k, v, kern, key_padding_mask, scale)
    return (out, state) if return_state else out


def _check_inputs(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    causal: bool,
    key_padding_mask: Tensor | None,
    scale: float | None,
    initial_state: ELAState | None,
    chunk_size: int | None,
    kern: Kernel,
) -> None:
    if q.dim() != 4 or k.dim() != 4 or v.dim() != 4:
        raise ValueError(
            "q, k, v must be 4-D (batch, heads, length, dim); got shapes "
            f"{tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)}"
        )
    if q.shape[:2] != k.shape[:2] or q.shape[-1] != k.shape[-1]:
        raise ValueError(f"q {tuple(q.shape)} and k {tuple(k.shape)} must agree in batch, heads and dim")
    if v.shape[:3] != k.shape[:3]:
        raise ValueError(f"v {tuple(v.shape)} must match k {tuple(k.shape)} in batch, heads and length")
    if not (q.is_floating_point() and k.is_floating_point() and v.is_floating_point()):
        raise ValueError("q, k, v must be floating-point tensors")
    if causal and q.shape[2] != k.shape[2]:
        raise ValueError(f"causal attention needs as many queries as keys; got Lq={q.shape[2]}, Lk={k.shape[2]}")
    expected_mask = (k.shape[0], k.shape[2])
    if key_padding_mask is not None and (
        key_padding_mask.dtype != torch.bool or tuple(key_padding_mask.shape) != expected_mask
    ):
        raise ValueError(
            f"key_padding_mask must be a bool tensor of shape (batch, Lk) = {expected_mask}, "
            f"got {key_padding_mask.dtype} {tuple(key_padding_mask.shape)}"
        )
    if scale is not None and not isinstance(scale, (int, float)):
        raise ValueError(f"scale must be a float or None, got {type(scale).__name__}")
    if initial_state is not None:
        if not causal:
            raise ValueError("initial_state continues a causal sequence; pass causal=True")
        if initial_state.kernel != kern.name:
            raise ValueError(f"initial_state was built with kernel {initial_state.kernel!r}, not {kern.name!r}")
    if chunk_size is not None and (not isinstance(chunk_size, int) or chunk_size < 1):
        raise ValueError(f"chunk_size must be a positive int, got {chunk_size!r}")


def _features(kern: Kernel, q: Tensor, k: Tensor, scale: float | None, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    factor = 1.0 if scale is None else scale
    return kern.phi(q.to(dtype) * factor), kern.psi(k.to(dtype) * factor)


def _bidirectional(
    q: Tensor, k: Tensor, v: Tensor, kern: Kernel, key_padding_mask: Tensor | None, scale: float | None
) -> tuple[Tensor, ELAState]:
    dtype = stable.compute_dtype(q, k, v)
    fq, fk = _features(kern, q, k, scale, dtype)
    valid = None if key_padding_mask is None else ~key_padding_mask[:, None, :, None]
    fk = stable.mask_keys(kern, fk, valid)
    shift = stable.key_log_magnitude(kern, fk).amax(dim=-2, keepdim=True)  # (B, H, 1, F)
    psi = stable.scale_keys(kern, fk, stable.finite_or_zero(shift))
    kv = psi.transpose(-1, -2) @ stable.append_ones(v.to(dtype))  # (B, H, F, Dv + 1): [S, C]
    phi = stable.scale_queries(kern, fq, shift, stable.query_log_norm(kern, fq, shift))
    numerator_and_denominator = phi @ kv
    if kern is kernels.hadamard_exp and key_padding_mask is None:
        # every denominator is at least 1 here (the query's largest scaled feature is 1, and the key
        # that set that feature's shift adds e^0 to C), so the guard's where/compare are not needed.
        # Not so for a user's log-domain kernel, whose features may be -inf (a zero kernel value).
        out = numerator_and_denominator[..., :-1] / numerator_and_denominator[..., -1:]
    else:
        out = stable.guarded_divide(numerator_and_denominator)
    out = out.to(v.dtype)
    return out, ELAState(kv[..., :-1], kv[..., -1], shift.squeeze(-2), kern.name, k.shape[2])


def _causal(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    kern: Kernel,
    key_padding_mask: Tensor | None,
    scale: float | None,
    initial_state: ELAState | None,
    chunk: int,
) -> tuple[Tensor, ELAState]:
    """Chunked causal ELA: exact pairwise weights inside a chunk, a carried state between chunks.

    Shifts: ``R_i`` is the running per-feature maximum of key log-magnitudes up to position ``i``;
    ``start``/``end`` are its values before and at the end of each chunk. The state entering a
    chunk is scaled by ``exp(-start)``; each query ``i`` by ``exp(-s_i)`` with
    ``s_i = max_f(phi_if + R_if)``. Every scaled term is then at most 1, and a query's dominant
    term is the key that set its running maximum, so growing keys never underflow to ``0/0``.
    """
    dtype = stable.compute_dtype(q, k, v)
    batch, heads, length, _ = q.shape
    if initial_state is None:
        state = ELAState.empty(batch, heads, q.shape[-1], v.shape[-1], kernel=kern, device=q.device, dtype=dtype)
    else:
        state = initial_state
    if length == 0:
        return v.new_zeros(batch, heads, 0, v.shape[-1]), state
    fq, fk = _features(kern, q, k, scale, dtype)
    v1 = stable.append_ones(v.to(dtype))
    pad = (-length) % chunk
    valid = torch.ones(batch, 1, length, 1, dtype=torch.bool, device=q.device)
    if key_padding_mask is not None:
        valid = ~key_padding_mask[:, None, :, None]
    if pad:
        fq, fk, v1 = (F.pad(t, (0, 0, 0, pad)) for t in (fq, fk, v1))
        valid = F.pad(valid, (0, 0, 0, pad), value=False)
    fk = stable.mask_keys(kern, fk, valid)
    n_chunks = fq.shape[2] // chunk
    shift0 = state.shift.to(dtype).unsqueeze(2)  # (B, H, 1, F)

    def chunked(t: Tensor) -> Tensor:
        return t.reshape(batch, heads, n_chunks, chunk, t.shape[-1])

    fq_c, fk_c, v1_c = chunked(fq), chunked(fk), chunked(v1)
    magnitude = chunked(stable.key_log_magnitude(kern, fk))
    end = torch.maximum(magnitude.amax(dim=3).cummax(dim=2).values, shift0)  # (B, H, N, F)
    start = torch.cat([shift0, end[:, :, :-1]], dim=2)  # shift of the state entering each chunk
    psi_end = stable.scale_keys(kern, fk_c, stable.finite_or_zero(end).unsqueeze(3))
    contributions = psi_end.transpose(-1, -2) @ v1_c  # (B, H, N, F, Dv + 1) at shift `end`
    decay = stable.rescale_factor(start, end).unsqueeze(-1)

    kv = torch.cat([state.S, state.C.unsqueeze(-1)], dim=-1).to(dtype)
    incoming = []
    for contribution, factor in zip(contributions.unbind(2), decay.unbind(2)):
        incoming.append(kv)
        kv = torch.addcmul(contribution, kv, factor)
    incoming = torch.stack(incoming, dim=2)  # (B, H, N, F, Dv + 1) at shift `start`

    causal_mask = torch.ones(chunk, chunk, dtype=torch.bool, device=q.device).tril()
    if kern.log_domain:
        # running maximum R_i inside each chunk, starting from the incoming shift
        running, current = [], start
        for position in magnitude.unbind(3):
            current = torch.maximum(current, position)
            running.append(current)
        log_norm_c = stable.query_log_norm(kern, fq_c, torch.stack(running, dim=3))  # s_i
        phi_in = stable.scale_queries(kern, fq_c, start.unsqueeze(3), log_norm_c)
        # exact pairwise weights sum_f exp(phi_if + psi_jf - s_i) for j <= i inside the chunk
        pair = (fq_c - log_norm_c).unsqueeze(4) + fk_c.unsqueeze(3)  # (B, H, N, C, C, F)
        pair.masked_fill_(~causal_mask[..., None], stable.NEG_INF)
        weights = pair.exp_().sum(-1)  # (B, H, N, C, C)
    else:
        end_q = end.unsqueeze(3)
        log_norm_c = stable.query_log_norm(kern, fq_c, end_q)
        phi_in = stable.scale_queries(kern, fq_c, start.unsqueeze(3), log_norm_c)
        phi_end = stable.scale_queries(kern, fq_c, end_q, log_norm_c)
        weights = (phi_end @ psi_end.transpose(-1, -2)).masked_fill(~causal_mask, 0.0)
    out = weights @ v1_c + phi_in @ incoming
    out = stable.guarded_divide(out.reshape(batch, heads, n_chunks * chunk, -1)[:, :, :length])
    final = ELAState(kv[..., :-1], kv[..., -1], end[:, :, -1], kern.name, state.tokens + length)
    return out.to(v.dtype), final
