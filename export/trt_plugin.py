"""The ``yolo_lat::ELA`` TensorRT plugin (TensorRT >= 10.7 Python "quickly deployable plugin").

The custom ONNX form (``ela_op=custom``) carries one ``ELA`` node per attention, with
``plugin_namespace="yolo_lat"``; TensorRT's ONNX parser (>= 10.7) prefers a registered plugin over
the node's model-local function. :func:`register_ela_plugin` must run in the process before an
ONNX model is parsed or an engine holding the plugin is deserialised; :func:`build_engine` and
YOLOLAT's engine loading call it.

Two implementations are registered:

* ahead of time (``tensorrt.plugin.aot_impl``, TensorRT >= 10.8; the default of
  :func:`~yolo_lat.export.build_engine`, ``plugin="aot"``): at build time the single-launch
  Triton kernel of :mod:`yolo_lat.cuda_ops.aot` is compiled to PTX for the builder's GPU and
  embedded in the engine, which then runs with TensorRT alone (no Python, no PyTorch; C++
  deployment works). The ONNX node gets ``aot=1`` before parsing, which selects this path.
* just in time (``tensorrt.plugin.impl``, ``plugin="jit"``): TensorRT calls back into Python,
  which runs ``yolo_lat.ela.ela_attention`` on TensorRT's CUDA stream (the fused three-launch
  kernels when they load, plain PyTorch otherwise); the engine needs this package at run time.

An engine without the plugin (``ela_op=standard``) needs nothing but TensorRT.

Shapes: ``q, k`` are ``(B, H, L, D)``, ``v`` ``(B, H, L, Dv)``; the output is ``(B, H, Lq, Dv)``
in ``v``'s type.
"""

from __future__ import annotations

from types import ModuleType

from yolo_lat.ela import ela_attention
from yolo_lat.ela.onnx import ONNX_DOMAIN, ONNX_OP

PLUGIN_ID = f"{ONNX_DOMAIN}::{ONNX_OP}"
_REGISTERED: set[int] = set()

__all__ = ["PLUGIN_ID", "aot_launch", "register_ela_plugin", "supports_aot"]

#: TensorRT data types (``trt.DataType`` member names) that the AOT kernel is built for.
_AOT_DTYPES = {"FLOAT": "fp32", "HALF": "fp16", "BF16": "bf16"}


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

        if causal:
            raise ValueError("the yolo_lat::ELA plugin implements bidirectional ELA only (causal=0)")
        tq, tk, tv = (torch.as_tensor(t, device="cuda") for t in (q, k, v))
        out = torch.as_tensor(outputs[0], device="cuda")
        with torch.cuda.stream(torch.cuda.ExternalStream(stream)):
            out.copy_(ela_attention(tq, tk, tv, kernel=kernel, scale=scale))

    if supports_aot(trtp):

        @trtp.aot_impl(PLUGIN_ID)
        def ela_aot_implementation(q, k, v, kernel: str, heads: int, scale: float, causal: int, outputs, tactic):
            """PTX of the single-launch kernel and its launch for these shapes (see :func:`aot_launch`)."""
            return aot_launch(trtp, q, k, v, kernel, scale, causal)

    _REGISTERED.add(id(trtp))
    return PLUGIN_ID


def supports_aot(trt_or_plugin: ModuleType) -> bool:
    """Whether a ``tensorrt`` (or ``tensorrt.plugin``) module has the AOT plugin API (>= 10.8)."""
    plugin = getattr(trt_or_plugin, "plugin", trt_or_plugin)
    return callable(getattr(plugin, "aot_impl", None))


def _constant(expr, what: str) -> int:
    if not getattr(expr, "is_constant", False):
        raise ValueError(f"the yolo_lat::ELA plugin needs a build-time constant {what}")
    return int(expr.constant_value())


def _target_arch() -> int:
    """Compute capability of the GPU building the engine (Hopper when it cannot be read)."""
    try:
        import torch

        if torch.cuda.is_available():
            major, minor = torch.cuda.get_device_capability()
            return 10 * major + minor
    except ImportError:
        pass
    return 90


def aot_launch(trtp: ModuleType, q, k, v, kernel: str, scale: float, causal: int, arch: int | None = None):
    """What ``aot_impl`` returns for one ``yolo_lat::ELA`` node.

    Args:
        trtp: the ``tensorrt.plugin`` module.
        q, k, v: ``TensorDesc`` of ``(B, H, Lq, D)``, ``(B, H, Lk, D)``, ``(B, H, Lk, Dv)``; D and Dv
            must be build-time constants, B and the lengths may be dynamic.
        kernel, scale, causal: the node's attributes (bidirectional only: ``causal=0``).
        arch: compute capability to compile for (default: the building GPU's).

    Returns:
        ``(kernel name, PTX, KernelLaunchParams, SymIntExprs)``: grid ``(ceil(Lq / 64), B * H)``,
        ``32 * warps`` threads, the kernel's shared memory, and the int32 arguments ``Lq, Lk``
        that sit between the input pointers and the output pointer.

    Raises:
        ValueError: causal attention, a kernel other than the built-in ones, an unsupported type or
            a head dimension that is not a constant 16, 32, 64 or 128.
    """
    # here, not at the top: yolo_lat.cuda_ops needs Triton, which is optional
    from yolo_lat.cuda_ops.aot import BLOCK_ROWS, compile_for_tensorrt
    from yolo_lat.cuda_ops.ops import KERNEL_IDS

    if causal:
        raise ValueError("the yolo_lat::ELA plugin implements bidirectional ELA only (causal=0)")
    if kernel not in KERNEL_IDS:
        raise ValueError(f"kernel {kernel!r}: the TensorRT plugin has {', '.join(KERNEL_IDS)}")
    dtype_name = str(getattr(q.dtype, "name", q.dtype)).rsplit(".", 1)[-1].upper()  # trt.DataType.HALF
    if dtype_name not in _AOT_DTYPES:
        raise ValueError(f"the yolo_lat::ELA plugin runs float32, float16 or bfloat16 tensors, not {q.dtype}")
    head_dim = _constant(q.shape_expr[3], "head dim (q's last dimension)")
    value_dim = _constant(v.shape_expr[3], "value dim (v's last dimension)")
    compiled = compile_for_tensorrt(
        KERNEL_IDS[kernel], _AOT_DTYPES[dtype_name], head_dim, value_dim, float(scale), arch or _target_arch()
    )
    launch = trtp.KernelLaunchParams()
    launch.grid_x = trtp.cdiv(q.shape_expr[2], BLOCK_ROWS)
    launch.grid_y = q.shape_expr[0] * q.shape_expr[1]
    launch.block_x = compiled.num_warps * 32
    launch.shared_mem = compiled.shared_bytes
    scalars = trtp.SymIntExprs.from_tuple([trtp.SymInt32(q.shape_expr[2]), trtp.SymInt32(k.shape_expr[2])])
    return compiled.name.encode(), compiled.ptx.encode(), launch, scalars
