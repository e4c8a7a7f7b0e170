"""Exactness, masking, state and stability of ela_attention against the naive references."""

import pytest
import torch
from conftest import rel_err

from yolo_lat.ela import (
    ELAState,
    ela_attention,
    ela_readout,
    ela_step,
    list_kernels,
    naive_attention,
    naive_recurrent_attention,
    register_kernel,
    unregister_kernel,
)

KERNELS = ["hadamard_exp", "modulated_dot", "sub_sq_euclid", "sum_sq_euclid"]
# float64 tolerance: measured errors are 1e-16..1e-15 (rounding of float64), the spec allows 1e-10.
EXACT = 1e-10


def qkv(b, h, lq, lk, d, dv, dtype=torch.float64, spread=1.0):
    q = torch.randn(b, h, lq, d, dtype=dtype) * spread
    k = torch.randn(b, h, lk, d, dtype=dtype) * spread
    v = torch.randn(b, h, lk, dv, dtype=dtype)
    return q, k, v


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize(("length", "dim", "value_dim"), [(1, 8, 8), (63, 60, 60), (500, 16, 24), (37, 5, 3)])
def test_matches_naive_float64(kernel, causal, length, dim, value_dim):
    q, k, v = qkv(2, 3, length, length, dim, value_dim, spread=0.5)
    out = ela_attention(q, k, v, kernel=kernel, causal=causal, scale=dim**-0.5)
    ref = naive_attention(q, k, v, kernel=kernel, causal=causal, scale=dim**-0.5)
    assert out.shape == (2, 3, length, value_dim) and out.dtype == torch.float64
    assert rel_err(out, ref) <= EXACT


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("length", [1, 63, 200])
def test_causal_matches_recurrent_loop(kernel, length):
    q, k, v = qkv(1, 2, length, length, 12, 7, spread=0.7)
    out = ela_attention(q, k, v, kernel=kernel, causal=True)
    assert rel_err(out, naive_recurrent_attention(q, k, v, kernel=kernel)) <= EXACT


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize(("lq", "lk"), [(1, 50), (77, 13), (64, 300)])
def test_cross_attention_lengths(kernel, lq, lk):
    q, k, v = qkv(2, 2, lq, lk, 10, 6)
    assert rel_err(ela_attention(q, k, v, kernel=kernel), naive_attention(q, k, v, kernel=kernel)) <= EXACT


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("causal", [False, True])
def test_key_padding_mask_matches_naive_and_padded_keys_have_no_influence(kernel, causal):
    q, k, v = qkv(3, 2, 45, 45, 8, 8)
    mask = torch.rand(3, 45) < 0.3
    mask[0, :5] = True  # left padding: the first queries see no key at all
    out = ela_attention(q, k, v, kernel=kernel, causal=causal, key_padding_mask=mask)
    ref = naive_attention(q, k, v, kernel=kernel, causal=causal, key_padding_mask=mask)
    assert rel_err(out, ref) <= EXACT
    k2, v2 = k.clone(), v.clone()
    k2[mask[:, None, :, None].expand_as(k2)] = 1e3  # huge padded keys must not matter
    v2[mask[:, None, :, None].expand_as(v2)] = float("nan")
    out2 = ela_attention(q, k2, v2.nan_to_num(7.0), kernel=kernel, causal=causal, key_padding_mask=mask)
    assert torch.equal(out, out2)
    if causal:  # queries before the first valid key have nothing to attend to: zeros, documented
        assert torch.equal(out[0, :, :5], torch.zeros_like(out[0, :, :5]))


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("chunk_size", [1, 3, 8, 64])
def test_chunk_size_does_not_change_result(kernel, chunk_size):
    q, k, v = qkv(1, 2, 70, 70, 6, 6)
    ref = naive_attention(q, k, v, kernel=kernel, causal=True)
    assert rel_err(ela_attention(q, k, v, kernel=kernel, causal=True, chunk_size=chunk_size), ref) <= EXACT


@pytest.mark.parametrize("kernel", KERNELS)
def test_prefill_then_steps_equals_full_causal(kernel):
    q, k, v = qkv(2, 3, 40, 40, 16, 8)
    full = ela_attention(q, k, v, kernel=kernel, causal=True)
    prefix = 25
    out, state = ela_attention(
        q[:, :, :prefix], k[:, :, :prefix], v[:, :, :prefix], kernel=kernel, causal=True, return_state=True
    )
    assert isinstance(state, ELAState) and state.tokens == prefix
    steps = []
    for t in range(prefix, 40):
        y, state = ela_step(q[:, :, t], k[:, :, t], v[:, :, t], state)
        steps.append(y)
    assert state.tokens == 40
    assert rel_err(torch.cat([out, torch.stack(steps, 2)], 2), full) <= EXACT
    # state size does not depend on the number of tokens
    empty = ELAState.empty(2, 3, 16, 8, kernel=kernel, dtype=torch.float64)
    assert state.nbytes == empty.nbytes


