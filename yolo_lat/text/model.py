"""ELA-GPT: a decoder-only language model on Exact Linear Attention.

Layers (see docs/text.md):

* Hyper-Link (``hyperlink=True``): ``x_{k+1} = x_k + ffn_k(attn_k(norm(x_k))) [+ lobe_k(dx_k)]``;
  the attention output feeds the FFN/MoE and only the FFN's output enters the stream.
* standard pre-norm (``hyperlink=False``): ``x = x + attn(norm x)``, ``x = x + ffn(norm x)``
  ``[+ lobe_k(dx_k)]``.

The reference code's forms (``ELAGPTConfig`` ``hyperlink_form``, ``lobe_form``, ``moe_gate``):
``hyperlink_form="reference"`` gives ``x + a + ffn(a)`` with ``a = attn(norm x)``; with
``lobe_form="reference"`` the lobe reads what the FFN step writes into the stream this layer
(``ffn(a)``, ``a + ffn(a)`` or ``ffn(norm x)``) instead of ``dx_k``.

``dx_k = x_k - x_{k-1}`` is the flow into layer k (the first layer's flow is the embedding).
Decoding keeps, per layer, the attention state (an :class:`~yolo_lat.ela.ELAState` of constant size,
or a :class:`~yolo_lat.text.attention.KVCache` for the softmax baseline) and the lobe's ELA state.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from .attention import CausalSelfAttention
from .config import ELAGPTConfig
from .generate import generate
from .layers import RMSNorm, SwiGLU, rope_angles
from .lobe import MemoryLobe
from .moe import LabelRoutedMoE
from .state import DecodeState, LayerState

__all__ = ["ELAGPT", "ELAGPTBlock"]


class ELAGPTBlock(nn.Module):
    """One decoder layer: causal attention, SwiGLU FFN or label-routed MoE, optional Memory Lobe.

    Args:
        config: the model configuration.

    Example:
        >>> cfg = ELAGPTConfig(d_model=32, n_heads=4, memory_lobe=True)
        >>> block = ELAGPTBlock(cfg)
        >>> x = torch.randn(2, 5, 32)
        >>> y, balance, state = block(x, x, rope_angles(torch.arange(5), 8))
        >>> y.shape
        torch.Size([2, 5, 32])
    """

    def __init__(self, config: ELAGPTConfig) -> None:
        super().__init__()
        self.hyperlink = config.hyperlink
        self.attention_in_stream = config.hyperlink_form == "reference"
        self.attn_norm = RMSNorm(config.d_model, config.norm_eps)
        self.attn = CausalSelfAttention(config.d_model, config.n_heads, config.attention, config.kernel)
        self.ffn_norm = None if config.hyperlink else RMSNorm(config.d_model, config.norm_eps)
        if config.moe_experts:
            self.ffn: nn.Module = LabelRoutedMoE(
                config.d_model,
                config.ffn_hidden,
                config.moe_experts,
                config.moe_top_k,
                config.moe_bias,
                config.moe_gate,
            )
        else:
            self.ffn = SwiGLU(config.d_model, config.ffn_hidden)
        self.lobe = (
            MemoryLobe(
                config.d_model,
                config.n_heads,
                config.kernel,
                config.lobe_bidirectional,
                config.norm_eps,
                config.lobe_form,
            )
            if config.memory_lobe
            else None
        )

    def _feed_forward(self, x: Tensor, stream: Tensor) -> tuple[Tensor, Tensor]:
        # label-routed experts are routed on the residual stream that their output joins (see moe.py);
        # a linear gate routes on the expert input
        if isinstance(self.ffn, LabelRoutedMoE):
            return self.ffn(x, route_on=stream) if self.ffn.gate is None else self.ffn(x)
        return self.ffn(x), x.new_zeros(())

    def forward(
        self,
        x: Tensor,
        previous: Tensor,
        rope: tuple[Tensor, Tensor],
        state: LayerState | None = None,
        use_cache: bool = False,
    ) -> tuple[Tensor, Tensor, LayerState | None]:
        """Apply the layer.

        Args:
            x: ``(B, L, d_model)`` this layer's input ``x_k``.
            previous: ``(B, L, d_model)`` the previous layer's input ``x_{k-1}`` (zeros for the first).
            rope: RoPE ``(cos, sin)`` for the absolute positions of ``x``.
            state: this layer's decode state, or None.
            use_cache: return the updated state.

        Returns:
            ``(x_{k+1}, balance loss (scalar, 0 without MoE), state or None)``.
        """
        state = state or LayerState()
        attended, attention_state = self.attn(self.attn_norm(x), rope, state.attention, use_cache)
        if self.hyperlink:
            update, balance = self._feed_forward(attended, x)
            if self.attention_in_stream:  # reference form: the FFN/MoE adds its input back
                update = attended + update
            out = x + update
        else:
            mid = x + attended
            update, balance = self._feed_forward(self.ffn_norm(mid), mid)
            out = mid + update
        lobe_state = None
        if self.lobe is not None:
            read = update if self.lobe.form == "reference" else x - previous
            remembered, lobe_state = self.lobe(read, state.lobe, use_cache)
            out = out + remembered
        return out, balance, (LayerState(attention_state, lobe_state) if use_cache else None)


class ELAGPT(nn.Module):
    """Decoder-only language model with causal ELA (or the softmax baseline) and RoPE.

    Args:
        config: an :class:`~yolo_lat.text.ELAGPTConfig`.

    Example:
        >>> model = ELAGPT(ELAGPTConfig(d_model=32, n_layers=2, n_heads=4, moe_experts=4))
        >>> ids = torch.randint(0, 256, (2, 10))
        >>> logits, aux = model(ids, return_aux=True)
        >>> logits.shape, aux.shape
        (torch.Size([2, 10, 256]), torch.Size([]))
        >>> model.generate(ids[:, :3], max_new_tokens=4).shape
        torch.Size([2, 7])
    """

    def __init__(self, config: ELAGPTConfig) -> None:
        super().__init__()
        self.config = config
        self.embed = nn.Embedding(config.vocab_size, config.d_model)
        self.blocks = nn.ModuleList(ELAGPTBlock(config) for _ in range(config.n_layers))
        self.norm = RMSNorm(config.d_model, config.norm_eps)
        self.head = nn.Linear(config.d_model, config.vocab_size, bias=False)
        self.apply(self._init_weights)
        if config.tie_embeddings:
            self.head.weight = self.embed.weight
        # GPT-2 style: projections that write into the stream start smaller with depth
        depth_scale = 0.02 / math.sqrt(2 * config.n_layers)
        for name, parameter in self.named_parameters():
            if name.endswith(("out.weight", "down.weight")):
                nn.init.normal_(parameter, std=depth_scale)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=0.02)

    def num_parameters(self) -> int:
        """Number of distinct parameters (tied weights counted once)."""
        return sum(p.numel() for p in self.parameters())

    def _run(
        self, ids: Tensor, state: DecodeState | None, use_cache: bool
    ) -> tuple[Tensor, Tensor, DecodeState | None]:
        if ids.dim() != 2:
            raise ValueError(f"token ids must be (batch, length), got shape {tuple(ids.shape)}")
        if use_cache and self.config.lobe_bidirectional and self.config.memory_lobe:
            raise ValueError("a model with a bidirectional Memory Lobe cannot decode token by token")
        position = 0 if state is None else state.position  # an int, or a (1,) tensor (static decoding)
        x = self.embed(ids)
        positions = torch.arange(ids.shape[1], device=ids.device) + position
        rope = rope_angles(positions, self.config.head_dim, self.config.rope_base, x.dtype)
        previous = torch.zeros_like(x)
        balance = x.new_zeros(())
        new_layers = []
        for index, block in enumerate(self.blocks):
            layer_state = None if state is None else state.layers[index]
            x_next, layer_balance, layer_state = block(x, previous, rope, layer_state, use_cache)
            balance = balance + layer_balance
            new_layers.append(layer_state)
            previous, x = x, x_next
        logits = self.head(self.norm(x))
        new_state = DecodeState(new_layers, position + ids.shape[1]) if use_cache else None
        return logits, balance * self.config.moe_balance_weight, new_state

    def forward(self, ids: Tensor, return_aux: bool = False) -> Tensor | tuple[Tensor, Tensor]:
        """Logits for every position of a batch of token sequences (causal).

        Args:
            ids: ``(B, L)`` token ids.
            return_aux: also return the auxiliary loss (weighted MoE load balancing; 0 without MoE).

        Returns:
            ``(B, L, vocab)`` logits, or ``(logits, aux_loss)``.
        """
        logits, aux, _ = self._run(ids, None, use_cache=False)
        return (logits, aux) if return_aux else logits

    def loss(self, ids: Tensor, targets: Tensor) -> tuple[Tensor, Tensor]:
        """Next-token cross-entropy and auxiliary loss.

        Args:
            ids: ``(B, L)`` inputs.
            targets: ``(B, L)`` the token following each input position.

        Returns:
            ``(cross_entropy, aux_loss)``, scalars; train on their sum.
        """
        logits, aux = self(ids, return_aux=True)
        ce = nn.functional.cross_entropy(logits.flatten(0, 1).float(), targets.flatten())
        return ce, aux

    @torch.no_grad()
    def prefill(self, ids: Tensor, state: DecodeState | None = None) -> tuple[Tensor, DecodeState]:
        """Run a prompt in one causal pass and return the per-layer decode states.

        Args:
            ids: ``(B, L)`` prompt tokens (or the next chunk of one, with ``state``).
            state: state after earlier chunks, or None to start.

        Returns:
            ``(logits (B, L, vocab), state)``.
        """
        if state is not None:
            state = _copy_state(state)
        logits, _, new_state = self._run(ids, state, use_cache=True)
        return logits, new_state

    @torch.no_grad()
    def step(self, token: Tensor, state: DecodeState) -> tuple[Tensor, DecodeState]:
        """Consume one token per sequence; O(1) in the context length for ELA.

        Args:
            token: ``(B,)`` the newest token of each sequence.
            state: state after the earlier tokens (from :meth:`prefill` or a previous step). A KV
                cache inside it is extended in place.

        Returns:
            ``(logits (B, vocab), new_state)``.
        """
        logits, _, new_state = self._run(token.view(-1, 1), state, use_cache=True)
        return logits[:, -1], new_state

    def generate(
        self,
        ids: Tensor,
        max_new_tokens: int,
        temperature: float = 0.0,
        top_k: int | None = None,
        generator: torch.Generator | None = None,
        compile: bool | str = False,
        cuda_graph: bool = False,
    ) -> Tensor:
        """Continue ``ids``; see :func:`yolo_lat.text.generate.generate`."""
        return generate(
            self,
            ids,
            max_new_tokens,
            temperature=temperature,
            top_k=top_k,
            generator=generator,
            compile=compile,
            cuda_graph=cuda_graph,
        )


def _copy_state(state: DecodeState) -> DecodeState:
    """Shallow copy so a chunked prefill never changes the caller's list (ELA states are immutable)."""
    return DecodeState([LayerState(layer.attention, layer.lobe) for layer in state.layers], state.position)
