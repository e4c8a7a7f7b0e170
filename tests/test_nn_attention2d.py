"""ELAAttention2d: exact against an explicit pixel-by-pixel reference, global, exportable."""

import io

import onnx
import onnxruntime
import pytest
import torch
from conftest import rel_err

from yolo_lat.ela import list_kernels, naive_attention
from yolo_lat.nn import ELAAttention2d


def _reference(module: ELAAttention2d, x: torch.Tensor) -> torch.Tensor:
    """proj(explicit L x L kernel attention + pe(v)), the attention from the core's naive reference."""
    batch, channels, height, width = x.shape
    qkv = module.qkv(x).reshape(batch, module.num_heads, 2 * module.key_dim + module.head_dim, height * width)
    q, k, v = (t.transpose(-1, -2) for t in qkv.split([module.key_dim, module.key_dim, module.head_dim], 2))
    y = naive_attention(q, k, v, kernel=module.kernel, scale=module.scale)
    y = y.transpose(-1, -2).reshape(batch, channels, height, width)
    return module.proj(y + module.pe(v.transpose(-1, -2).reshape(batch, channels, height, width)))


def _randomize_batchnorm(module: torch.nn.Module) -> None:
    for bn in module.modules():
        if isinstance(bn, torch.nn.BatchNorm2d):
            bn.running_mean.uniform_(-0.5, 0.5)
            bn.running_var.uniform_(0.5, 2.0)
            bn.weight.data.uniform_(0.5, 1.5)
            bn.bias.data.uniform_(-0.5, 0.5)


@pytest.mark.parametrize("kernel", list_kernels())
@pytest.mark.parametrize(("heads", "qk_ratio", "pe_kernel"), [(1, 1.0, 7), (3, 0.5, 3)])
def test_matches_explicit_attention(kernel, heads, qk_ratio, pe_kernel):
    module = ELAAttention2d(48, heads, qk_ratio=qk_ratio, pe_kernel=pe_kernel, kernel=kernel).double().eval()
    _randomize_batchnorm(module)
    x = torch.randn(2, 48, 7, 9, dtype=torch.float64)  # odd sizes: 63 pixels
    out = module(x)
    assert out.shape == x.shape
    # measured rel. error in float64: 2e-16..2.7e-16 over kernels and head layouts
    assert rel_err(out, _reference(module, x)) < 1e-12


def test_hadamard_exp_with_temperature_by_hand():
    """The default temperature is key_dim**-0.5 on q and k; weights are sum_d exp(s q_d) exp(s k_d)."""
    module = ELAAttention2d(32, 2).double().eval()
    assert module.scale == pytest.approx(16**-0.5)
    x = torch.randn(1, 32, 5, 6, dtype=torch.float64)
    qkv = module.qkv(x).reshape(1, 2, 48, 30)
    q, k, v = qkv.split([16, 16, 16], 2)  # (1, heads, dim, N)
    weights = torch.einsum("bhdi,bhdj->bhij", (q * module.scale).exp(), (k * module.scale).exp())
    y = torch.einsum("bhij,bhdj->bhdi", weights, v) / weights.sum(-1).unsqueeze(2)
    expected = module.proj(y.reshape(1, 32, 5, 6) + module.pe(v.reshape(1, 32, 5, 6)))
    assert rel_err(module(x), expected) < 1e-12  # measured 2e-16


def test_every_pixel_sees_every_pixel():
    """Changing one corner pixel changes the opposite corner: attention is global, not windowed."""
    module = ELAAttention2d(32, 1, pe_kernel=3).eval()
    x = torch.randn(1, 32, 24, 24)
    y = x.clone()
    y[..., 0, 0] += 3.0
    with torch.no_grad():
        change = (module(y) - module(x))[..., -1, -1].abs().max().item()
    assert change > 1e-4  # measured 5e-3; exactly 0 for a local (conv-only) layer


def test_gradients_flow_to_every_parameter():
    module = ELAAttention2d(64, 2, kernel="sum_sq_euclid")
    module(torch.randn(2, 64, 8, 8)).square().mean().backward()
    for name, parameter in module.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name


def test_half_precision_input_keeps_dtype_and_accuracy():
    module = ELAAttention2d(32, 1).eval()
    x = torch.randn(1, 32, 16, 16)
    with torch.no_grad():
        full = module(x)
        half = module.to(torch.bfloat16)(x.to(torch.bfloat16))
    assert half.dtype == torch.bfloat16
    assert rel_err(half.float(), full) < 3e-2  # measured 4.7e-3 (bf16 has 8 mantissa bits)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"dim": 30, "num_heads": 4}, "multiple of num_heads"),
        ({"dim": 32, "pe_kernel": 4}, "odd"),
        ({"dim": 32, "kernel": "softmax"}, "softmax"),
    ],
)
def test_bad_arguments_fail_at_construction(kwargs, message):
    with pytest.raises((ValueError, KeyError), match=message):
        ELAAttention2d(**kwargs)


def test_onnx_export_uses_standard_ops_and_matches():
    module = ELAAttention2d(32, 2).eval()
    x = torch.randn(1, 32, 12, 10)
    buffer = io.BytesIO()
    torch.onnx.export(
        module, (x,), buffer, opset_version=17, dynamo=False, input_names=["x"], dynamic_axes={"x": {2: "h", 3: "w"}}
    )
    graph = onnx.load_from_string(buffer.getvalue())
    assert {node.domain for node in graph.graph.node} <= {"", "ai.onnx"}  # no custom ops
    session = onnxruntime.InferenceSession(buffer.getvalue(), providers=["CPUExecutionProvider"])
    other = torch.randn(1, 32, 20, 16)  # another size: the graph is not specialised to the traced one
    for sample in (x, other):
        (got,) = session.run(None, {"x": sample.numpy()})
        with torch.no_grad():
            assert rel_err(torch.from_numpy(got), module(sample)) < 1e-5  # measured ~3e-7