@pytest.mark.parametrize("kernel", KERNELS)
def test_steps_from_scratch_and_chunked_prefill(kernel):
    q, k, v = qkv(1, 2, 30, 30, 8, 8)
    full = ela_attention(q, k, v, kernel=kernel, causal=True)
    state, outs = None, []
    for t in range(30):
        y, state = ela_step(q[:, :, t], k[:, :, t], v[:, :, t], state, kernel=kernel)
        outs.append(y)
    assert rel_err(torch.stack(outs, 2), full) <= EXACT
    first, state = ela_attention(
        q[:, :, :11], k[:, :, :11], v[:, :, :11], kernel=kernel, causal=True, return_state=True
    )
    second = ela_attention(q[:, :, 11:], k[:, :, 11:], v[:, :, 11:], kernel=kernel, causal=True, initial_state=state)
    assert rel_err(torch.cat([first, second], 2), full) <= EXACT


@pytest.mark.parametrize("kernel", KERNELS)
def test_bidirectional_state_readout(kernel):
    q, k, v = qkv(2, 2, 20, 33, 8, 5)
    out, state = ela_attention(q, k, v, kernel=kernel, return_state=True)
    assert rel_err(ela_readout(q, state), out) <= EXACT


# Low precision: measured relative error against the float64 reference on the same rounded inputs
# (|q|, |k| up to 50, L=300, D=32, all kernels, both forms): fp16 <= 2.2e-4, bf16 <= 1.8e-3,
# fp32 <= 5e-7 -- the rounding of the output itself. Tolerances are about 4x those.
LOW_PRECISION = {torch.float16: 1e-3, torch.bfloat16: 8e-3, torch.float32: 2e-6}


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("dtype", list(LOW_PRECISION))
@pytest.mark.parametrize("causal", [False, True])
def test_large_magnitudes_low_precision(kernel, dtype, causal):
    q = (torch.rand(1, 2, 300, 32) * 100 - 50).to(dtype)
    k = (torch.rand(1, 2, 300, 32) * 100 - 50).to(dtype)
    v = torch.randn(1, 2, 300, 32).to(dtype)
    out = ela_attention(q, k, v, kernel=kernel, causal=causal)
    assert out.dtype == dtype and torch.isfinite(out).all()
    ref = naive_attention(q.double(), k.double(), v.double(), kernel=kernel, causal=causal)
    assert rel_err(out, ref) <= LOW_PRECISION[dtype]


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("causal", [False, True])
def test_keys_growing_along_sequence(kernel, causal):
    """Keys whose scale grows from 1 to 120: a single global shift would underflow early rows to 0/0."""
    length = 300
    growth = torch.linspace(1, 120, length)[None, None, :, None]
    q, k, v = torch.randn(1, 2, length, 32), torch.randn(1, 2, length, 32) * growth, torch.randn(1, 2, length, 32)
    out = ela_attention(q, k, v, kernel=kernel, causal=causal)
    ref = naive_attention(q.double(), k.double(), v.double(), kernel=kernel, causal=causal)
    assert torch.isfinite(out).all()
    assert (out.abs().sum(-1) > 0).all()  # no row collapsed to the zero-denominator guard
    assert rel_err(out, ref) <= 1e-5  # measured <= 7e-7


def test_keys_jump_inside_one_chunk():
    """A jump of 300 in key scale within one causal chunk (exact pairwise weights inside chunks)."""
    q, k, v = torch.randn(1, 1, 8, 4), torch.randn(1, 1, 8, 4), torch.randn(1, 1, 8, 4)
    k[..., 4:, :] += 300.0
    out = ela_attention(q, k, v, causal=True, chunk_size=8)
    ref = naive_attention(q.double(), k.double(), v.double(), causal=True)
    assert torch.isfinite(out).all() and rel_err(out, ref) <= 1e-6


def test_zero_denominators_are_finite_and_zero():
    q, k, v = qkv(1, 1, 4, 6, 3, 2)
    everything_padded = torch.ones(1, 6, dtype=torch.bool)
    for kernel in KERNELS:
        for causal in (False, True):
            kk = k[:, :, :4] if causal else k
            vv = v[:, :, :4] if causal else v
            out = ela_attention(
                q, kk, vv, kernel=kernel, causal=causal, key_padding_mask=everything_padded[:, : kk.shape[2]]
            )
            assert torch.equal(out, torch.zeros_like(out))
    # squared distance to the only key is exactly 0: no key carries weight
    a = torch.tensor([[[[1.0, -2.0, 0.5]]]], dtype=torch.float64)
    out = ela_attention(a, a, torch.ones(1, 1, 1, 2, dtype=torch.float64), kernel="sub_sq_euclid")
    assert torch.equal(out, torch.zeros_like(out))
    out = ela_attention(a, -a, torch.ones(1, 1, 1, 2, dtype=torch.float64), kernel="sum_sq_euclid")
    assert torch.isfinite(out).all() and out.abs().max() <= 1.0 + 1e-12


