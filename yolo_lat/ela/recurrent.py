"""Recurrent ELA: a fixed-size decode state and a step that consumes one token per sequence.

The state after ``t`` tokens is ``S = sum_j psi(k_j) v_j^T`` (F x Dv) and ``C = sum_j psi(k_j)`` (F),
both held in fp32 (or fp64) and scaled by ``exp(-shift)`` per feature, where ``shift`` is the
running largest key log-magnitude (see docs/ela.md). Its size does not grow with context length,
unlike a KV cache.

Example:
    >>> import torch
    >>> from yolo_lat.ela import ela_attention, ela_step
    >>> q, k, v = (torch.randn(2, 4, 10, 16) for _ in range(3))
    >>> y, state = ela_attention(q, k, v, causal=True, return_state=True)
    >>> y_next, state = ela_step(q[:, :, -1], k[:, :, -1], v[:, :, -1], state)
    >>> y_next.shape, state.S.shape, state.C.shape
    (torch.Size([2, 4, 16]), torch.Size([2, 4, 16, 16]), torch.Size([2, 4, 16]))
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from . import backend, stable
from .checks import check_head_dim, check_scale
from .kernels import Kernel, get_kernel

__all__ = ["ELAState", "ela_readout", "ela_step"]


@dataclass
class ELAState:
    """Summary of the keys and values seen so far, for decoding or cross-attention readout.

    Attributes:
        S: ``(B, H, F, Dv)`` sum of ``psi(k_j) v_j^T``, scaled by ``exp(-shift)`` per feature.
        C: ``(B, H, F)`` sum of ``psi(k_j)``, scaled likewise.
        shift: ``(B, H, F)`` per-feature log-scale; ``-inf`` where no key has been seen.
        kernel: name of the kernel the state was built with.
        tokens: number of key positions folded in (padded keys included).
    """

    S: Tensor
    C: Tensor
    shift: Tensor
    kernel: str
    tokens: int = 0

    @classmethod
    def empty(
        cls,
        batch: int,
        heads: int,
        head_dim: int,
        value_dim: int,
        *,
        kernel: str | Kernel = "hadamard_exp",
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> ELAState:
        """A state with no tokens, for decoding from scratch."""
        kern = get_kernel(kernel)
        features = kern.feature_dim(head_dim)
        zeros = torch.zeros(batch, heads, features, value_dim + 1, device=device, dtype=dtype)
        shift = torch.full((batch, heads, features), stable.NEG_INF, device=device, dtype=dtype)
        return cls(zeros[..., :-1], zeros[..., -1], shift, kern.name, 0)

    @property
    def nbytes(self) -> int:
        """Memory held by the state's tensors, in bytes (constant in context length)."""
        return sum(t.numel() * t.element_size() for t in (self.S, self.C, self.shift))

    def to(self, *args, **kwargs) -> ELAState:
        """Move/cast the state's tensors like ``Tensor.to``."""
        return ELAState(
            self.S.to(*args, **kwargs),
            self.C.to(*args, **kwargs),
            self.shift.to(*args, **kwargs),
            self.kernel,
            self.tokens,
        )

    def detach(self) -> ELAState:
        """The same state cut from the autograd graph (for truncated backpropagation)."""
        return ELAState(self.S.detach(), self.C.detach(), self.shift.detach(), self.kernel, self.tokens)

    def index_select(self, batch_index: Tensor) -> ELAState:
        """Select/reorder sequences along the batch axis (beam search, finished sequences)."""
        pick = lambda t: t.index_select(0, batch_index)  # noqa: E731
        return ELAState(pick(self.S), pick(self.C), pick(self.shift), self.kernel, self.tokens)


def _resolve_kernel(kernel: str | Kernel | None, state: ELAState | None) -> Kernel:
    if kernel is None:
        return get_kernel(state.kernel if state is not None else "hadamard_exp")
    kern = get_kernel(kernel)
    if state is not None and state.kernel != kern.name:
        raise ValueError(f"state was built with kernel {state.kernel!r}, not {kern.name!r}")
    return kern


