"""ELA-GPT parts: config checks, attention exactness, Hyper-Link structure, MoE routing and biases."""

import pytest
import torch
from conftest import rel_err

from yolo_lat.ela import list_kernels, naive_attention
from yolo_lat.text import (
    ELAGPT,
    CausalSelfAttention,
    ELAGPTBlock,
    ELAGPTConfig,
    LabelRoutedMoE,
    MemoryLobe,
)
from yolo_lat.text.layers import apply_rope, rope_angles

# float64 comparisons of two exact computations: measured differences 1e-16..1e-15.
EXACT = 1e-10


def tiny(**overrides):
    values = dict(vocab_size=256, d_model=32, n_layers=2, n_heads=4)
    values.update(overrides)
    return ELAGPTConfig(**values)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"moe_bias": "middle"}, "moe_bias"),
        ({"d_model": 30}, "divisible"),
        ({"kernel": "hadamard"}, "Did you mean"),
        ({"attention": "flash"}, "attention"),
        ({"moe_experts": 2, "moe_top_k": 3}, "moe_top_k"),
        ({"n_layers": 0}, "n_layers"),
    ],
)
def test_config_rejects_bad_values(overrides, message):
    with pytest.raises(ValueError, match=message):
        tiny(**overrides)


def test_config_round_trips_through_dict():
    config = tiny(memory_lobe=True, moe_experts=3, moe_bias="inner", kernel="sub_sq_euclid")
    assert ELAGPTConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match="unknown"):
        ELAGPTConfig.from_dict({**config.to_dict(), "colour": 1})


@pytest.mark.parametrize("kernel", list_kernels())
@pytest.mark.parametrize("hyperlink", [True, False])
def test_logits_shape_aux_and_every_parameter_gets_a_gradient(kernel, hyperlink):
    model = ELAGPT(tiny(kernel=kernel, hyperlink=hyperlink, memory_lobe=True, moe_experts=4))
    ids = torch.randint(0, 256, (3, 20))
    logits, aux = model(ids, return_aux=True)
    assert logits.shape == (3, 20, 256) and torch.isfinite(logits).all()
    assert aux.dim() == 0 and aux.item() > 0
    (logits.logsumexp(-1).mean() + aux).backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert missing == []


def test_softmax_baseline_has_the_same_parameter_count():
    for extra in ({}, {"memory_lobe": True, "moe_experts": 4}):
        ela = ELAGPT(tiny(attention="ela", **extra))
        soft = ELAGPT(tiny(attention="softmax", **extra))
        assert ela.num_parameters() == soft.num_parameters()
        assert [p.shape for p in ela.parameters()] == [p.shape for p in soft.parameters()]


@pytest.mark.parametrize("kernel", list_kernels())
def test_ela_attention_layer_is_exact_kernel_attention_with_rope(kernel):
    layer = CausalSelfAttention(32, 4, "ela", kernel).double()
    x = torch.randn(2, 37, 32, dtype=torch.float64)
    rope = rope_angles(torch.arange(5, 42), 8, dtype=torch.float64)  # an offset, as during decoding
    out, _ = layer(x, rope)
    q, k, v = layer.qkv(x).view(2, 37, 3, 4, 8).permute(2, 0, 3, 1, 4)
    q, k = apply_rope(q, *rope), apply_rope(k, *rope)
    ref = naive_attention(q, k, v, kernel=kernel, causal=True, scale=8**-0.5)
    assert rel_err(out, layer.out(ref.transpose(1, 2).reshape(2, 37, 32))) <= EXACT


def test_softmax_layer_matches_explicit_masked_softmax_and_cached_chunks():
    layer = CausalSelfAttention(32, 4, "softmax", "hadamard_exp").double()
    x = torch.randn(1, 30, 32, dtype=torch.float64)
    rope = rope_angles(torch.arange(30), 8, dtype=torch.float64)
    out, _ = layer(x, rope)
    q, k, v = layer.qkv(x).view(1, 30, 3, 4, 8).permute(2, 0, 3, 1, 4)
    q, k = apply_rope(q, *rope), apply_rope(k, *rope)
    scores = (q @ k.transpose(-1, -2)) / 8**0.5
    scores = scores.masked_fill(~torch.ones(30, 30, dtype=torch.bool).tril(), float("-inf"))
    ref = layer.out((scores.softmax(-1) @ v).transpose(1, 2).reshape(1, 30, 32))
    assert rel_err(out, ref) <= EXACT
    # the same sequence in three cached pieces (one of them a single token)
    cache, pieces = None, []
    for start, stop in ((0, 11), (11, 12), (12, 30)):
        piece, cache = layer(x[:, start:stop], tuple(t[start:stop] for t in rope), cache, use_cache=True)
        pieces.append(piece)
    assert cache.length == 30 and cache.nbytes == 2 * 30 * 32 * 8
    assert rel_err(torch.cat(pieces, dim=1), out) <= EXACT


