"""Decode state of an ELA-GPT: per layer, the attention state and the lobe's ELA state, and the position.

An ELA attention state (:class:`~yolo_lat.ela.ELAState`) has a constant size; the softmax baseline
keeps a :class:`~yolo_lat.text.attention.KVCache` instead, which grows with the context.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from yolo_lat.ela import ELAState

from .attention import KVCache

__all__ = ["DecodeState", "LayerState"]


@dataclass
class LayerState:
    """Decode state of one layer: attention (ELA state or KV cache) and the lobe's ELA state."""

    attention: ELAState | KVCache | None = None
    lobe: ELAState | None = None

    @property
    def nbytes(self) -> int:
        """Bytes held by the state tensors (filled part of a KV cache)."""
        return sum(part.nbytes for part in (self.attention, self.lobe) if part is not None)


@dataclass
class DecodeState:
    """Everything a model needs to continue a batch of sequences: per-layer states and the position.

    Attributes:
        layers: one :class:`LayerState` per layer.
        position: number of tokens consumed (the RoPE offset of the next token).
    """

    layers: list[LayerState] = field(default_factory=list)
    position: int = 0

    @property
    def nbytes(self) -> int:
        """Bytes of all layer states; constant in context length for ELA, linear for a KV cache."""
        return sum(layer.nbytes for layer in self.layers)
