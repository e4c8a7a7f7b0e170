"""How ELA appears in an exported ONNX graph: standard ops (default) or one custom ``yolo_lat::ELA`` node.

``ela_attention`` consults :func:`custom_node_active` while ``torch.onnx.export`` traces it. With
the setting ``ela_op="custom"`` (``with yolo_lat.settings.override(ela_op="custom"):``) every
bidirectional ELA call is emitted as a single node ``ELA`` in domain ``yolo_lat`` with attributes
``kernel`` (str), ``heads`` (int), ``scale`` (float), ``causal`` (int, always 0), plus
``plugin_namespace="yolo_lat"`` and ``plugin_version="1"``, which TensorRT's ONNX parser uses to
find the ``yolo_lat::ELA`` plugin. Inputs ``q, k`` are ``(B, H, L, D)`` and ``v`` is
``(B, H, L, Dv)``; the output is ``(B, H, Lq, Dv)``, all in the model's float type.
:mod:`yolo_lat.export.onnx_functions` then adds the same computation as a model-local
ONNX function so that runtimes without the plugin still run the graph.
"""

from __future__ import annotations

import contextlib

import torch
from torch import Tensor

from yolo_lat import settings

from . import forms
from .kernels import get_kernel

ONNX_DOMAIN = "yolo_lat"
ONNX_OP = "ELA"

__all__ = ["ONNX_DOMAIN", "ONNX_OP", "custom_node_active", "emit_custom_node"]


def custom_node_active() -> bool:
    """True while ``torch.onnx.export`` traces with the setting ``ela_op="custom"``."""
    return settings.get().ela_op == "custom" and torch.onnx.is_in_onnx_export()


class _ELANode(torch.autograd.Function):
    """Computes ELA normally; exports as one ``yolo_lat::ELA`` node."""

    @staticmethod
    def forward(ctx, q: Tensor, k: Tensor, v: Tensor, kernel: str, heads: int, scale: float) -> Tensor:
        return forms.bidirectional(q, k, v, get_kernel(kernel), None, scale)[0]

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
