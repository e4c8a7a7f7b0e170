"""The PyTorch forms of ELA: bidirectional, and chunked causal with a carried state.

:func:`yolo_lat.ela.ela_attention` checks its inputs and picks between these and the fused GPU
kernels; the ONNX custom node computes its traced value with :func:`bidirectional`. Both return
``(output, state)``; see ``docs/ela.md`` for the shifts that keep every term at most 1.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from . import kernels, stable
from .kernels import Kernel
from .recurrent import ELAState

__all__ = ["bidirectional", "causal", "features"]


def features(kern: Kernel, q: Tensor, k: Tensor, scale: float | None, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    factor = 1.0 if scale is None else scale
    return kern.phi(q.to(dtype) * factor), kern.psi(k.to(dtype) * factor)


def _zeros_without_keys(q: Tensor, k: Tensor, v: Tensor) -> Tensor:
    """``(B, H, Lq, Dv)`` zeros for ``Lk = 0``: the empty weight matrix ``q k^T`` times no values.

    A product rather than ``new_zeros``, so that gradients reach q, k and v (as zeros).
    """
    return (q.to(v.dtype) @ k.to(v.dtype).transpose(-1, -2)) @ v


def bidirectional(
    q: Tensor, k: Tensor, v: Tensor, kern: Kernel, key_padding_mask: Tensor | None, scale: float | None
) -> tuple[Tensor, ELAState]:
    dtype = stable.compute_dtype(q, k, v)
    if k.shape[2] == 0:  # no keys: every row has no positively weighted key, hence zeros
        state = ELAState.empty(*q.shape[:2], q.shape[-1], v.shape[-1], kernel=kern, device=q.device, dtype=dtype)
        return _zeros_without_keys(q, k, v), state
    fq, fk = features(kern, q, k, scale, dtype)
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


def causal(
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
        return _zeros_without_keys(q, k, v), state
    fq, fk = features(kern, q, k, scale, dtype)
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
    out = stable.guarded_divide(out.reshape(batch, heads, n_chunks * chunk, out.shape[-1])[:, :, :length])
    final = ELAState(kv[..., :-1], kv[..., -1], end[:, :, -1], kern.name, state.tokens + length)
    return out.to(v.dtype), final
