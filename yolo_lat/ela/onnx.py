"""How ELA appears in an exported ONNX graph: standard ops (default) or one custom ``yolo_lat::ELA`` node.

``ela_attention`` consults :func:`custom_node_active` while ``torch.onnx.export`` traces it. Inside
``with onnx_export_mode("custom"):`` every bidirectional ELA call is emitted as a single node
``ELA`` in domain ``yolo_lat`` with attributes ``kernel`` (str), ``heads`` (int), ``scale`` (float),
``causal`` (int, always 0), plus ``plugin_namespace="yolo_lat"`` and ``plugin_version="1"``, which
TensorRT's ONNX parser uses to find the ``yolo_lat::ELA`` plugin. Inputs ``q, k`` are
``(B, H, L, D)`` and ``v`` is ``(B, H, L, Dv)``; the output is ``(B, H, Lq, Dv)``, all in the model's
float type. :mod:`yolo_lat.export.onnx_functions` then adds the same computation as a model-local
ONNX function so that runtimes without the plugin still run the graph.

The mode is a context variable scoped to one export call, not a global switch on the layers.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar

import torch
from torch import Tensor

ONNX_DOMAIN = "yolo_lat"
ONNX_OP = "ELA"
ONNX_OPS = ("standard", "custom")
_MODE: ContextVar[str] = ContextVar("yolo_lat_ela_onnx_op", default="standard")

__all__ = ["ONNX_DOMAIN", "ONNX_OP", "ONNX_OPS", "custom_node_active", "emit_custom_node", "onnx_export_mode"]


@contextlib.contextmanager
def onnx_export_mode(op: str) -> Iterator[None]:
    """Choose how ELA is written by ``torch.onnx.export`` inside the block: ``standard`` or ``custom``.

    Example:
        >>> with onnx_export_mode("custom"):
        ...     pass  # torch.onnx.export(...) here writes yolo_lat::ELA nodes
    """
    if op not in ONNX_OPS:
        raise ValueError(f"ela_op must be one of {', '.join(ONNX_OPS)}; got {op!r}")
    token = _MODE.set(op)
    try:
        yield
    finally:
        _MODE.reset(token)


def custom_node_active() -> bool:
    """True while an ONNX export traces the model inside ``onnx_export_mode("custom")``."""
    return _MODE.get() == "custom" and torch.onnx.is_in_onnx_export()


class _ELANode(torch.autograd.Function):
    """Computes ELA normally; exports as one ``yolo_lat::ELA`` node."""

    @staticmethod
    def forward(ctx, q: Tensor, k: Tensor, v: Tensor, kernel: str, heads: int, scale: float) -> Tensor:
        from .attention import ela_attention

        token = _MODE.set("standard")  # compute the traced value with the plain path
        try:
            return ela_attention(q, k, v, kernel=kernel, scale=scale)
        finally:
            _MODE.reset(token)

    @staticmethod
    def symbolic(g, q, k, v, kernel: str, heads: int, scale: float):
        out = g.op(
            f"{ONNX_DOMAIN}::{ONNX_OP}",
            q,
            k,
            v,
            kernel_s=kernel,
            heads_i=heads,
            scale_f=scale,
            causal_i=0,
            plugin_namespace_s=ONNX_DOMAIN,
            plugin_version_s="1",
        )
        with contextlib.suppress(RuntimeError, TypeError, AttributeError):  # shapes unknown: leave untyped
            out.setType(v.type().with_sizes(q.type().varyingSizes()[:-1] + v.type().varyingSizes()[-1:]))
        return out


def emit_custom_node(q: Tensor, k: Tensor, v: Tensor, kernel: str, scale: float | None) -> Tensor:
    """The ``yolo_lat::ELA`` node for a bidirectional, unmasked ELA call during export."""
    return _ELANode.apply(q, k, v, kernel, int(q.shape[1]), 1.0 if scale is None else float(scale))
