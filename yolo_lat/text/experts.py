"""Inspecting label-routed experts: the tokens nearest each expert's label vector, and routing shares.

The router scores a token ``x`` against label vector ``l_e`` as ``rms(x) . l_e``; ranking token
embeddings by that score is ranking them by cosine similarity with ``l_e``. With the ``outer`` or
``inner`` bias the label vector is also added to the residual stream, and with tied embeddings
``l_e . embedding(t)`` is exactly the logit boost the bias gives token ``t``: the nearest tokens
are the ones an expert pushes the model towards.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from .model import ELAGPT
from .moe import LabelRoutedMoE
from .tokenizer import Tokenizer

__all__ = ["describe_experts", "format_experts", "routing_shares"]


def _moe_layers(model: ELAGPT) -> list[tuple[int, LabelRoutedMoE]]:
    return [(i, block.ffn) for i, block in enumerate(model.blocks) if isinstance(block.ffn, LabelRoutedMoE)]


@torch.no_grad()
def routing_shares(model: ELAGPT, ids: torch.Tensor) -> dict[int, torch.Tensor]:
    """Share of tokens whose first choice is each expert, per MoE layer, on a sample of text.

    Args:
        model: a model with MoE layers.
        ids: ``(B, L)`` token ids to route.

    Returns:
        ``{layer: (E,) shares summing to 1}``.
    """
    seen: dict[int, torch.Tensor] = {}
    hooks = []
    for layer, moe in _moe_layers(model):

        def capture(module: LabelRoutedMoE, args: tuple, kwargs: dict, layer: int = layer) -> None:
            routed = kwargs.get("route_on")
            routed = args[0] if routed is None or module.gate is not None else routed
            _, _, top_experts = module.route(routed.reshape(-1, routed.shape[-1]))
            seen[layer] = torch.bincount(top_experts[:, 0], minlength=module.n_experts).float()

        hooks.append(moe.register_forward_pre_hook(capture, with_kwargs=True))
    try:
        model(ids)
    finally:
        for hook in hooks:
            hook.remove()
    return {layer: counts / counts.sum() for layer, counts in seen.items()}


@torch.no_grad()
def describe_experts(
    model: ELAGPT,
    tokenizer: Tokenizer,
    top: int = 10,
    sample: torch.Tensor | None = None,
    seen_only: bool = True,
) -> list[dict[str, Any]]:
    """For every expert of every MoE layer, the tokens whose embeddings lie nearest its label vector.

    Args:
        model: a trained ELA-GPT with ``moe_experts > 0``.
        tokenizer: to show tokens as text.
        top: tokens listed per expert.
        sample: optional ``(B, L)`` ids on which to measure each expert's routing share.
        seen_only: with a sample, list only tokens that occur in it (embeddings of tokens never
            trained on, such as most non-ASCII bytes, stay random and would crowd the listing).

    Returns:
        One dict per expert: ``layer``, ``expert``, ``label_norm``, ``tokens`` (list of
        ``(text, cosine)``) and ``share`` (None without ``sample``).

    Example:
        >>> from yolo_lat.text import ELAGPT, ELAGPTConfig, ByteTokenizer
        >>> model = ELAGPT(ELAGPTConfig(d_model=32, n_heads=4, moe_experts=3))
        >>> rows = describe_experts(model, ByteTokenizer(), top=5)
        >>> len(rows), len(rows[0]["tokens"])
        (6, 5)
    """
    layers = _moe_layers(model)
    if not layers:
        raise ValueError("this model has no experts (moe_experts=0)")
    if layers[0][1].labels is None:
        raise ValueError("this model's experts have a linear gate (moe_gate=linear) and no label vectors to list")
    embeddings = F.normalize(model.embed.weight.float(), dim=-1)
    shares = routing_shares(model, sample) if sample is not None else {}
    rows = []
    for layer, moe in layers:
        labels = moe.labels.float()
        similarity = F.normalize(labels, dim=-1) @ embeddings.t()  # (E, vocab)
        if sample is not None and seen_only:
            unseen = torch.ones(similarity.shape[-1], dtype=torch.bool, device=similarity.device)
            unseen[sample.flatten().unique()] = False
            similarity = similarity.masked_fill(unseen, float("-inf"))
        scores, tokens = similarity.topk(min(top, similarity.shape[-1]), dim=-1)
        for expert in range(moe.n_experts):
            rows.append(
                {
                    "layer": layer,
                    "expert": expert,
                    "label_norm": labels[expert].norm().item(),
                    "tokens": [
                        (tokenizer.token_text(int(t)), float(s))
                        for t, s in zip(tokens[expert].tolist(), scores[expert].tolist())
                    ],
                    "share": float(shares[layer][expert]) if layer in shares else None,
                }
            )
    return rows


def format_experts(rows: list[dict[str, Any]]) -> str:
    """Human-readable listing of :func:`describe_experts` rows, one line per expert."""
    lines = []
    for row in rows:
        share = "" if row["share"] is None else f" routed {row['share']:5.1%}"
        tokens = " ".join(f"'{text}':{score:.2f}" for text, score in row["tokens"])
        lines.append(f"layer {row['layer']} expert {row['expert']} |l|={row['label_norm']:.2f}{share}  {tokens}")
    return "\n".join(lines)
