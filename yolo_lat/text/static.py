"""Decoding with fixed buffers: one decode step as one compiled graph or one CUDA graph.

ELA's decode state has the same size after every token, so a decode step can keep it in buffers
allocated once and update them in place, with the position held in a tensor, and mix a MoE's
experts with fixed shapes (the ``fixed_shapes`` setting of :mod:`yolo_lat.settings`: every expert on every token,
weighted by its routing score or 0, instead of gathering each expert's tokens with ``nonzero``).
The step then has fixed shapes, fixed addresses and no host synchronisation, which is what
``torch.compile`` (``fullgraph=True``: one graph, kernels fused across the whole model) and CUDA
graphs (the step captured once, then replayed with one launch) need.

A KV cache grows with every token. The softmax baseline decodes this way only with a
:class:`~yolo_lat.text.attention.FixedKVCache` preallocated to ``max_length`` tokens, attended over
in full (masked) at every step: its memory and its per-token cost are those of the longest context
from the first token on.

Example:
    >>> import torch
    >>> from yolo_lat.text import ELAGPT, ELAGPTConfig, StaticDecoder
    >>> model = ELAGPT(ELAGPTConfig(d_model=32, n_heads=4)).eval()
    >>> logits, state = model.prefill(torch.tensor([[72, 105]]))
    >>> decoder = StaticDecoder(model, state)  # compile=True and/or cuda_graph=True for speed
    >>> decoder.step(logits[:, -1].argmax(-1)).shape
    torch.Size([1, 256])
    >>> decoder.state.position
    3
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from yolo_lat import settings
from yolo_lat.ela import ELAState

from .attention import FixedKVCache, KVCache
from .state import DecodeState, LayerState

__all__ = ["StaticDecoder"]

#: Steps run before a CUDA graph is captured (on a side stream, then undone): the first compiles
#: the Triton kernels (and, with ``compile``, the graph); the second runs with everything warm.
WARMUP_STEPS = 2


class StaticDecoder:
    """Continue a batch of sequences one token at a time from fixed, in-place-updated buffers.

    Args:
        model: an ``ELAGPT``.
        state: the state to continue from, e.g. from ``model.prefill``; it is copied, not changed.
        compile: compile the step with ``torch.compile(fullgraph=True)``. ``True`` uses Inductor
            (which needs a C++ compiler on the CPU); any other true value is passed on as
            ``torch.compile``'s backend (a name such as ``"aot_eager"``, or a callable). The first
            step compiles (seconds); later steps reuse the graph.
        cuda_graph: capture the step into a CUDA graph once, then replay it (CUDA models only).
        max_length: softmax models only (required there): the tokens the preallocated KV cache
            holds, prompt included. Every step attends over all of them.

    Attributes:
        steps: tokens consumed so far by :meth:`step` (less those taken back by :meth:`rewind`).
        batch: number of sequences B.

    Raises:
        ValueError: a state that does not fit the model (layers, lobes, attention kind), a softmax
            model without ``max_length``, or ``cuda_graph=True`` on a model not on a CUDA device.

    Example:
        >>> decoder = StaticDecoder(model, state, compile=True)  # doctest: +SKIP
        >>> logits = decoder.step(token)  # doctest: +SKIP
    """

    def __init__(
        self,
        model: nn.Module,
        state: DecodeState,
        *,
        compile: bool | str | Callable = False,
        cuda_graph: bool = False,
        max_length: int | None = None,
    ) -> None:
        self._softmax = model.config.attention == "softmax"
        if self._softmax and max_length is None:
            raise ValueError(
                "a softmax model needs max_length for static decoding: its KV cache grows with every token, so it is "
                "preallocated to max_length tokens (ELA's state has a fixed size and needs none)"
            )
        if self._softmax and max_length <= state.position:
            raise ValueError(f"max_length={max_length} leaves no room after the {state.position} tokens of the state")
        if len(state.layers) != len(model.blocks):
            raise ValueError(f"state has {len(state.layers)} layers, the model {len(model.blocks)}")
        for index, (block, layer) in enumerate(zip(model.blocks, state.layers)):
            if (block.lobe is None) != (layer.lobe is None):
                has = "has no" if layer.lobe is None else "has a"
                raise ValueError(f"layer {index} of the state {has} Memory Lobe state, unlike the model's layer")
        device = next(model.parameters()).device
        if cuda_graph and device.type != "cuda":
            raise ValueError(f"cuda_graph=True needs the model on a CUDA device; it is on {device}")
        self.model = model
        self.batch = _batch_of(state.layers[0].attention)
        self.max_length = max_length
        self.steps = 0
        self._start = state.position
        self._position = torch.tensor([state.position], device=device)
        self._token = torch.zeros(self.batch, dtype=torch.long, device=device)
        layers = [self._copy_layer(index, layer, device) for index, layer in enumerate(state.layers)]
        self._live = DecodeState(layers, self._position)
        self._buffers = [t for layer in layers for part in _ela_parts(layer) for t in (part.S, part.C, part.shift)]
        run: Callable[[Tensor], Tensor] = self._run_step
        if compile:
            backend = "inductor" if compile is True else compile
            run = torch.compile(self._run_step, fullgraph=True, dynamic=False, backend=backend)
        self._run = run
        self._graph: torch.cuda.CUDAGraph | None = None
        self._logits: Tensor | None = None
        if cuda_graph:
            self._capture(device)

    @torch.no_grad()
    def step(self, token: Tensor) -> Tensor:
        """Consume one token per sequence and return the next-token logits.

        Args:
            token: ``(B,)`` the newest token of each sequence (B as in the state).

        Returns:
            ``(B, vocab)`` logits (a new tensor).

        Raises:
            ValueError: a token of the wrong shape, or a softmax model's KV cache is full.
        """
        if token.shape != (self.batch,):
            raise ValueError(f"token must have shape ({self.batch},), got {tuple(token.shape)}")
        if self._softmax and self._start + self.steps >= self.max_length:
            raise ValueError(f"the KV cache holds max_length={self.max_length} tokens and is full")
        self._token.copy_(token)
        if self._graph is not None:
            self._graph.replay()
            logits = self._logits.clone()
        else:
            with settings.override(fixed_shapes=True):
                logits = self._run(self._token)
        self.steps += 1
        return logits

    def rewind(self, steps: int) -> None:
        """Take back the last ``steps`` tokens (a KV cache: e.g. rejected draft tokens).

        Raises:
            ValueError: a model with ELA states (ELA attention or a Memory Lobe: a state is a sum over
                the tokens and cannot forget one), or more steps than were taken.
        """
        if self._buffers:
            what = "Memory Lobe's " if self._softmax else ""
            raise ValueError(f"the {what}ELA state sums every token it has seen and cannot take one back")
        if not 0 <= steps <= self.steps:
            raise ValueError(f"can rewind 0..{self.steps} steps, not {steps}")
        self.steps -= steps
        self._position.sub_(steps)

    @property
    def state(self) -> DecodeState:
        """A copy of the current state, usable with ``model.step``/``model.prefill`` (later steps
        of this decoder do not change it)."""
        position = self._start + self.steps
        # (the live ELA buffers' token counts stay at their start values: see _own_ela)
        copy = lambda part: _own_ela(part, part.S.device, part.tokens + self.steps)  # noqa: E731
        layers = []
        for layer in self._live.layers:
            attention, lobe = layer.attention, layer.lobe
            attention = attention.to_cache(position) if isinstance(attention, FixedKVCache) else copy(attention)
            layers.append(LayerState(attention, None if lobe is None else copy(lobe)))
        return DecodeState(layers, position)

    def _run_step(self, token: Tensor) -> Tensor:
        """The step itself: fixed shapes, buffers updated in place, no host synchronisation."""
        logits, _, fresh = self.model._run(token.view(-1, 1), self._live, use_cache=True)
        new = [t for layer in fresh.layers for part in _ela_parts(layer) for t in (part.S, part.C, part.shift)]
        for buffer, value in zip(self._buffers, new):
            buffer.copy_(value)
        self._position.add_(1)
        return logits[:, -1]

    def _capture(self, device: torch.device) -> None:
        """Warm up on a side stream, undo the warm-up's steps, capture one step."""
        saved = [t.clone() for t in (*self._buffers, self._position)]  # a KV cache's writes are masked again
        side = torch.cuda.Stream(device)
        side.wait_stream(torch.cuda.current_stream(device))
        # a KV cache takes at most what is left of it (a write past its end would fault on the GPU)
        warmup = WARMUP_STEPS if not self._softmax else min(WARMUP_STEPS, self.max_length - self._start)
        with torch.no_grad(), settings.override(fixed_shapes=True), torch.cuda.stream(side):
            for _ in range(warmup):
                self._run(self._token)
        torch.cuda.current_stream(device).wait_stream(side)
        for buffer, value in zip((*self._buffers, self._position), saved):
            buffer.copy_(value)
        graph = torch.cuda.CUDAGraph()
        # capture records only: the buffers stay as they are
        with torch.no_grad(), settings.override(fixed_shapes=True), torch.cuda.graph(graph):
            self._logits = self._run(self._token)
        self._graph = graph

    def _copy_layer(self, index: int, layer: LayerState, device: torch.device) -> LayerState:
        attention = layer.attention
        if self._softmax != isinstance(attention, KVCache) or not isinstance(attention, (ELAState, KVCache)):
            kind = "softmax" if self._softmax else "ela"
            raise ValueError(
                f"layer {index} of the state holds {type(attention).__name__}, not the state of attention={kind!r}"
            )
        if isinstance(attention, KVCache):
            if self._start != attention.length:
                raise ValueError(
                    f"layer {index}: the KV cache holds {attention.length} tokens, the state's position is "
                    f"{self._start}"
                )
            attention = FixedKVCache.from_cache(attention, self.max_length, self._position)
        else:
            attention = _own_ela(attention, device, attention.tokens)
        return LayerState(attention, None if layer.lobe is None else _own_ela(layer.lobe, device, layer.lobe.tokens))


def _batch_of(attention: ELAState | KVCache | None) -> int:
    if isinstance(attention, ELAState):
        return attention.S.shape[0]
    if isinstance(attention, KVCache):
        return attention.k.shape[0]
    raise ValueError("the state's first layer has no attention state; StaticDecoder continues model.prefill's state")


def _ela_parts(layer: LayerState) -> list[ELAState]:
    return [part for part in (layer.attention, layer.lobe) if isinstance(part, ELAState)]


def _own_ela(part: ELAState, device: torch.device, tokens: int) -> ELAState:
    """A contiguous copy of ``part`` on ``device`` counting ``tokens``. The live buffers keep their
    start count (StaticDecoder counts steps in Python), so a compiled step sees constants, not a
    number that changes every step and would force a recompile."""
    copy = lambda t: t.detach().to(device).clone(memory_format=torch.contiguous_format)  # noqa: E731
    return ELAState(copy(part.S), copy(part.C), copy(part.shift), part.kernel, tokens)