def test_a_user_log_domain_kernel_with_zero_weights_gives_zeros_not_nan():
    # log-features of relu(x): -inf (weight 0) wherever x <= 0
    log_relu = lambda x: x.clamp_min(0).log()  # noqa: E731
    register_kernel("log_relu_product", log_relu, log_relu, log_domain=True)
    try:
        q, k, v = qkv(1, 1, 3, 5, 4, 2)
        for causal in (False, True):
            kk, vv = (k, v) if not causal else (k[:, :, :3], v[:, :, :3])
            out = ela_attention(-q.abs() - 1.0, kk, vv, kernel="log_relu_product", causal=causal)  # phi(q) = 0
            assert torch.equal(out, torch.zeros_like(out)), causal
    finally:
        unregister_kernel("log_relu_product")


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("causal", [False, True])
def test_gradcheck_float64(kernel, causal):
    q, k, v = (t.requires_grad_() for t in qkv(1, 2, 7, 7, 4, 3))
    mask = torch.zeros(1, 7, dtype=torch.bool)
    mask[0, 2] = True

    def fn(q, k, v):
        return ela_attention(q, k, v, kernel=kernel, causal=causal, key_padding_mask=mask, chunk_size=3)

    assert torch.autograd.gradcheck(fn, (q, k, v))


@pytest.mark.parametrize("kernel", KERNELS)
def test_gradients_finite_with_large_inputs(kernel):
    q = (torch.rand(1, 2, 64, 16) * 100 - 50).requires_grad_()
    k = (torch.rand(1, 2, 64, 16) * 100 - 50).requires_grad_()
    v = torch.randn(1, 2, 64, 16, requires_grad=True)
    mask = torch.zeros(1, 64, dtype=torch.bool)
    mask[0, :10] = True
    for causal in (False, True):
        out = ela_attention(q, k, v, kernel=kernel, causal=causal, key_padding_mask=mask)
        (grad_q, grad_k, grad_v) = torch.autograd.grad(out.square().sum(), (q, k, v))
        assert all(torch.isfinite(g).all() for g in (grad_q, grad_k, grad_v))


def test_all_registered_kernels_covered():
    assert set(KERNELS) <= set(list_kernels())


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"q": torch.randn(2, 3, 4)}, "must be 4-D"),
        ({"k": torch.randn(1, 2, 6, 5)}, "must agree in batch, heads and dim"),
        ({"v": torch.randn(1, 2, 6, 4)}, "must match k"),
        ({"causal": True, "k": torch.randn(1, 2, 6, 4), "v": torch.randn(1, 2, 6, 4)}, "as many queries as keys"),
        ({"key_padding_mask": torch.zeros(1, 6)}, "key_padding_mask must be a bool tensor"),
        ({"kernel": "gauss"}, "unknown ELA kernel 'gauss'"),
        ({"chunk_size": 0, "causal": True}, "chunk_size must be a positive int"),
    ],
)
def test_bad_arguments(kwargs, message):
    args = {"q": torch.randn(1, 2, 5, 4), "k": torch.randn(1, 2, 5, 4), "v": torch.randn(1, 2, 5, 4)}
    args.update(kwargs)
    q, k, v = args.pop("q"), args.pop("k"), args.pop("v")
    with pytest.raises(ValueError, match=message):
        ela_attention(q, k, v, **args)


def test_state_kernel_mismatch_is_an_error():
    q, k, v = qkv(1, 1, 5, 5, 4, 4)
    _, state = ela_attention(q, k, v, causal=True, return_state=True)
    with pytest.raises(ValueError, match="built with kernel 'hadamard_exp'"):
        ela_step(q[:, :, 0], k[:, :, 0], v[:, :, 0], state, kernel="sum_sq_euclid")


def test_shift_helpers_treat_every_non_finite_value_alike(monkeypatch):
    from yolo_lat.ela import stable

    inf, nan = float("inf"), float("nan")
    x = torch.tensor([1.5, -inf, inf, nan, -2.0], dtype=torch.float64, requires_grad=True)
    eager = stable.finite_or_zero(x)
    (eager * torch.arange(1.0, 6.0, dtype=torch.float64)).sum().backward()
    assert eager.tolist() == [1.5, 0.0, 0.0, 0.0, -2.0]
    assert x.grad.tolist() == [1.0, 0.0, 0.0, 0.0, 5.0]  # the gradient passes where x is finite
    monkeypatch.setattr(torch.onnx, "is_in_onnx_export", lambda: True)  # the form ONNX export traces
    assert stable.finite_or_zero(x.detach()).tolist() == eager.tolist()
    old = torch.tensor([-inf, -inf, 0.5, 1.0, nan])
    new = torch.tensor([-inf, 2.0, 1.5, 1.0, 3.0])
    factor = stable.rescale_factor(old, new)  # moving a state from shift `old` to shift `new`
    assert factor[:2].tolist() == [0.0, 0.0] and factor[4].item() == 0.0  # nothing was there
    assert factor[2:4].tolist() == pytest.approx([torch.e**-1, 1.0])
