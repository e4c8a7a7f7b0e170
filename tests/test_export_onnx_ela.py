"""ELA in ONNX: standard ops vs one custom yolo_lat::ELA node with a model-local function."""

import io

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from yolo_lat import settings
from yolo_lat.ela import ela_attention, list_kernels
from yolo_lat.export import attach_ela_functions, ela_nodes


class FeatureMapAttention(torch.nn.Module):
    """ELA over a (B, 3*C, H, W) map split into q, k, v as the vision blocks do (views, no copies)."""

    def __init__(self, kernel: str = "hadamard_exp", heads: int = 2, head_dim: int = 2):
        super().__init__()
        self.kernel, self.heads, self.scale = kernel, heads, head_dim**-0.5

    def forward(self, x):
        b, c, h, w = x.shape
        q, k, v = x.view(b, self.heads, c // self.heads, h * w).split(c // self.heads // 3, dim=2)
        t = lambda z: z.transpose(-1, -2)  # noqa: E731
        y = ela_attention(t(q), t(k), t(v), kernel=self.kernel, scale=self.scale)
        return y.transpose(-1, -2).reshape(b, c // 3, h, w)


def export(module, x, mode):
    buffer = io.BytesIO()
    with settings.override(ela_op=mode):
        torch.onnx.export(
            module,
            (x,),
            buffer,
            opset_version=17,
            dynamo=False,
            input_names=["x"],
            output_names=["y"],
            dynamic_axes={"x": {0: "b", 2: "h", 3: "w"}},
        )
    model = onnx.load_from_string(buffer.getvalue())
    if mode == "custom":
        attach_ela_functions(model)
        onnx.checker.check_model(model)
    return model


def run(model, x):
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x.numpy()})[0]


@pytest.mark.parametrize("kernel", ["hadamard_exp", "sum_sq_euclid", "sub_sq_euclid", "modulated_dot"])
def test_standard_and_custom_forms_match_pytorch(kernel):
    module = FeatureMapAttention(kernel)
    standard = export(module, torch.randn(1, 12, 6, 6), "standard")
    custom = export(module, torch.randn(1, 12, 6, 6), "custom")
    assert not ela_nodes(standard)
    (node,) = ela_nodes(custom)
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    assert attrs["kernel"] == kernel.encode() and attrs["heads"] == 2 and attrs["causal"] == 0
    assert attrs["plugin_namespace"] == b"yolo_lat" and abs(attrs["scale"] - 2**-0.5) < 1e-7
    assert [f.name for f in custom.functions] == ["ELA"] and custom.functions[0].domain == "yolo_lat"
    x = torch.randn(2, 12, 9, 7)  # other batch and size than traced: dynamic axes
    reference = module(x.double()).numpy()
    for model in (standard, custom):
        out = run(model, x)
        # measured: max abs error 6e-8..1.7e-7 (fp32 vs float64 reference)
        assert np.abs(out - reference).max() < 1e-5


def test_fp16_standard_form_large_magnitudes_stay_finite():
    """An fp16 graph with |q|, |k| up to 50: exp is shifted and ELA runs in fp32 inside the graph."""
    module = FeatureMapAttention("hadamard_exp")
    model = export(module, torch.randn(1, 12, 6, 6, dtype=torch.float16), "standard")
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT16
    x = (torch.rand(1, 12, 16, 16) * 100 - 50).half()
    out = run(model, x)
    assert out.dtype == np.float16 and np.isfinite(out).all()
    reference = module(x.double()).numpy()
    # measured: relative error <= 2.8e-4 over 5 seeds (fp16 output rounding)
    assert np.linalg.norm(out.astype(np.float64) - reference) / np.linalg.norm(reference) < 2e-3


def test_custom_form_fp16_function_runs():
    module = FeatureMapAttention("hadamard_exp")
    model = export(module, torch.randn(1, 12, 6, 6, dtype=torch.float16), "custom")
    x = (torch.rand(1, 12, 8, 8) * 100 - 50).half()
    out = run(model, x)
    assert np.isfinite(out).all()
    reference = module(x.double()).numpy()
    assert np.linalg.norm(out.astype(np.float64) - reference) / np.linalg.norm(reference) < 2e-3


def test_custom_form_rejects_mixed_kernels_and_causal():
    class Mixed(torch.nn.Module):
        def forward(self, x):
            a = FeatureMapAttention("hadamard_exp")(x)
            return a + FeatureMapAttention("sum_sq_euclid")(x)

    with pytest.raises(ValueError, match="one kernel"):
        export(Mixed(), torch.randn(1, 12, 4, 4), "custom")

    class Causal(torch.nn.Module):
        def forward(self, q):
            return ela_attention(q, q, q, causal=True)

    with pytest.raises(ValueError, match="bidirectional, unmasked ELA only"), settings.override(ela_op="custom"):
        torch.onnx.export(Causal(), (torch.randn(1, 2, 8, 4),), io.BytesIO(), opset_version=17, dynamo=False)


def test_export_mode_is_scoped_and_validated():
    with pytest.raises(ValueError, match="ela_op must be one of standard, custom"), settings.override(ela_op="fancy"):
        pass
    q = torch.randn(1, 2, 5, 4)
    with settings.override(ela_op="custom"):  # outside an export, the mode changes nothing
        assert torch.equal(ela_attention(q, q, q), ela_attention(q, q, q))
    assert set(list_kernels()) >= {"hadamard_exp"}
