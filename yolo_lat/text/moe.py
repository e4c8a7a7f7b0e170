"""Mixture of experts routed by label vectors, with the routing score entering as a bias.

Each expert ``e`` owns a learnable label vector ``l_e`` (width ``d_model``). A token's routing
scores are ``s = softmax(rms(r) . l)`` over experts, where ``r`` is the token's residual-stream
vector (the model passes the stream at the point where the expert output is added, so label
vectors live in the same space as the token embeddings and as the bias they add); it goes to its
``top_k`` experts, each weighted by its (not renormalised) score. The label vector enters the expert's output in one of
three ways (``bias``): ``outer`` ``s_e * ffn_e(x) + l_e``, ``inner`` ``s_e * (ffn_e(x) + l_e)``,
``none`` ``s_e * ffn_e(x)``.

Routing is strictly per token: no capacity limit, no dropped tokens, so a position's output never
depends on other positions (capacity limits decide which tokens to drop by looking at the whole
batch, which in a causal model would leak later tokens into earlier ones). The load-balancing loss
does use batch statistics, but it only enters the training loss, never an output.

``gate="linear"`` is the paper's reference code's router instead: a bias-free linear map of the
expert input to E logits, the top-k of their softmax renormalised to sum to 1, no label vectors
and so no routing-score bias (``bias`` is unused); the load-balancing loss is the same.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from yolo_lat import settings

from .layers import SwiGLU

__all__ = ["LabelRoutedMoE"]


class LabelRoutedMoE(nn.Module):
    """Top-k mixture of SwiGLU experts whose router keys are the experts' label vectors.

    Args:
        dim: token width.
        hidden: hidden width of each expert.
        n_experts: number of experts E.
        top_k: experts per token.
        bias: ``outer``, ``inner`` or ``none`` (see the module docstring).
        gate: ``label`` (label vectors) or ``linear`` (a linear gate; no label vectors, no bias).

    Example:
        >>> moe = LabelRoutedMoE(16, 32, n_experts=4, top_k=2)
        >>> y, balance = moe(torch.randn(2, 5, 16))
        >>> y.shape, balance.shape
        (torch.Size([2, 5, 16]), torch.Size([]))
    """

    def __init__(
        self, dim: int, hidden: int, n_experts: int, top_k: int, bias: str = "outer", gate: str = "label"
    ) -> None:
        super().__init__()
        if bias not in ("outer", "inner", "none"):
            raise ValueError(f"bias must be outer, inner or none, got {bias!r}")
        if gate not in ("label", "linear"):
            raise ValueError(f"gate must be label or linear, got {gate!r}")
        self.n_experts = n_experts
        self.top_k = top_k
        self.gate_form = gate
        self.bias = bias if gate == "label" else "none"
        self.labels = nn.Parameter(torch.randn(n_experts, dim) * 0.02) if gate == "label" else None
        self.gate = nn.Linear(dim, n_experts, bias=False) if gate == "linear" else None
        self.experts = nn.ModuleList(SwiGLU(dim, hidden) for _ in range(n_experts))

    def route(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Routing of each token on its own.

        Args:
            x: ``(N, dim)`` tokens.

        Returns:
            ``(probs (N, E), top_scores (N, k), top_experts (N, k))``: all scores, and the chosen
            experts with their scores (``linear`` gate: renormalised over the k chosen, summing to 1).
        """
        if self.gate is not None:
            probs = self.gate(x).softmax(dim=-1)
            top_scores, top_experts = probs.topk(self.top_k, dim=-1)
            return probs, top_scores / top_scores.sum(dim=-1, keepdim=True), top_experts
        logits = F.rms_norm(x, (x.shape[-1],)) @ self.labels.t()
        probs = logits.softmax(dim=-1)
        top_scores, top_experts = probs.topk(self.top_k, dim=-1)
        return probs, top_scores, top_experts

    def forward(self, x: Tensor, route_on: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Mix the chosen experts' outputs for every token.

        Args:
            x: ``(..., dim)`` expert inputs (any leading shape; each token is routed on its own).
            route_on: ``(..., dim)`` what the router scores against the label vectors, position by
                position (default: ``x``; the ``linear`` gate always routes on ``x``).

        Returns:
            ``(y (..., dim), balance)``: the output, and the load-balancing loss
            ``E * sum_e f_e p_e`` (``f_e`` share of routing slots, ``p_e`` mean score; 1 when uniform).
        """
        shape = x.shape
        tokens = x.reshape(-1, shape[-1])
        routed = tokens if route_on is None or self.gate is not None else route_on.reshape(-1, shape[-1])
        probs, top_scores, top_experts = self.route(routed)
        if _fixed_shapes_only(tokens):
            out = self._mix_dense(tokens, top_scores, top_experts)
        else:
            out = self._mix_gathered(tokens, top_scores, top_experts)
        share = F.one_hot(top_experts, self.n_experts).to(probs.dtype).sum(dim=(0, 1)) / top_experts.numel()
        balance = self.n_experts * (share * probs.mean(dim=0)).sum()
        return out.reshape(shape), balance

    def _mix_gathered(self, tokens: Tensor, top_scores: Tensor, top_experts: Tensor) -> Tensor:
        """Each expert runs on the tokens routed to it (``nonzero``: shapes depend on the routing)."""
        out = torch.zeros_like(tokens)
        for expert_index, expert in enumerate(self.experts):
            token_index, slot = torch.nonzero(top_experts == expert_index, as_tuple=True)
            if token_index.numel() == 0:
                continue
            score = top_scores[token_index, slot].unsqueeze(-1)
            result = expert(tokens[token_index])
            if self.bias == "outer":
                result = score * result + self.labels[expert_index]
            elif self.bias == "inner":
                result = score * (result + self.labels[expert_index])
            else:
                result = score * result
            out = out.index_add(0, token_index, result)
        return out

    def _mix_dense(self, tokens: Tensor, top_scores: Tensor, top_experts: Tensor) -> Tensor:
        """Every expert runs on every token and unchosen ones get weight 0: the same mixture with
        shapes that do not depend on the routing (no ``nonzero``, no host sync), which a compiled
        graph or a CUDA graph needs. ``E / top_k`` times the expert FLOPs: meant for decode steps."""
        weights = torch.zeros(tokens.shape[0], self.n_experts, dtype=top_scores.dtype, device=tokens.device)
        weights = weights.scatter(1, top_experts, top_scores)  # (N, E): s_e where chosen, else 0
        out = sum(weights[:, e, None] * expert(tokens) for e, expert in enumerate(self.experts))
        if self.bias == "outer":  # + l_e for each chosen expert
            chosen = torch.zeros_like(weights).scatter(1, top_experts, 1.0)
            out = out + chosen @ self.labels
        elif self.bias == "inner":  # + s_e l_e
            out = out + weights @ self.labels
        return out


def _fixed_shapes_only(tokens: Tensor) -> bool:
    """Whether the caller is being compiled, captured into a CUDA graph or runs with the
    ``fixed_shapes`` setting (see ``_mix_dense``)."""
    if torch.compiler.is_compiling():
        return True
    if settings.get().fixed_shapes:
        return True
    return tokens.is_cuda and torch.cuda.is_current_stream_capturing()
