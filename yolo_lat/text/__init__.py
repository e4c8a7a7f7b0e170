"""ELA text models: ELA-GPT with Hyper-Link, Memory Lobe and label-routed MoE; constant-memory decoding.

Example:
    >>> import torch
    >>> from yolo_lat.text import ELAGPT, ELAGPTConfig
    >>> config = ELAGPTConfig(vocab_size=256, d_model=32, n_layers=2, n_heads=4, kernel="hadamard_exp",
    ...                       hyperlink=True, memory_lobe=True, moe_experts=4, moe_top_k=2, moe_bias="outer")
    >>> model = ELAGPT(config)
    >>> model(torch.randint(0, 256, (2, 16))).shape
    torch.Size([2, 16, 256])
"""

from .attention import CausalSelfAttention, FixedKVCache, KVCache
from .config import ELAGPTConfig
from .generate import generate, generate_by_recompute, pick_next_token
from .lobe import MemoryLobe
from .model import ELAGPT, ELAGPTBlock
from .moe import LabelRoutedMoE
from .state import DecodeState, LayerState
from .static import StaticDecoder
from .tokenizer import ByteTokenizer, load_tokenizer

__all__ = [
    "ELAGPT",
    "ByteTokenizer",
    "CausalSelfAttention",
    "DecodeState",
    "ELAGPTBlock",
    "ELAGPTConfig",
    "FixedKVCache",
    "KVCache",
    "LabelRoutedMoE",
    "LayerState",
    "MemoryLobe",
    "StaticDecoder",
    "generate",
    "generate_by_recompute",
    "load_tokenizer",
    "pick_next_token",
]
