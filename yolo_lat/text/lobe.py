"""Memory Lobe: Exact Linear Attention over a layer's transformation flow ``dx_k = x_k - x_{k-1}``.

The flow is what the previous layer wrote into the residual stream at each position. The lobe
projects it to its own queries, keys and values, attends with ELA and adds the result to the
stream. In an autoregressive model the lobe must be causal: a bidirectional lobe lets position t
read the flow at t + 1, which already contains token t + 1, the very token position t is trained
to predict (``docs/text.md``, ``scripts/lobe_leak.py``).

``form="reference"`` is the paper's reference code's lobe: one head as wide as the stream, Q, K, V
projections only (no norm, no output projection); the model feeds it what the layer's FFN writes
into the stream rather than the flow. It is causal here too.
"""

from __future__ import annotations

from torch import Tensor, nn

from yolo_lat.ela import ELAState, ela_attention

from .attention import causal_ela
from .layers import RMSNorm

__all__ = ["MemoryLobe"]


class MemoryLobe(nn.Module):
    """ELA with its own Q, K, V projections, applied to the flow of the residual stream.

    Args:
        d_model: stream width.
        n_heads: heads of the lobe's attention.
        kernel: ELA kernel name.
        bidirectional: attend to every position (encoders only; leaks the future in a language model).
        eps: epsilon of the flow's RMS norm.
        form: ``project`` (the above) or ``reference`` (one head of width ``d_model``, no norm and
            no output projection; ``n_heads`` and ``eps`` are then unused).

    Example:
        >>> import torch
        >>> lobe = MemoryLobe(32, 4, "hadamard_exp")
        >>> flow = torch.randn(2, 7, 32)
        >>> out, state = lobe(flow, use_cache=True)
        >>> out.shape, state.tokens
        (torch.Size([2, 7, 32]), 7)
    """

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        kernel: str,
        bidirectional: bool = False,
        eps: float = 1e-6,
        form: str = "project",
    ) -> None:
        super().__init__()
        if form not in ("project", "reference"):
            raise ValueError(f"form must be project or reference, got {form!r}")
        reference = form == "reference"
        self.form = form
        self.n_heads = 1 if reference else n_heads
        self.head_dim = d_model // self.n_heads
        self.kernel = kernel
        self.bidirectional = bidirectional
        self.norm = None if reference else RMSNorm(d_model, eps)
        self.qkv = nn.Linear(d_model, 3 * d_model, bias=False)
        self.out = None if reference else nn.Linear(d_model, d_model, bias=False)

    def forward(
        self, flow: Tensor, state: ELAState | None = None, use_cache: bool = False
    ) -> tuple[Tensor, ELAState | None]:
        """Read the flow with ELA.

        Args:
            flow: ``(B, L, d_model)`` difference between this layer's input and the previous layer's
                (``reference`` form: what this layer's FFN writes into the stream).
            state: lobe state of earlier tokens (causal decoding), or None.
            use_cache: return the state after these tokens.

        Returns:
            ``(out (B, L, d_model), state or None)``.
        """
        batch, length, width = flow.shape
        normed = flow if self.norm is None else self.norm(flow)
        qkv = self.qkv(normed).view(batch, length, 3, self.n_heads, self.head_dim)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)
        scale = self.head_dim**-0.5
        if self.bidirectional:
            if state is not None or use_cache:
                raise ValueError(
                    "a bidirectional Memory Lobe sees the whole sequence at once and cannot decode token by token; "
                    "use lobe_bidirectional=False for generation"
                )
            y = ela_attention(q, k, v, kernel=self.kernel, causal=False, scale=scale)
        else:
            y, state = causal_ela(q, k, v, kernel=self.kernel, scale=scale, state=state, keep_state=use_cache)
        y = y.transpose(1, 2).reshape(batch, length, width)
        return (y if self.out is None else self.out(y)), state