def ela_step(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    state: ELAState | None = None,
    *,
    kernel: str | Kernel | None = None,
    scale: float | None = None,
) -> tuple[Tensor, ELAState]:
    """Consume one token per sequence: fold ``(k, v)`` into the state, then read it with ``q``.

    Equivalent to the last row of causal :func:`~yolo_lat.ela.ela_attention` over the whole
    sequence, at O(F Dv) cost per token whatever the context length.

    Args:
        q: ``(B, H, D)`` query of the new token.
        k: ``(B, H, D)`` key of the new token.
        v: ``(B, H, Dv)`` value of the new token.
        state: state after the previous tokens (from ``ela_attention(..., return_state=True)`` or
            an earlier step); ``None`` starts an empty one.
        kernel: kernel name; defaults to the state's kernel (``hadamard_exp`` without a state).
        scale: multiplies q and k before the feature maps (None means 1; finite), as in ``ela_attention``.

    Returns:
        ``(y, new_state)``: ``y`` of shape ``(B, H, Dv)`` in ``v``'s dtype, and the updated state
        (``B = 0`` or ``H = 0``: empty ones).

    Raises:
        ValueError: shapes that do not fit the state or each other, ``D = 0``, a non-finite ``scale``.
    """
    if q.dim() != 3 or k.dim() != 3 or v.dim() != 3:
        raise ValueError(
            f"ela_step takes one token per sequence: q, k of shape (B, H, D) and v of shape (B, H, Dv); "
            f"got {tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)}"
        )
    if q.shape != k.shape or v.shape[:2] != q.shape[:2]:
        raise ValueError(f"shape mismatch: q {tuple(q.shape)}, k {tuple(k.shape)}, v {tuple(v.shape)}")
    check_head_dim(q.shape[-1])
    check_scale(scale)
    kern = _resolve_kernel(kernel, state)
    fast = backend.dispatch_step(q, k, v, state, kern, scale)
    if fast is not None:
        return fast
    dtype = stable.compute_dtype(q, k, v) if state is None else state.S.dtype
    if state is None:
        state = ELAState.empty(*q.shape[:2], q.shape[-1], v.shape[-1], kernel=kern, device=q.device, dtype=dtype)
    factor = 1.0 if scale is None else scale
    fq = kern.phi(q.to(dtype) * factor)
    fk = kern.psi(k.to(dtype) * factor)
    if state.S.shape[-2:] != (fk.shape[-1], v.shape[-1]) or state.S.shape[:2] != q.shape[:2]:
        raise ValueError(
            f"state of shape S={tuple(state.S.shape)} does not fit q {tuple(q.shape)} and v {tuple(v.shape)} "
            f"(kernel {kern.name!r} has {fk.shape[-1]} features)"
        )
    new_shift = torch.maximum(state.shift, stable.key_log_magnitude(kern, fk))
    decay = stable.rescale_factor(state.shift, new_shift)
    psi = stable.scale_keys(kern, fk, stable.finite_or_zero(new_shift))
    vv = v.to(dtype)
    S = state.S * decay.unsqueeze(-1) + psi.unsqueeze(-1) * vv.unsqueeze(-2)
    C = state.C * decay + psi
    y = _read(kern, fq.unsqueeze(-2), S, C, new_shift).squeeze(-2)
    return y.to(v.dtype), ELAState(S, C, new_shift, kern.name, state.tokens + 1)


def ela_readout(q: Tensor, state: ELAState, *, scale: float | None = None) -> Tensor:
    """Read a state with queries: cross-attention over every key folded into ``state``.

    Args:
        q: ``(B, H, Lq, D)`` queries.
        state: keys/values summary, e.g. from bidirectional ``ela_attention(..., return_state=True)``.
        scale: multiplies q before the feature map, as used for the keys.

    Returns:
        ``(B, H, Lq, Dv)`` attention outputs in the state's dtype.
    """
    check_scale(scale)
    kern = get_kernel(state.kernel)
    fq = kern.phi(q.to(state.S.dtype) * (1.0 if scale is None else scale))
    return _read(kern, fq, state.S, state.C, state.shift)


def _read(kern: Kernel, fq: Tensor, S: Tensor, C: Tensor, shift: Tensor) -> Tensor:
    """``phi(q) S / phi(q) C`` for ``fq`` of shape (B, H, Lq, F), queries shifted to the state's scale."""
    shift = shift.unsqueeze(-2)
    phi = stable.scale_queries(kern, fq, shift, stable.query_log_norm(kern, fq, shift))
    return stable.guarded_divide(phi @ torch.cat([S, C.unsqueeze(-1)], dim=-1))
