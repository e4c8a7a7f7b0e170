"""Kernel registry and the exactness of every feature-map pair."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from yolo_lat.ela import (
    ela_attention,
    get_kernel,
    list_kernels,
    naive_attention,
    register_kernel,
    unregister_kernel,
)

BUILTIN = ["hadamard_exp", "modulated_dot", "sub_sq_euclid", "sum_sq_euclid"]


def test_builtin_kernels_listed():
    assert set(BUILTIN) <= set(list_kernels())
    assert list_kernels() == sorted(list_kernels())


@pytest.mark.parametrize("name", BUILTIN)
@settings(max_examples=40, deadline=None)
@given(
    dim=st.integers(1, 12),
    data=st.data(),
)
def test_factorisation_identity(name, dim, data):
    """phi(a) . psi(b) equals the closed-form k(a, b) for random inputs (property test)."""
    values = st.floats(-3.0, 3.0, allow_nan=False, allow_infinity=False)
    a = torch.tensor(data.draw(st.lists(values, min_size=dim, max_size=dim)), dtype=torch.float64)
    b = torch.tensor(data.draw(st.lists(values, min_size=dim, max_size=dim)), dtype=torch.float64)
    kernel = get_kernel(name)
    phi, psi = kernel.features(a[None], b[None])
    factorised = (phi * psi).sum(-1)
    closed = kernel.evaluate(a[None], b[None])[0]
    assert factorised.item() == pytest.approx(closed.item(), rel=1e-12, abs=1e-12)
    assert closed.item() >= 0


def test_closed_forms_match_paper_formulas():
    a = torch.tensor([[0.5, -1.0, 2.0]], dtype=torch.float64)
    b = torch.tensor([[1.5, 0.25, -0.5]], dtype=torch.float64)
    expected = {
        "hadamard_exp": (a.exp() * b.exp()).sum(),
        "sum_sq_euclid": ((a + b) ** 2).sum(),
        "sub_sq_euclid": ((a - b) ** 2).sum(),
        "modulated_dot": ((a * b).sum() + a.norm() * b.norm() + 1) * (a.pow(2).sum() + 1) * (b.pow(2).sum() + 1),
    }
    for name, value in expected.items():
        assert get_kernel(name).evaluate(a, b).item() == pytest.approx(value.item(), rel=1e-9)


def test_feature_dims():
    assert get_kernel("hadamard_exp").feature_dim(32) == 32
    assert get_kernel("sum_sq_euclid").feature_dim(32) == 34
    assert get_kernel("sub_sq_euclid").feature_dim(32) == 34
    assert get_kernel("modulated_dot").feature_dim(32) == 34


def test_unknown_kernel_suggests_close_name():
    with pytest.raises(ValueError, match=r"unknown ELA kernel 'hadamard'.*Did you mean 'hadamard_exp'"):
        get_kernel("hadamard")


def _cos_features(x):
    # k(a, b) = sum_d (1 + cos(a_d - b_d)) = sum_d [1, cos a_d, sin a_d] . [1, cos b_d, sin b_d]  >= 0
    return torch.cat([torch.ones_like(x), x.cos(), x.sin()], dim=-1)


def test_register_custom_kernel_and_attend():
    def pairwise(a, b):
        return (1 + (a.unsqueeze(-2) - b.unsqueeze(-3)).cos()).sum(-1)

    register_kernel("cosine_bump", _cos_features, _cos_features, pairwise=pairwise, formula="sum_d 1+cos(a_d-b_d)")
    try:
        assert "cosine_bump" in list_kernels()
        q, k, v = (torch.randn(2, 3, 40, 5, dtype=torch.float64) for _ in range(3))
        for causal in (False, True):
            out = ela_attention(q, k, v, kernel="cosine_bump", causal=causal)
            ref = naive_attention(q, k, v, kernel="cosine_bump", causal=causal)
            assert torch.allclose(out, ref, rtol=1e-10, atol=1e-12)
        with pytest.raises(ValueError, match="already registered"):
            register_kernel("cosine_bump", _cos_features, _cos_features)
    finally:
        unregister_kernel("cosine_bump")
    assert "cosine_bump" not in list_kernels()


def test_register_rejects_negative_kernel():
    # the paper's modulated-dot example as printed, (a.b + 1)(|a|^2+1)(|b|^2+1), can be negative
    def feat(x):
        return (x.pow(2).sum(-1, keepdim=True) + 1) * torch.cat([x, torch.ones_like(x[..., :1])], -1)

    with pytest.raises(ValueError, match=r"kernel 'paper_modulated'.*negative"):
        register_kernel("paper_modulated", feat, feat)
    assert "paper_modulated" not in list_kernels()


def test_register_rejects_non_finite_and_mismatched_maps():
    with pytest.raises(ValueError, match=r"kernel 'nan_map'.*non-finite"):
        register_kernel("nan_map", lambda x: x * float("nan"), lambda x: x)
    with pytest.raises(ValueError, match=r"kernel 'sizes'.*phi gives 4 features but psi gives 5"):
        register_kernel("sizes", lambda x: x[..., :4].abs(), lambda x: x[..., :5].abs())
    with pytest.raises(ValueError, match=r"kernel 'wrong_pairwise'.*not exact"):
        register_kernel("wrong_pairwise", _cos_features, _cos_features, pairwise=lambda a, b: a @ b.transpose(-1, -2))
    with pytest.raises(ValueError, match=r"kernel 'boom'.*raised"):
        register_kernel("boom", lambda x: 1 / 0, lambda x: x)
    with pytest.raises(ValueError, match="built in"):
        unregister_kernel("hadamard_exp")
