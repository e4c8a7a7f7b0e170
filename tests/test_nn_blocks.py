"""YOLO-LAT blocks: shapes, twins of A2C2f/C2PSA (same parameters, same weights), fuse, errors."""

import pytest
import torch
from conftest import rel_err
from ultralytics.nn.modules.block import C2PSA, A2C2f
from ultralytics.nn.modules.conv import Conv

from yolo_lat.nn import C2PSAELA, A2C2fELA, C2fELA, ELAAttention2d, ELABlock, SeparableConv


def _parameters(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _fuse(module: torch.nn.Module) -> torch.nn.Module:
    """Fold every Conv's BatchNorm, as DetectionModel.fuse() does."""
    from ultralytics.utils.torch_utils import fuse_conv_and_bn

    for layer in module.modules():
        if isinstance(layer, Conv) and hasattr(layer, "bn"):
            layer.conv = fuse_conv_and_bn(layer.conv, layer.bn)
            delattr(layer, "bn")
            layer.forward = layer.forward_fuse
    return module


def _warm_batchnorm(module: torch.nn.Module, x: torch.Tensor) -> None:
    """Give BatchNorm non-trivial running statistics, so fusing has something to fold."""
    for bn in module.modules():
        if isinstance(bn, torch.nn.BatchNorm2d):
            bn.momentum = 1.0
    module.train()
    with torch.no_grad():
        module(x)
    module.eval()


@pytest.mark.parametrize(
    ("build", "x_shape", "out_channels"),
    [
        (lambda: A2C2fELA(64, 128, 2, True, 4), (2, 64, 12, 10), 128),
        (lambda: A2C2fELA(128, 128, 1, True, 1, True, 1.2), (1, 128, 8, 8), 128),
        (lambda: A2C2fELA(64, 64, 1, False, -1), (1, 64, 8, 8), 64),
        (lambda: C2PSAELA(128, 128, 2), (2, 128, 10, 6), 128),
        (lambda: C2fELA(96, 64, 2), (2, 96, 16, 16), 64),
        (lambda: ELABlock(64, 2), (1, 64, 9, 7), 64),
        (lambda: SeparableConv(16, 32, 3, 2), (1, 16, 32, 32), 32),
    ],
    ids=["A2C2fELA", "A2C2fELA-residual", "A2C2fELA-no-attention", "C2PSAELA", "C2fELA", "ELABlock", "SeparableConv"],
)
def test_shapes_backward_and_fuse(build, x_shape, out_channels):
    block, x = build(), torch.randn(x_shape)
    out = block(x)
    stride = 2 if isinstance(block, SeparableConv) else 1
    assert out.shape == (x.shape[0], out_channels, x.shape[2] // stride, x.shape[3] // stride)
    out.square().mean().backward()
    for name, parameter in block.named_parameters():
        assert parameter.grad is not None and torch.isfinite(parameter.grad).all(), name
    _warm_batchnorm(block, x)
    with torch.no_grad():
        expected = block(x)
        fused = _fuse(block)(x)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in block.modules())
    assert rel_err(fused, expected) < 1e-4  # measured 1.3e-8..7.3e-7 in float32


def test_a2c2f_twin_has_a2c2f_parameters_and_loads_its_weights():
    """The ablation property: YOLO12 rows swap 1:1, weights transfer, only the attention differs."""
    for args in [(128, 128, 2, True, 4), (256, 256, 1, True, 1, True, 1.2), (192, 64, 1, False, -1)]:
        area_block, ela_block = A2C2f(*args), A2C2fELA(*args)
        assert _parameters(area_block) == _parameters(ela_block)
        assert ela_block.load_state_dict(area_block.state_dict()).missing_keys == []
    # with a2=False neither block attends: after loading, the outputs are identical
    area_block, ela_block = A2C2f(192, 64, 1, False, -1).eval(), A2C2fELA(192, 64, 1, False, -1).eval()
    ela_block.load_state_dict(area_block.state_dict())
    x = torch.randn(1, 192, 8, 8)
    with torch.no_grad():
        assert torch.equal(area_block(x), ela_block(x))


def test_a2c2f_twin_blocks_mirror_area_attention_layout():
    block = A2C2fELA(256, 256, 2, True, 4, mlp_ratio=1.2)
    inner = [m for m in block.modules() if isinstance(m, ELABlock)]
    assert len(inner) == 4  # two ELABlocks per repeat, like ABlock
    assert all(m.attn.num_heads == 4 and m.attn.head_dim == 32 for m in inner)  # 32-channel heads
    assert all(m.attn.pe.conv.kernel_size == (7, 7) for m in inner)  # AAttn's positional conv
    assert all(m.mlp[0].conv.out_channels == int(128 * 1.2) for m in inner)


def test_c2psa_twin_has_c2psa_parameters():
    for c, n in [(128, 1), (256, 2), (512, 1)]:
        assert _parameters(C2PSA(c, c, n)) == _parameters(C2PSAELA(c, c, n))


def test_kernel_is_chosen_by_name():
    assert {m.kernel for m in C2fELA(64, 64, 2, "sub_sq_euclid").modules() if isinstance(m, ELAAttention2d)} == {
        "sub_sq_euclid"
    }
    assert C2PSAELA(128, 128, 1, 0.5, "modulated_dot").m[0].attn.kernel == "modulated_dot"
    # A2C2fELA: a string in YOLO12's `area` slot names the kernel (trailing args are taken at l/x)
    twin = A2C2fELA(64, 64, 1, True, "sum_sq_euclid", True, 1.2)
    assert twin.m[0][0].attn.kernel == "sum_sq_euclid" and twin.gamma is not None
    assert A2C2fELA(64, 64, 1, True, 4).m[0][0].attn.kernel == "hadamard_exp"


def test_kernels_give_different_outputs():
    x = torch.randn(1, 64, 8, 8)
    outputs = []
    for kernel in ("hadamard_exp", "sum_sq_euclid"):
        torch.manual_seed(1)
        block = C2fELA(64, 64, 1, kernel).eval()
        with torch.no_grad():
            outputs.append(block(x))
    assert rel_err(outputs[0], outputs[1]) > 1e-3  # measured 1.3e-2: same weights, other kernel


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: A2C2fELA(64, 80, 1), "multiple of 32"),
        (lambda: A2C2fELA(64, 128, 1, True, 1, True), "c1 == c2"),
        (lambda: C2PSAELA(64, 128), "must be equal"),
        (lambda: C2fELA(64, 96, 1, head_dim=32, e=0.75), "head_dim"),
        (lambda: C2fELA(64, 64, 1, "no_such_kernel"), "no_such_kernel"),
    ],
)
def test_bad_configurations_fail_with_a_clear_message(build, message):
    with pytest.raises((ValueError, KeyError), match=message):
        build()
