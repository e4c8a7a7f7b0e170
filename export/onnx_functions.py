"""Model-local ONNX functions for ``yolo_lat::ELA`` nodes, so any ONNX runtime can run the custom form.

The function body is not hand-written: it is the ONNX graph that ``torch.onnx.export`` produces for
the standard-op ELA (the same code path as ``ela_op=standard``), traced once per (kernel, float
type), with the node's ``scale`` attribute applied to q and k through an attribute reference.
TensorRT >= 10.7 prefers a registered plugin of the same name over the local function.
"""

from __future__ import annotations

import io

import onnx
import torch
from onnx import helper, numpy_helper

from yolo_lat.ela import ela_attention
from yolo_lat.ela.onnx import ONNX_DOMAIN, ONNX_OP

__all__ = ["attach_ela_functions", "ela_nodes"]

_FLOAT_TYPES = {
    onnx.TensorProto.FLOAT: torch.float32,
    onnx.TensorProto.FLOAT16: torch.float16,
    onnx.TensorProto.BFLOAT16: torch.bfloat16,
}


def ela_nodes(model: onnx.ModelProto) -> list[onnx.NodeProto]:
    """All ``yolo_lat::ELA`` nodes of the main graph."""
    return [n for n in model.graph.node if n.domain == ONNX_DOMAIN and n.op_type == ONNX_OP]


def _attribute(node: onnx.NodeProto, name: str):
    for attr in node.attribute:
        if attr.name == name:
            return helper.get_attribute_value(attr)
    raise ValueError(f"ELA node {node.name!r} has no attribute {name!r}")


def _elem_type(model: onnx.ModelProto, tensor_name: str) -> int:
    typed = list(model.graph.value_info) + list(model.graph.input) + list(model.graph.output)
    for info in typed:
        if info.name == tensor_name and info.type.tensor_type.elem_type:
            return info.type.tensor_type.elem_type
    inferred = onnx.shape_inference.infer_shapes(model)
    for info in list(inferred.graph.value_info) + list(inferred.graph.output):
        if info.name == tensor_name and info.type.tensor_type.elem_type:
            return info.type.tensor_type.elem_type
    return onnx.TensorProto.FLOAT


class _Body(torch.nn.Module):
    def __init__(self, kernel: str):
        super().__init__()
        self.kernel = kernel

    def forward(self, q, k, v):
        return ela_attention(q, k, v, kernel=self.kernel)


def _traced_body(kernel: str, dtype: torch.dtype, opset: int) -> onnx.GraphProto:
    q, k, v = (torch.randn(1, 2, 5, 4, dtype=dtype) for _ in range(3))
    buffer = io.BytesIO()
    axes = {0: "batch", 1: "heads", 2: "length", 3: "dim"}
    torch.onnx.export(
        _Body(kernel),
        (q, k, v),
        buffer,
        opset_version=opset,
        dynamo=False,
        input_names=["q", "k", "v"],
        output_names=["y"],
        dynamic_axes={"q": axes, "k": axes, "v": axes, "y": axes},
    )
    return onnx.load_from_string(buffer.getvalue()).graph


def _function(kernel: str, dtype: torch.dtype, opset: int) -> onnx.FunctionProto:
    graph = _traced_body(kernel, dtype, opset)
    prefix = "ela_"
    rename = {i.name: f"{prefix}{i.name}" for i in graph.initializer}
    nodes = []
    for init in graph.initializer:  # functions have no initializers: turn them into Constant nodes
        nodes.append(
            helper.make_node(
                "Constant",
                [],
                [rename[init.name]],
                value=numpy_helper.from_array(numpy_helper.to_array(init), init.name),
            )
        )
    # scale from the node attribute, applied to q and k before the traced body
    scale_attr = onnx.AttributeProto()
    scale_attr.name, scale_attr.ref_attr_name, scale_attr.type = "value_float", "scale", onnx.AttributeProto.FLOAT
    scale_node = helper.make_node("Constant", [], ["ela_scale"])
    scale_node.attribute.append(scale_attr)
    nodes += [
        scale_node,
        helper.make_node("CastLike", ["ela_scale", "q"], ["ela_scale_typed"]),
        helper.make_node("Mul", ["q", "ela_scale_typed"], ["ela_q"]),
        helper.make_node("Mul", ["k", "ela_scale_typed"], ["ela_k"]),
    ]
    inputs = {"q": "ela_q", "k": "ela_k", "v": "v"}
    for node in graph.node:
        copy = onnx.NodeProto()
        copy.CopyFrom(node)
        copy.input[:] = [inputs.get(x, rename.get(x, x)) for x in node.input]
        nodes.append(copy)
    return helper.make_function(
        ONNX_DOMAIN,
        ONNX_OP,
        inputs=["q", "k", "v"],
        outputs=[graph.output[0].name],
        nodes=nodes,
        opset_imports=[helper.make_opsetid("", opset)],
        attributes=["kernel", "heads", "scale", "causal", "plugin_namespace", "plugin_version"],
    )


def attach_ela_functions(model: onnx.ModelProto) -> onnx.ModelProto:
    """Add the model-local function for the ``yolo_lat::ELA`` nodes of ``model`` (in place; returned).

    Raises:
        ValueError: when the ELA nodes use more than one kernel or float type (one function per
            op name is all ONNX allows without overloads), or a node is causal.
    """
    nodes = ela_nodes(model)
    if not nodes:
        return model
    kernels = {_attribute(n, "kernel") for n in nodes}
    kernels = {k.decode() if isinstance(k, bytes) else k for k in kernels}
    if any(_attribute(n, "causal") for n in nodes):
        raise ValueError("causal ELA nodes cannot be exported with ela_op=custom")
    elem_types = {_elem_type(model, n.input[0]) for n in nodes}
    if len(kernels) != 1 or len(elem_types) != 1:
        raise ValueError(
            f"ela_op=custom needs every ELA block to use one kernel and float type; found kernels {sorted(kernels)}"
        )
    (kernel,), (elem_type,) = kernels, elem_types
    if elem_type not in _FLOAT_TYPES:
        raise ValueError(f"ELA node inputs must be float tensors, got ONNX type {elem_type}")
    opset = next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    del model.functions[:]
    model.functions.append(_function(kernel, _FLOAT_TYPES[elem_type], opset))
    if not any(o.domain == ONNX_DOMAIN for o in model.opset_import):
        model.opset_import.append(helper.make_opsetid(ONNX_DOMAIN, 1))
    return model
