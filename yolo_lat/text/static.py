"""Decoding with fixed buffers: one decode step as one compiled graph or one CUDA graph.

ELA's decode state has the same size after every token, so a decode step can keep it in buffers
allocated once and update them in place, with the position held in a tensor, and mix a MoE's
experts with fixed shapes (:func:`~yolo_lat.text.moe.fixed_shapes`: every expert on every token,
weighted by its routing score or 0, instead of gathering each expert's tokens with ``nonzero``).
The step then has fixed shapes, fixed addresses and no host synchronisation, which is what
``torch.compile`` (``fullgraph=True``: one graph, kernels fused across the whole model) and CUDA
graphs (the step captured once, then replayed with one launch) need. A KV cache grows with every
token: a softmax model would need one preallocated to the longest context, attended over in full
at every step; :class:`StaticDecoder` refuses softmax models.

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
from torch import Tensor

from yolo_lat.ela import ELAState

from .model import ELAGPT, DecodeState, LayerState
from .moe import fixed_shapes

__all__ = ["StaticDecoder"]

#: Steps run before a CUDA graph is captured (on a side stream, then undone): the first compiles
#: the Triton kernels (and, with ``compile``, the graph); the second runs with everything warm.
WARMUP_STEPS = 2


class StaticDecoder:
    """Continue a batch of sequences one token at a time from fixed, in-place-updated buffers.

    Args:
        model: an ``ELAGPT`` with ``attention="ela"`` (a KV cache grows, so softmax models cannot).
        state: the state to continue from, e.g. from ``model.prefill``; it is copied, not changed.
        compile: compile the step with ``torch.compile(fullgraph=True)``. ``True`` uses Inductor
            (which needs a C++ compiler on the CPU); any other true value is passed on as
            ``torch.compile``'s backend (a name such as ``"aot_eager"``, or a callable). The first
            step compiles (seconds); later steps reuse the graph.
        cuda_graph: capture the step into a CUDA graph once, then replay it (CUDA models only).

    Attributes:
        steps: tokens consumed so far by :meth:`step`.
        batch: number of sequences B.

    Raises:
        ValueError: softmax attention, a state that does not fit the model (layers, lobes), or
            ``cuda_graph=True`` on a model that is not on a CUDA device.

    Example:
        >>> decoder = StaticDecoder(model, state, compile=True)  # doctest: +SKIP
        >>> logits = decoder.step(token)  # doctest: +SKIP
    """

    def __init__(
        self,
        model: ELAGPT,
        state: DecodeState,
        *,
        compile: bool | str | Callable = False,
        cuda_graph: bool = False,
    ) -> None:
        if model.config.attention != "ela":
            raise ValueError(
                f"StaticDecoder needs attention='ela' (a fixed-size state); this model has "
                f"attention={model.config.attention!r}, whose KV cache grows with every token: use model.step"
            )
        if len(state.layers) != len(model.blocks):
            raise ValueError(f"state has {len(state.layers)} layers, the model {len(model.blocks)}")
        device = next(model.parameters()).device
        if cuda_graph and device.type != "cuda":
            raise ValueError(f"cuda_graph=True needs the model on a CUDA device; it is on {device}")
        for index, (block, layer) in enumerate(zip(model.blocks, state.layers)):
            if (block.lobe is None) != (layer.lobe is None):
                has = "has no" if layer.lobe is None else "has a"
                raise ValueError(f"layer {index} of the state {has} Memory Lobe state, unlike the model's layer")
        self.model = model
        self._layers = [_copy_layer(index, layer, device) for index, layer in enumerate(state.layers)]
        self._buffers = [t for layer in self._layers for part in layer for t in (part.S, part.C, part.shift)]
        self.batch = self._layers[0][0].S.shape[0]
        self._start = (state.position, [[part.tokens for part in _parts(layer)] for layer in state.layers])
        self.steps = 0
        self._position = torch.tensor([state.position], device=device)
        self._token = torch.zeros(self.batch, dtype=torch.long, device=device)
        self._live = DecodeState([LayerState(*parts) for parts in self._layers], self._position)
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
        """
        if token.shape != (self.batch,):
            raise ValueError(f"token must have shape ({self.batch},), got {tuple(token.shape)}")
        self._token.copy_(token)
        if self._graph is not None:
            self._graph.replay()
            logits = self._logits.clone()
        else:
            with fixed_shapes():
                logits = self._run(self._token)
        self.steps += 1
        return logits

    @property
    def state(self) -> DecodeState:
        """A copy of the current state, usable with ``model.step``/``model.prefill`` (later steps
        of this decoder do not change it)."""
        position, tokens = self._start
        layers = []
        for parts, counts in zip(self._layers, tokens):
            copies = [
                ELAState(p.S.clone(), p.C.clone(), p.shift.clone(), p.kernel, count + self.steps)
                for p, count in zip(parts, counts)
            ]
            layers.append(LayerState(*copies))
        return DecodeState(layers, position + self.steps)

    def _run_step(self, token: Tensor) -> Tensor:
        """The step itself: fixed shapes, buffers updated in place, no host synchronisation."""
        logits, _, fresh = self.model._run(token.view(-1, 1), self._live, use_cache=True)
        new = [t for layer in fresh.layers for part in _parts(layer) for t in (part.S, part.C, part.shift)]
        for buffer, value in zip(self._buffers, new):
            buffer.copy_(value)
        self._position.add_(1)
        return logits[:, -1]

    def _capture(self, device: torch.device) -> None:
        """Warm up on a side stream, undo the warm-up's steps, capture one step."""
        saved = [t.clone() for t in (*self._buffers, self._position)]
        side = torch.cuda.Stream(device)
        side.wait_stream(torch.cuda.current_stream(device))
        with torch.no_grad(), fixed_shapes(), torch.cuda.stream(side):
            for _ in range(WARMUP_STEPS):
                self._run(self._token)
        torch.cuda.current_stream(device).wait_stream(side)
        for buffer, value in zip((*self._buffers, self._position), saved):
            buffer.copy_(value)
        graph = torch.cuda.CUDAGraph()
        with torch.no_grad(), fixed_shapes(), torch.cuda.graph(graph):  # records only: buffers stay as they are
            self._logits = self._run(self._token)
        self._graph = graph


def _parts(layer: LayerState) -> list[ELAState]:
    return [part for part in (layer.attention, layer.lobe) if part is not None]


def _copy_layer(index: int, layer: LayerState, device: torch.device) -> list[ELAState]:
    parts = _parts(layer)
    if not parts or not all(isinstance(part, ELAState) for part in parts):
        kinds = ", ".join(type(part).__name__ for part in (layer.attention, layer.lobe))
        raise ValueError(f"layer {index} of the state holds {kinds}; StaticDecoder needs ELA states (model.prefill)")
    if layer.attention is None:
        raise ValueError(f"layer {index} of the state has no attention state")
    # the token counts of these buffers stay as they are (StaticDecoder counts steps in Python), so a
    # compiled step sees constants, not a number that changes every step and would force a recompile
    return [ELAState(*(_own_copy(t, device) for t in (p.S, p.C, p.shift)), p.kernel, p.tokens) for p in parts]


def _own_copy(t: Tensor, device: torch.device) -> Tensor:
    return t.detach().to(device).clone(memory_format=torch.contiguous_format)
