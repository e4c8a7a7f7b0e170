"""Configuration of an ELA-GPT text model: sizes, attention kind, Hyper-Link, Memory Lobe and MoE."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from yolo_lat.ela import get_kernel

from .checks import Limit, check_values

__all__ = ["ATTENTIONS", "HYPERLINK_FORMS", "LIMITS", "LOBE_FORMS", "MOE_BIASES", "MOE_GATES", "ELAGPTConfig"]

MOE_BIASES = ("outer", "inner", "none")
ATTENTIONS = ("ela", "softmax")
#: Forms of the Hyper-Link layer, the Memory Lobe and the MoE gate; the first is the default
#: (the paper's prose), ``reference``/``linear`` the paper's public reference code (docs/text.md, Variants).
HYPERLINK_FORMS = ("paper", "reference")
LOBE_FORMS = ("project", "reference")
MOE_GATES = ("label", "linear")
_CHOICES = {
    "attention": ATTENTIONS,
    "moe_bias": MOE_BIASES,
    "hyperlink_form": HYPERLINK_FORMS,
    "lobe_form": LOBE_FORMS,
    "moe_gate": MOE_GATES,
}
_NEEDS = {"hyperlink_form": "hyperlink=True", "lobe_form": "memory_lobe=True", "moe_gate": "moe_experts > 0"}

#: What the numeric fields accept (NaN and infinities never pass).
LIMITS = {
    "vocab_size": Limit(int, 1),
    "d_model": Limit(int, 1),
    "n_layers": Limit(int, 1),
    "n_heads": Limit(int, 1),
    "moe_experts": Limit(int, 0),
    "moe_top_k": Limit(int, 1),
    "ffn_mult": Limit(float, 0, closed=False),
    "rope_base": Limit(float, 0, closed=False),
    "moe_balance_weight": Limit(float, 0),
    "norm_eps": Limit(float, 0, closed=False),
}


@dataclass
class ELAGPTConfig:
    """Everything needed to build an :class:`~yolo_lat.text.ELAGPT`; saved inside checkpoints.

    Args:
        vocab_size: number of token ids (256 for the byte tokenizer).
        d_model: width of the residual stream.
        n_layers: number of decoder layers.
        n_heads: attention heads; ``d_model`` must be divisible by it.
        kernel: registered ELA kernel (``yolo_lat.ela.list_kernels()``); ignored by softmax attention.
        hyperlink: Hyper-Link layer ``x + ffn(attn(norm x))``; ``False`` gives the standard pre-norm
            layer ``x + attn(norm x)`` then ``x + ffn(norm x)``.
        memory_lobe: add a Memory Lobe per layer (ELA over the flow ``x_k - x_{k-1}``).
        moe_experts: experts per layer; 0 uses a dense SwiGLU FFN.
        moe_top_k: experts each token is routed to.
        moe_bias: how the label vector enters an expert's output: ``outer``
            ``s * ffn(x) + l``, ``inner`` ``s * (ffn(x) + l)`` or ``none`` ``s * ffn(x)``.
        attention: ``ela`` (causal Exact Linear Attention) or ``softmax`` (the baseline: causal
            scaled-dot-product attention with a KV cache, same parameters).
        lobe_bidirectional: let the lobe attend to every position. Only for encoders and the leak
            demonstration: in a language model it reads future tokens (see ``docs/text.md``).
        ffn_mult: SwiGLU hidden width as a multiple of ``d_model`` (per expert with MoE).
        rope_base: RoPE frequency base.
        moe_balance_weight: weight of the load-balancing loss in the auxiliary loss.
        tie_embeddings: share the token embedding with the output projection. Off by default: in a
            Hyper-Link model the current token reaches the logits unchanged only through the
            residual stream, and a tied head can then score the next token only by its
            (symmetric) embedding similarity with the current one (``scripts/text_design.py``
            trains the default model both ways).
        norm_eps: epsilon of the RMS norms.
        hyperlink_form: ``paper`` ``x + ffn(a)`` or ``reference`` ``x + a + ffn(a)``, with
            ``a = attn(norm x)`` (the reference code's MoE adds its input back); needs ``hyperlink``.
        lobe_form: ``project`` (several heads over the normed flow ``x_k - x_{k-1}``, output
            projection) or ``reference`` (one head of width ``d_model``, Q/K/V projections only,
            over what this layer's FFN writes into the stream); needs ``memory_lobe``.
        moe_gate: ``label`` (label vectors, routing-score bias) or ``linear`` (a linear gate on the
            expert input, top-k scores renormalised to sum to 1, no label vectors: ``moe_bias`` does
            not apply); needs ``moe_experts > 0``.

    Example:
        >>> cfg = ELAGPTConfig(d_model=64, n_layers=2, n_heads=4, moe_experts=4)
        >>> cfg.head_dim, cfg.ffn_hidden
        (16, 176)
    """

    vocab_size: int = 256
    d_model: int = 64
    n_layers: int = 2
    n_heads: int = 4
    kernel: str = "hadamard_exp"
    hyperlink: bool = True
    memory_lobe: bool = False
    moe_experts: int = 0
    moe_top_k: int = 2
    moe_bias: str = "outer"
    attention: str = "ela"
    lobe_bidirectional: bool = False
    ffn_mult: float = 8 / 3
    rope_base: float = 10000.0
    moe_balance_weight: float = 0.01
    tie_embeddings: bool = False
    norm_eps: float = 1e-6
    hyperlink_form: str = "paper"
    lobe_form: str = "project"
    moe_gate: str = "label"

    def __post_init__(self) -> None:
        check_values(asdict(self), LIMITS)
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model={self.d_model} must be divisible by n_heads={self.n_heads}")
        if self.head_dim % 2:
            raise ValueError(f"head_dim = d_model / n_heads = {self.head_dim} must be even for RoPE")
        for name, choices in _CHOICES.items():
            value = getattr(self, name)
            if value not in choices:
                raise ValueError(f"{name} must be one of {', '.join(choices)}, got {value!r}")
        switched_off = {"hyperlink_form": not self.hyperlink, "lobe_form": not self.memory_lobe}
        switched_off["moe_gate"] = not self.moe_experts
        for name, off in switched_off.items():
            if off and getattr(self, name) != _CHOICES[name][0]:
                raise ValueError(f"{name}={getattr(self, name)!r} needs {_NEEDS[name]}")
        if self.moe_experts and not 1 <= self.moe_top_k <= self.moe_experts:
            raise ValueError(f"moe_top_k must be in 1..moe_experts={self.moe_experts}, got {self.moe_top_k}")
        self.kernel = get_kernel(self.kernel).name  # unknown names fail here, with a did-you-mean

    @property
    def head_dim(self) -> int:
        """Width of one attention head."""
        return self.d_model // self.n_heads

    @property
    def ffn_hidden(self) -> int:
        """SwiGLU hidden width, rounded up to a multiple of 8."""
        return -(-int(self.d_model * self.ffn_mult) // 8) * 8

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (for checkpoints and JSON)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> ELAGPTConfig:
        """Inverse of :meth:`to_dict`; unknown keys are an error."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown ELAGPTConfig fields: {', '.join(unknown)}")
        return cls(**values)
