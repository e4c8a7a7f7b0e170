"""ELA at its edges: empty sizes (compared with SDPA), non-finite scales, kernels checked far from the origin."""

import pytest
import torch
import torch.nn.functional as F

from yolo_lat.ela import (
    ela_attention,
    ela_readout,
    ela_step,
    list_kernels,
    naive_attention,
    naive_recurrent_attention,
    register_kernel,
    unregister_kernel,
)

KERNELS = ["hadamard_exp", "sum_sq_euclid", "modulated_dot"]
SIZES = dict(B=2, H=3, Lq=5, Lk=5, D=4, Dv=6)
EMPTY = {
    "B=0": {"B": 0},
    "H=0": {"H": 0},
    "Lq=0": {"Lq": 0},
    "Lk=0": {"Lk": 0},
    "Lq=Lk=0": {"Lq": 0, "Lk": 0},
    "Dv=0": {"Dv": 0},
}


def tensors(B, H, Lq, Lk, D, Dv):
    q, k = torch.randn(B, H, Lq, D, requires_grad=True), torch.randn(B, H, Lk, D, requires_grad=True)
    return q, k, torch.randn(B, H, Lk, Dv, requires_grad=True)


#: (empty sizes, causal) pairs; causal attention needs Lq == Lk (else a ValueError, tested elsewhere).
CASES = [
    (name, causal)
    for name, sizes in EMPTY.items()
    for causal in (False, True)
    if not causal or sizes.get("Lq", 5) == sizes.get("Lk", 5)
]


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize(("empty", "causal"), CASES, ids=[f"{name}-{'causal' if c else 'bidir'}" for name, c in CASES])
def test_empty_sizes_give_empty_or_zero_outputs_like_sdpa(kernel, empty, causal):
    sizes = {**SIZES, **EMPTY[empty]}
    q, k, v = tensors(**sizes)
    expected = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
    out, state = ela_attention(q, k, v, kernel=kernel, causal=causal, return_state=True)
    assert out.shape == expected.shape and out.dtype == v.dtype
    assert not out.isnan().any()
    if sizes["Lk"] == 0:  # no key carries weight: zeros (SDPA averages nothing into zeros as well)
        assert torch.equal(out, torch.zeros_like(out)) and torch.equal(expected, torch.zeros_like(expected))
    features = 4 if kernel == "hadamard_exp" else 6
    assert state.S.shape == (sizes["B"], sizes["H"], features, sizes["Dv"])
    assert state.tokens == sizes["Lk"]
    (out.sum() + state.S.sum()).backward()  # gradients reach every input, with their shapes
    assert q.grad.shape == q.shape and k.grad.shape == k.shape and v.grad.shape == v.shape
    assert torch.equal(ela_attention(q, k, v, kernel=kernel, causal=causal), out)


@pytest.mark.parametrize("causal", [False, True], ids=["bidirectional", "causal"])
def test_zero_width_queries_and_keys_are_refused(causal):
    q, k, v = tensors(**{**SIZES, "D": 0})
    message = r"^q and k have head dim D=0; ELA needs D >= 1"
    with pytest.raises(ValueError, match=message):
        ela_attention(q, k, v, causal=causal)
    with pytest.raises(ValueError, match=message):
        ela_step(q[:, :, 0], k[:, :, 0], v[:, :, 0])


def test_all_padded_keys_and_empty_key_sets_agree():
    q, k, v = tensors(**SIZES)
    padded = ela_attention(q, k, v, key_padding_mask=torch.ones(2, 5, dtype=torch.bool))
    none = ela_attention(q, k[:, :, :0], v[:, :, :0])
    assert torch.equal(padded, none) and torch.equal(none, torch.zeros(2, 3, 5, 6))


