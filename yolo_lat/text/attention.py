"""Causal self-attention for the text models: ELA with a constant-size state, softmax with a KV cache.

Both layers have the same parameters (fused QKV projection, output projection, RoPE on q and k),
so the softmax baseline has exactly the parameter count of the ELA model. ``forward`` takes an
optional cache and the absolute position of its first token, which is how prefill and decoding
share one code path.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from yolo_lat.ela import ELAState, ela_attention, ela_step

from .layers import apply_rope

__all__ = ["CausalSelfAttention", "FixedKVCache", "KVCache", "causal_ela"]


def causal_ela(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    *,
    kernel: str,
    scale: float,
    state: ELAState | None,
    keep_state: bool,
) -> tuple[Tensor, ELAState | None]:
    """Causal ELA that can continue from, and return, a decode state.

    Args:
        q: ``(B, H, L, D)`` queries.
        k: ``(B, H, L, D)`` keys.
        v: ``(B, H, L, Dv)`` values.
        kernel: ELA kernel name.
        scale: multiplies q and k before the feature maps.
        state: state of the earlier tokens, or ``None``.
        keep_state: return the state after these tokens (prefill / decoding).

    Returns:
        ``(out (B, H, L, Dv), state or None)``. One new token uses :func:`~yolo_lat.ela.ela_step`,
        O(F Dv) whatever the context length; several use chunked causal ELA from ``state``.

    Example:
        >>> q = k = v = torch.randn(1, 2, 5, 8)
        >>> out, state = causal_ela(q, k, v, kernel="hadamard_exp", scale=0.35, state=None, keep_state=True)
        >>> out.shape, state.tokens
        (torch.Size([1, 2, 5, 8]), 5)
    """
    if not keep_state and state is None:
        return ela_attention(q, k, v, kernel=kernel, causal=True, scale=scale), None
    if state is not None and q.shape[2] == 1:
        out, new_state = ela_step(q[:, :, 0], k[:, :, 0], v[:, :, 0], state, kernel=kernel, scale=scale)
        return out.unsqueeze(2), new_state
    return ela_attention(q, k, v, kernel=kernel, causal=True, scale=scale, return_state=True, initial_state=state)


@dataclass
class KVCache:
    """Keys and values of the tokens seen so far, in buffers that grow by doubling.

    Appending writes in place, so a decode step costs O(context) for reading the cache but never
    copies it (amortised over the doublings).

    Attributes:
        k: ``(B, H, capacity, D)`` key buffer.
        v: ``(B, H, capacity, Dv)`` value buffer.
        length: number of positions filled.
    """

    k: Tensor
    v: Tensor
    length: int = 0

    @classmethod
    def allocate(cls, like_k: Tensor, like_v: Tensor, capacity: int) -> KVCache:
        """An empty cache for tensors shaped like ``like_k``/``like_v`` (batch, heads, _, dim)."""
        batch, heads = like_k.shape[:2]
        k = like_k.new_zeros(batch, heads, capacity, like_k.shape[-1])
        v = like_v.new_zeros(batch, heads, capacity, like_v.shape[-1])
        return cls(k, v, 0)

    def append(self, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """Add ``(B, H, L, D)`` keys/values; returns views of all keys and values so far."""
        needed = self.length + k.shape[2]
        if needed > self.k.shape[2]:
            capacity = max(needed, 2 * self.k.shape[2])
            grown = KVCache.allocate(self.k, self.v, capacity)
            grown.k[:, :, : self.length] = self.keys
            grown.v[:, :, : self.length] = self.values
            self.k, self.v = grown.k, grown.v
        self.k[:, :, self.length : needed] = k
        self.v[:, :, self.length : needed] = v
        self.length = needed
        return self.keys, self.values

    @property
    def keys(self) -> Tensor:
        """``(B, H, length, D)`` view of the stored keys."""
        return self.k[:, :, : self.length]

    @property
    def values(self) -> Tensor:
        """``(B, H, length, Dv)`` view of the stored values."""
        return self.v[:, :, : self.length]

    @property
    def nbytes(self) -> int:
        """Bytes of the filled part (what a cache of exactly this length needs)."""
        return self.keys.numel() * self.k.element_size() + self.values.numel() * self.v.element_size()

    @property
    def allocated_nbytes(self) -> int:
        """Bytes of the buffers including unused capacity."""
        return self.k.numel() * self.k.element_size() + self.v.numel() * self.v.element_size()


@dataclass
class FixedKVCache:
    """Keys and values in buffers of a fixed capacity, the next one written at a position held in a
    tensor: what a fixed-shape (compiled or CUDA-graph) softmax decode step needs. Each step
    attends over the whole capacity with the unwritten part masked, so its cost is that of the
    longest context the cache was sized for, whatever the current length.

    Attributes:
        k: ``(B, H, capacity, D)`` key buffer.
        v: ``(B, H, capacity, Dv)`` value buffer.
        position: ``(1,)`` int64 index where the next token's key and value go (shared with the
            decoder that advances it).
    """

    k: Tensor
    v: Tensor
    position: Tensor

    @classmethod
    def from_cache(cls, cache: KVCache, capacity: int, position: Tensor) -> FixedKVCache:
        """A fixed cache of ``capacity`` positions, on ``position``'s device, holding a copy of
        ``cache``'s keys and values."""
        if capacity < cache.length:
            raise ValueError(f"capacity {capacity} is smaller than the {cache.length} tokens already cached")
        fixed = KVCache.allocate(cache.k.to(position.device), cache.v.to(position.device), capacity)
        fixed.append(cache.keys, cache.values)
        return cls(fixed.k, fixed.v, position)

    def to_cache(self, length: int) -> KVCache:
        """A growing :class:`KVCache` holding a copy of the first ``length`` positions."""
        cache = KVCache.allocate(self.k, self.v, max(16, length))
        cache.append(self.k[:, :, :length], self.v[:, :, :length])
        return cache

    def append(self, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Write one token's ``(B, H, 1, D)`` key and value at ``position``.

        Returns:
            ``(keys, values, visible)``: the whole buffers and a ``(1, capacity)`` mask of the
            positions written so far, this one included.
        """
        self.k.index_copy_(2, self.position, k)
        self.v.index_copy_(2, self.position, v)
        visible = torch.arange(self.k.shape[2], device=self.k.device)[None, :] <= self.position
        return self.k, self.v, visible


class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention with RoPE: ELA (``attention="ela"``) or softmax.

    Args:
        d_model: input/output width.
        n_heads: number of heads.
        attention: ``ela`` or ``softmax``.
        kernel: ELA kernel name (ignored for softmax).

    Example:
        >>> from yolo_lat.text.layers import rope_angles
        >>> layer = CausalSelfAttention(32, 4, "ela", "hadamard_exp")
        >>> x = torch.randn(2, 6, 32)
        >>> y, cache = layer(x, rope_angles(torch.arange(6), 8), use_cache=True)
        >>> y.shape, cache.tokens
        (torch.Size([2, 6, 32]), 6)
    """

    def __init__(self, d_model: int, n_heads: int, attention: str, kernel: str) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.head_dim = d_model // n_heads
        self.attention = attention
        self.kernel = kernel
        self.qkv = nn.Linear(d_model, 3 * d_model, bias=False)
        self.out = nn.Linear(d_model, d_model, bias=False)

    def forward(
        self,
        x: Tensor,
        rope: tuple[Tensor, Tensor],
        cache: ELAState | KVCache | None = None,
        use_cache: bool = False,
    ) -> tuple[Tensor, ELAState | KVCache | None]:
        """Attend from each position to itself and every earlier one (cached ones included).

        Args:
            x: ``(B, L, d_model)``.
            rope: ``(cos, sin)`` of shape ``(L, head_dim / 2)`` for the absolute positions of ``x``.
            cache: state of earlier tokens (``ELAState`` for ELA, ``KVCache`` for softmax) or None.
            use_cache: return the updated cache.

        Returns:
            ``(y (B, L, d_model), cache or None)``.
        """
        batch, length, width = x.shape
        q, k, v = self.qkv(x).view(batch, length, 3, self.n_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k = apply_rope(q, *rope), apply_rope(k, *rope)
        if self.attention == "ela":
            y, cache = causal_ela(
                q, k, v, kernel=self.kernel, scale=self.head_dim**-0.5, state=cache, keep_state=use_cache
            )
        else:
            y, cache = self._softmax(q, k, v, cache, use_cache)
        return self.out(y.transpose(1, 2).reshape(batch, length, width)), cache

    @staticmethod
    def _softmax(
        q: Tensor, k: Tensor, v: Tensor, cache: KVCache | FixedKVCache | None, use_cache: bool
    ) -> tuple[Tensor, KVCache | FixedKVCache | None]:
        if isinstance(cache, FixedKVCache):  # one token, fixed shapes (StaticDecoder)
            keys, values, visible = cache.append(k, v)
            return F.scaled_dot_product_attention(q, keys, values, attn_mask=visible), cache
        past = 0 if cache is None else cache.length
        if use_cache or cache is not None:
            if cache is None:
                cache = KVCache.allocate(k, v, max(16, k.shape[2]))
            k, v = cache.append(k, v)
        length = q.shape[2]
        if past == 0:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        elif length == 1:  # one new token sees the whole cache: no mask at all
            y = F.scaled_dot_product_attention(q, k, v)
        else:  # new token i sits at absolute position past + i
            mask = torch.ones(length, past + length, dtype=torch.bool, device=q.device).tril(diagonal=past)
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return y, cache
