"""The ``yolo_lat::ELA`` TensorRT plugin (TensorRT >= 10.7 Python "quickly deployable plugin").

The custom ONNX form (``ela_op=custom``) carries one ``ELA`` node per attention, with
``plugin_namespace="yolo_lat"``; TensorRT's ONNX parser (>= 10.7) prefers a registered plugin over
the node's model-local function. :func:`register_ela_plugin` must run in the process before an
ONNX model is parsed or an engine holding the plugin is deserialised; :func:`build_engine` and
YOLOLAT's engine loading call it.

The plugin's implementation runs ELA through ``yolo_lat.ela.ela_attention`` on TensorRT's CUDA
stream, so it uses the fused ``cuda_ops`` kernels when they load (and plain PyTorch otherwise). It
therefore needs PyTorch in the process that runs the engine; an engine without the plugin
(``ela_op=standard``) needs nothing but TensorRT.

Shapes: ``q, k`` are ``(B, H, L, D)``, ``v`` ``(B, H, L, Dv)``; the output is ``(B, H, Lq, Dv)``
in ``v``'s type.
"""

from __future__ import annotations

from types import ModuleType

from yolo_lat.ela.onnx import ONNX_DOMAIN, ONNX_OP

PLUGIN_ID = f"{ONNX_DOMAIN}::{ONNX_OP}"
_REGISTERED: set[int] = set()

__all__ = ["PLUGIN_ID", "register_ela_plugin"]


def _plugin_module(trt: ModuleType | None) -> ModuleType:
    if trt is None:
        try:
            import tensorrt as trt
        except ImportError as err:
            raise RuntimeError(
                "TensorRT is not installed: the yolo_lat::ELA plugin needs `pip install tensorrt` (>= 10.7) "
                "on a machine with an NVIDIA GPU"
            ) from err
    plugin = getattr(trt, "plugin", None)
    if plugin is None:
        try:
            import importlib

            plugin = importlib.import_module(f"{trt.__name__}.plugin")
        except ImportError as err:
            raise RuntimeError(
                f"TensorRT {getattr(trt, '__version__', '?')} has no Python plugin API (tensorrt.plugin); "
                "use TensorRT >= 10.7 or export with ela_op=standard"
            ) from err
    return plugin


def register_ela_plugin(trt: ModuleType | None = None) -> str:
    """Register the ``yolo_lat::ELA`` plugin with TensorRT's plugin registry (once per process).

    Args:
        trt: the ``tensorrt`` module (injected by tests); imported when ``None``.

    Returns:
        The plugin id, ``"yolo_lat::ELA"``.

    Raises:
        RuntimeError: TensorRT, or its Python plugin API, is not available.
    """
    trtp = _plugin_module(trt)
    if id(trtp) in _REGISTERED:
        return PLUGIN_ID

    @trtp.register(PLUGIN_ID)
    def ela_descriptor(
        q: trtp.TensorDesc,
        k: trtp.TensorDesc,
        v: trtp.TensorDesc,
        kernel: str,
        heads: int,
        scale: float,
        causal: int,
    ) -> trtp.TensorDesc:
        """Output: q's batch, heads and length, v's value dim and type."""
        out = v.like()
        out.shape_expr[2] = q.shape_expr[2]
        return out

    @trtp.impl(PLUGIN_ID)
    def ela_implementation(q, k, v, kernel: str, heads: int, scale: float, causal: int, outputs, stream: int) -> None:
        """Run ELA on TensorRT's stream, writing into the output buffer TensorRT owns."""
        import torch

        from yolo_lat.ela import ela_attention

        if causal:
            raise ValueError("the yolo_lat::ELA plugin implements bidirectional ELA only (causal=0)")
        tq, tk, tv = (torch.as_tensor(t, device="cuda") for t in (q, k, v))
        out = torch.as_tensor(outputs[0], device="cuda")
        with torch.cuda.stream(torch.cuda.ExternalStream(stream)):
            out.copy_(ela_attention(tq, tk, tv, kernel=kernel, scale=scale))

    _REGISTERED.add(id(trtp))
    return PLUGIN_ID