@pytest.mark.parametrize("kernel", KERNELS)
def test_decode_step_with_empty_batch_or_heads(kernel):
    for batch, heads in ((0, 3), (2, 0)):
        q, k, v = (torch.randn(batch, heads, 4, 4) for _ in range(3))
        _, state = ela_attention(q, k, v, kernel=kernel, causal=True, return_state=True)
        y, after = ela_step(q[:, :, 0], k[:, :, 0], v[:, :, 0], state)
        assert y.shape == (batch, heads, 4) and after.tokens == 5
        y, fresh = ela_step(q[:, :, 0], k[:, :, 0], v[:, :, 0], kernel=kernel)
        assert y.shape == (batch, heads, 4) and fresh.S.shape == after.S.shape


@pytest.mark.parametrize("scale", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_scale_is_refused_everywhere(scale):
    q, k, v = (torch.randn(1, 2, 5, 4) for _ in range(3))
    message = rf"^scale must be a finite number or None, got {scale}; pass None \(1\) or e.g. 1 / sqrt\(head_dim\)$"
    _, state = ela_attention(q, k, v, causal=True, return_state=True)
    calls = [
        lambda: ela_attention(q, k, v, scale=scale),
        lambda: ela_attention(q, k, v, causal=True, scale=scale),
        lambda: ela_step(q[:, :, 0], k[:, :, 0], v[:, :, 0], state, scale=scale),
        lambda: ela_readout(q, state, scale=scale),
        lambda: naive_attention(q, k, v, scale=scale),
        lambda: naive_recurrent_attention(q, k, v, scale=scale),
    ]
    for call in calls:
        with pytest.raises(ValueError, match=message):
            call()
    assert torch.isfinite(ela_attention(q, k, v, scale=0.0)).all()  # finite scales, 0 included, still work


def _shifted_dot(x):
    # k(a, b) = a . b + 900: non-negative for |a||b| < 900 (every moderate input), negative far out
    return torch.cat([x, torch.full_like(x[..., :1], 30.0)], dim=-1)


def test_a_kernel_negative_only_at_large_magnitudes_is_refused():
    q, k = torch.randn(1, 1, 4, 6) * 50, torch.randn(1, 1, 4, 6) * 50
    assert (_shifted_dot(q) @ _shifted_dot(k).transpose(-1, -2)).min() < 0  # the rows ELA would zero
    message = r"kernel 'shifted_dot': phi\(a\) \. psi\(b\) is negative \(min -[\d.e+]+\) for random inputs "
    with pytest.raises(ValueError, match=message + r"with D=4 at magnitudes \d+ \(a\) and \d+ \(b\); .* non-negative"):
        register_kernel("shifted_dot", _shifted_dot, _shifted_dot)
    assert "shifted_dot" not in list_kernels()


def test_feature_maps_that_break_down_at_large_magnitudes_are_refused():
    def nan_far_out(x):  # fine within |x| < 50
        return torch.where(x.abs() < 50, x, float("nan")).abs()

    with pytest.raises(ValueError, match=r"kernel 'nan_far_out': .*NaN\) for random inputs with D=4 at magnitudes"):
        register_kernel("nan_far_out", nan_far_out, nan_far_out)
    square_exp = lambda x: (x * x).exp()  # noqa: E731  log-features exp(x^2): +inf from |x| ~ 27
    with pytest.raises(ValueError, match=r"kernel 'log_overflow': log-features are \+inf for random inputs"):
        register_kernel("log_overflow", square_exp, square_exp, log_domain=True)
    assert not {"nan_far_out", "log_overflow"} & set(list_kernels())


def test_linear_features_that_only_overflow_float64_are_still_accepted():
    # exp(x) as linear-domain features overflows past |x| ~ 709; that range is documented as unchecked
    register_kernel("linear_exp", torch.exp, torch.exp)
    try:
        q, k, v = (torch.randn(1, 2, 6, 4, dtype=torch.float64) for _ in range(3))
        expected = naive_attention(q, k, v, kernel="hadamard_exp")
        assert torch.allclose(ela_attention(q, k, v, kernel="linear_exp"), expected, rtol=1e-10)
    finally:
        unregister_kernel("linear_exp")
