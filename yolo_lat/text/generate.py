"""Text generation: one causal prefill, then one O(1) step per new token (ELA state, not a KV cache).

Greedy by default; ``temperature > 0`` samples, optionally from the ``top_k`` most likely tokens,
with a ``torch.Generator`` for reproducibility. :func:`generate_by_recompute` is the slow reference
(full forward pass over the whole sequence at every step) that tests compare against.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from . import static
from .checks import Limit

#: What the sampling arguments accept (also the ``text generate`` command's limits).
TEMPERATURE = Limit(float, 0)
TOP_K = Limit(int, 0)
MAX_NEW_TOKENS = Limit(int, 0)

__all__ = ["generate", "generate_by_recompute", "pick_next_token"]


def pick_next_token(
    logits: Tensor, temperature: float = 0.0, top_k: int | None = None, generator: torch.Generator | None = None
) -> Tensor:
    """Choose the next token from the last position's logits.

    Args:
        logits: ``(B, vocab)``.
        temperature: 0 for greedy (argmax); otherwise logits are divided by it and sampled.
        top_k: sample only among the k most likely tokens (None or 0: all).
        generator: random generator for sampling.

    Returns:
        ``(B,)`` token ids.

    Raises:
        ValueError: a negative or non-finite ``temperature``, a negative ``top_k``.

    Example:
        >>> pick_next_token(torch.tensor([[0.1, 2.0, -1.0]]))
        tensor([1])
    """
    _check_sampling(temperature, top_k)
    return _sample(logits, temperature, top_k, generator)


def _sample(logits: Tensor, temperature: float, top_k: int | None, generator: torch.Generator | None) -> Tensor:
    """:func:`pick_next_token` after its checks (``generate`` checks once, then samples every token)."""
    if temperature == 0:
        return logits.argmax(dim=-1)
    scaled = logits.float() / temperature
    if top_k:
        threshold = scaled.topk(min(top_k, scaled.shape[-1]), dim=-1).values[..., -1:]
        scaled = scaled.masked_fill(scaled < threshold, float("-inf"))
    probs = scaled.softmax(dim=-1)
    if generator is not None and generator.device.type != probs.device.type:
        raise ValueError(f"generator is on {generator.device}, logits on {probs.device}")
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


def _check_sampling(temperature: float, top_k: int | None) -> None:
    TEMPERATURE.check("temperature", temperature)
    if top_k is not None:
        TOP_K.check("top_k", top_k)


@torch.no_grad()
def generate(
    model: nn.Module,
    ids: Tensor,
    max_new_tokens: int,
    *,
    temperature: float = 0.0,
    top_k: int | None = None,
    generator: torch.Generator | None = None,
    compile: bool | str = False,
    cuda_graph: bool = False,
) -> Tensor:
    """Continue token sequences with a model that has ``prefill`` and ``step`` (an ``ELAGPT``).

    Args:
        model: the language model.
        ids: ``(B, L)`` prompt token ids, ``L >= 1``.
        max_new_tokens: number of tokens to append (``>= 0``).
        temperature: 0 (default) for greedy decoding; > 0 to sample (finite).
        top_k: restrict sampling to the k most likely tokens.
        generator: random generator for sampling.
        compile: decode with a :class:`~yolo_lat.text.StaticDecoder` whose step is compiled
            (``True``: Inductor; a string: that ``torch.compile`` backend). A softmax model's KV
            cache is then preallocated to the prompt plus ``max_new_tokens``.
        cuda_graph: decode with a :class:`~yolo_lat.text.StaticDecoder` that replays one captured
            CUDA graph per token (CUDA models).

    Returns:
        ``(B, L + max_new_tokens)`` the prompt followed by the generated tokens.

    Raises:
        ValueError: a prompt that is not ``(B, L >= 1)``, a negative ``max_new_tokens``, or bad
            sampling arguments (see :func:`pick_next_token`).

    Example:
        >>> from yolo_lat.text import ELAGPT, ELAGPTConfig
        >>> model = ELAGPT(ELAGPTConfig(d_model=32, n_heads=4)).eval()
        >>> generate(model, torch.tensor([[72, 105]]), 5).shape
        torch.Size([1, 7])
    """
    if ids.dim() != 2 or ids.shape[1] == 0:
        raise ValueError(f"prompt must be (batch, length) with length >= 1, got {tuple(ids.shape)}")
    MAX_NEW_TOKENS.check("max_new_tokens", max_new_tokens)
    _check_sampling(temperature, top_k)
    if max_new_tokens == 0:
        return ids
    was_training = model.training
    model.eval()
    try:
        logits, state = model.prefill(ids)
        token = _sample(logits[:, -1], temperature, top_k, generator)
        out = [ids, token[:, None]]
        if (compile or cuda_graph) and max_new_tokens > 1:
            max_length = ids.shape[1] + max_new_tokens  # (a softmax model's KV cache is preallocated to it)
            decoder = static.StaticDecoder(model, state, compile=compile, cuda_graph=cuda_graph, max_length=max_length)
            step = decoder.step
        else:

            def step(token: Tensor) -> Tensor:
                nonlocal state
                logits, state = model.step(token, state)
                return logits

        for _ in range(max_new_tokens - 1):
            token = _sample(step(token), temperature, top_k, generator)
            out.append(token[:, None])
    finally:
        model.train(was_training)
    return torch.cat(out, dim=1)


@torch.no_grad()
def generate_by_recompute(model: nn.Module, ids: Tensor, max_new_tokens: int) -> tuple[Tensor, Tensor]:
    """Greedy generation that recomputes the full sequence at every step (slow reference).

    Args:
        model: the language model (called on ``(B, L)`` ids, returns logits).
        ids: ``(B, L)`` prompt.
        max_new_tokens: number of tokens to append.

    Returns:
        ``(tokens (B, L + n), logits (B, n, vocab))``: the sequence, and the last-position logits
        that chose each new token.
    """
    was_training = model.training
    model.eval()
    chosen = []
    try:
        for _ in range(max_new_tokens):
            last = model(ids)[:, -1]
            chosen.append(last)
            ids = torch.cat([ids, last.argmax(dim=-1, keepdim=True)], dim=1)
    finally:
        model.train(was_training)
    return ids, torch.stack(chosen, dim=1)
