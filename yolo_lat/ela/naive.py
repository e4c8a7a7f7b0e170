"""Slow, obviously correct references for testing the fast ELA paths.

* :func:`naive_attention` builds the explicit L x L matrix of kernel values from the kernel's
  closed form ``k(a, b)`` (not from its feature maps) and normalises each row.
* :func:`naive_recurrent_attention` runs the recurrence ``S_t = S_{t-1} + psi(k_t) v_t^T`` in a
  Python loop over positions with unshifted features: the paper's definition, nothing more.

Neither is meant for production: time and memory grow quadratically (resp. the loop is slow).
"""

from __future__ import annotations

import torch
from torch import Tensor

from .checks import check_scale
from .kernels import Kernel, get_kernel

__all__ = ["naive_attention", "naive_recurrent_attention"]

#: Upper bound on elements of one pairwise block (queries x keys x dim), to bound memory.
_BLOCK_ELEMENTS = 1 << 24


def naive_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    *,
    kernel: str | Kernel = "hadamard_exp",
    causal: bool = False,
    key_padding_mask: Tensor | None = None,
    scale: float | None = None,
    return_state: bool = False,
) -> Tensor:
    """Explicit kernel-weighted attention ``Y_i = sum_j k(q_i, k_j) v_j / sum_j k(q_i, k_j)``.

    Same arguments as :func:`~yolo_lat.ela.ela_attention`; ``return_state`` is not supported (the
    reference has no state). Computed in float64 for float64 inputs, else float32; for log-domain
    kernels the row normalisation is done in log space, so the reference itself cannot overflow.
    Rows with no positively weighted key are zeros, as in ``ela_attention``.

    Returns:
        ``(B, H, Lq, Dv)`` in ``v``'s dtype.
    """
    if return_state:
        raise ValueError("naive_attention has no recurrent state; use ela_attention(..., return_state=True)")
    check_scale(scale)
    kern = get_kernel(kernel)
    dtype = torch.float64 if torch.float64 in (q.dtype, k.dtype, v.dtype) else torch.float32
    factor = 1.0 if scale is None else scale
    a, b, vv = q.to(dtype) * factor, k.to(dtype) * factor, v.to(dtype)
    lq, lk = a.shape[2], b.shape[2]
    allowed = torch.ones(a.shape[0], 1, lq, lk, dtype=torch.bool, device=a.device)
    if causal:
        allowed = allowed & torch.ones(lq, lk, dtype=torch.bool, device=a.device).tril()
    if key_padding_mask is not None:
        allowed = allowed & ~key_padding_mask[:, None, None, :]
    block = max(1, _BLOCK_ELEMENTS // max(1, lk * a.shape[-1] * a.shape[1]))
    rows = []
    for i in range(0, lq, block):
        scores = kern.pairwise_scores(a[:, :, i : i + block], b)  # (B, H, blk, Lk)
        ok = allowed[:, :, i : i + block]
        if kern.log_domain:
            scores = scores.masked_fill(~ok, float("-inf"))
            top = scores.amax(-1, keepdim=True)
            top = torch.where(torch.isfinite(top), top, torch.zeros_like(top))
            weights = (scores - top).exp()
        else:
            weights = scores.masked_fill(~ok, 0.0)
        den = weights.sum(-1, keepdim=True)
        num = weights @ vv
        rows.append(torch.where(den > 0, num / torch.where(den > 0, den, torch.ones_like(den)), torch.zeros_like(num)))
    return torch.cat(rows, dim=2).to(v.dtype)


def naive_recurrent_attention(
    q: Tensor, k: Tensor, v: Tensor, *, kernel: str | Kernel = "hadamard_exp", scale: float | None = None
) -> Tensor:
    """Causal ELA by its recurrent definition, one position at a time, with unshifted features.

    ``S_t = S_{t-1} + psi(k_t) v_t^T``, ``C_t = C_{t-1} + psi(k_t)``,
    ``Y_t = phi(q_t)^T S_t / phi(q_t)^T C_t``. Overflows for large log-domain inputs (float64
    survives ``|q| + |k|`` up to about 700): use it on moderate float64 data.

    Returns:
        ``(B, H, L, Dv)`` in ``v``'s dtype.
    """
    check_scale(scale)
    kern = get_kernel(kernel)
    factor = 1.0 if scale is None else scale
    phi, psi = kern.features(q.double() * factor, k.double() * factor)
    vv = v.double()
    S = torch.zeros(*phi.shape[:2], phi.shape[-1], vv.shape[-1], dtype=torch.float64, device=q.device)
    C = torch.zeros(*phi.shape[:2], phi.shape[-1], dtype=torch.float64, device=q.device)
    outputs = []
    for t in range(q.shape[2]):
        S = S + psi[:, :, t, :, None] * vv[:, :, t, None, :]
        C = C + psi[:, :, t]
        num = (phi[:, :, t, :, None] * S).sum(-2)
        den = (phi[:, :, t] * C).sum(-1, keepdim=True)
        outputs.append(num / den)
    return torch.stack(outputs, dim=2).to(v.dtype)