def test_rope_scores_depend_only_on_distance():
    q, k = torch.randn(1, 1, 1, 16, dtype=torch.float64), torch.randn(1, 1, 1, 16, dtype=torch.float64)

    def score(i, j):
        qi = apply_rope(q, *rope_angles(torch.tensor([i]), 16, dtype=torch.float64))
        kj = apply_rope(k, *rope_angles(torch.tensor([j]), 16, dtype=torch.float64))
        return (qi * kj).sum().item()

    assert score(7, 3) == pytest.approx(score(104, 100), rel=1e-12)
    assert score(7, 3) != pytest.approx(score(7, 4), rel=1e-3)


@pytest.mark.parametrize("use_moe", [False, True])
def test_hyperlink_attention_reaches_the_stream_only_through_the_ffn(use_moe):
    for hyperlink in (True, False):
        block = ELAGPTBlock(tiny(hyperlink=hyperlink, moe_experts=4 if use_moe else 0, moe_bias="none")).double()
        experts = block.ffn.experts if use_moe else [block.ffn]
        for expert in experts:
            torch.nn.init.zeros_(expert.down.weight)  # the FFN now writes nothing
        x = torch.randn(2, 9, 32, dtype=torch.float64)
        out, _, _ = block(x, torch.zeros_like(x), rope_angles(torch.arange(9), 8, dtype=torch.float64))
        if hyperlink:  # x_{k+1} = x_k + ffn(attn(norm x_k)) = x_k
            assert torch.equal(out, x)
        else:  # standard layer: x + attn(norm x) still changes the stream
            assert (out - x).abs().max() > 1e-4


def test_memory_lobe_reads_the_flow_between_layer_inputs():
    block = ELAGPTBlock(tiny(memory_lobe=True)).double()
    x = torch.randn(1, 8, 32, dtype=torch.float64)
    rope = rope_angles(torch.arange(8), 8, dtype=torch.float64)
    base, _, _ = block(x, x, rope)  # zero flow: norm(0) = 0, so the lobe reads zero keys/values
    lobe_out, _ = block.lobe(torch.zeros_like(x))
    assert torch.equal(lobe_out, torch.zeros_like(lobe_out))
    other = torch.randn_like(x)
    changed, _, _ = block(x, other, rope)
    expected = base + block.lobe(x - other)[0]
    assert rel_err(changed, expected) <= EXACT


def test_bidirectional_lobe_refuses_to_decode():
    lobe = MemoryLobe(32, 4, "hadamard_exp", bidirectional=True)
    with pytest.raises(ValueError, match="bidirectional"):
        lobe(torch.randn(1, 4, 32), use_cache=True)
    model = ELAGPT(tiny(memory_lobe=True, lobe_bidirectional=True))
    with pytest.raises(ValueError, match="bidirectional"):
        model.generate(torch.zeros(1, 3, dtype=torch.long), 2)


@pytest.mark.parametrize("bias", ["outer", "inner", "none"])
def test_moe_output_follows_the_bias_formula(bias):
    moe = LabelRoutedMoE(16, 24, n_experts=5, top_k=2, bias=bias).double()
    with torch.no_grad():
        moe.labels.normal_(0, 1.0)  # spread the scores so routing varies between tokens
    x = torch.randn(40, 16, dtype=torch.float64)
    stream = torch.randn(40, 16, dtype=torch.float64)  # the router scores the stream, experts read x
    y, _ = moe(x, route_on=stream)
    _, top_scores, top_experts = moe.route(stream)
    assert (top_scores.sum(-1) <= 1 + 1e-12).all()  # not renormalised: a share of the softmax
    assert len({tuple(row) for row in top_experts.sort(-1).values.tolist()}) > 1, "routing never varied"
    for n in range(40):
        expected = torch.zeros(16, dtype=torch.float64)
        for slot in range(2):
            e, s = int(top_experts[n, slot]), top_scores[n, slot]
            ffn, label = moe.experts[e](x[n]), moe.labels[e]
            expected += {"outer": s * ffn + label, "inner": s * (ffn + label), "none": s * ffn}[bias]
        assert rel_err(y[n], expected) <= EXACT


def test_moe_routing_is_per_token():
    moe = LabelRoutedMoE(16, 24, n_experts=4, top_k=2).double()
    with torch.no_grad():
        moe.labels.normal_(0, 1.0)
    x = torch.randn(3, 11, 16, dtype=torch.float64)
    together, _ = moe(x)
    alone = torch.stack([torch.stack([moe(x[b, t : t + 1])[0][0] for t in range(11)]) for b in range(3)])
    assert rel_err(together, alone) <= EXACT


def test_load_balancing_loss_is_one_when_uniform_and_grows_with_collapse():
    moe = LabelRoutedMoE(8, 16, n_experts=4, top_k=1)
    x = torch.randn(64, 8)
    with torch.no_grad():
        moe.labels.zero_()  # every score 1/4
    assert moe(x)[1].item() == pytest.approx(1.0, abs=1e-6)
    with torch.no_grad():
        moe.labels.zero_()
        moe.labels[0] = 50 * torch.nn.functional.rms_norm(x, (8,)).mean(0)  # pulls most tokens to expert 0
    balance = moe(x)[1].item()
    assert balance > 2.0  # a fully collapsed router gives E = 4
