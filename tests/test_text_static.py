"""StaticDecoder: fixed buffers updated in place give the same logits and states as model.step,
compile into one graph without recompiling per token, and refuse what they cannot decode."""

import shutil

import pytest
import torch
from conftest import rel_err
from test_text_generate import EXACT, model_for

from yolo_lat.text import ELAGPT, ELAGPTConfig, KVCache, LabelRoutedMoE, StaticDecoder, generate

CASES = [
    dict(),  # lobe + MoE (outer bias)
    dict(hyperlink=False, moe_bias="inner", kernel="sum_sq_euclid"),
    dict(memory_lobe=False, moe_experts=0, kernel="modulated_dot"),
    dict(moe_bias="none", kernel="sub_sq_euclid"),
    dict(attention="softmax"),  # a KV cache preallocated to max_length, lobe + MoE
    dict(attention="softmax", hyperlink=False, memory_lobe=False, moe_experts=0),
    dict(hyperlink_form="reference", lobe_form="reference", moe_gate="linear"),  # the reference code's forms
]


def _counting_backend():
    """A torch.compile backend that runs the traced graph eagerly and counts compilations."""
    graphs = []

    def backend(graph_module, example_inputs):
        graphs.append(graph_module)
        return graph_module.forward

    return backend, graphs


def _decode_both(model, prompt, steps, **static):
    """Logits of ``steps`` teacher-forced tokens from model.step and from a StaticDecoder."""
    _, state = model.prefill(prompt)
    decoder = StaticDecoder(model, state, max_length=prompt.shape[1] + steps, **static)
    tokens = torch.randint(0, 256, (steps, prompt.shape[0]), generator=torch.Generator().manual_seed(1))
    reference, fixed = [], []
    for token in tokens:
        step_logits, state = model.step(token, state)
        reference.append(step_logits)
        fixed.append(decoder.step(token))
    return torch.stack(reference), torch.stack(fixed), state, decoder


@pytest.mark.parametrize("case", CASES, ids=lambda c: "-".join(map(str, c.values())) or "default")
@pytest.mark.parametrize("compile", [False, "counting"])
def test_static_decoder_matches_model_step(case, compile):
    model = model_for(**case)
    backend, graphs = _counting_backend()
    reference, fixed, state, decoder = _decode_both(
        model, torch.randint(0, 256, (2, 9)), 6, compile=backend if compile else False
    )
    # float64: measured <= 5.3e-16 (the fixed-shape MoE mixture sums in another order)
    assert rel_err(fixed, reference) <= EXACT
    if compile:
        torch._dynamo.reset()
        assert len(graphs) == 1  # one graph, and no recompilation as the position and state move on
    after = decoder.state
    assert after.position == state.position == 9 + 6
    for mine, theirs in zip(after.layers, state.layers):
        for part, expected in ((mine.attention, theirs.attention), (mine.lobe, theirs.lobe)):
            if expected is None:
                assert part is None
                continue
            if isinstance(expected, KVCache):
                assert part.length == expected.length == 15
                assert rel_err(part.keys, expected.keys) <= EXACT and rel_err(part.values, expected.values) <= EXACT
                continue
            assert part.tokens == expected.tokens == 15
            for name in ("S", "C", "shift"):
                assert rel_err(getattr(part, name), getattr(expected, name)) <= EXACT, name


def test_a_kv_cache_rewinds_and_an_ela_state_cannot():
    softmax = model_for(attention="softmax", memory_lobe=False)
    prompt = torch.randint(0, 256, (2, 6))
    _, state = softmax.prefill(prompt)
    decoder = StaticDecoder(softmax, state, max_length=12)
    first = decoder.step(torch.tensor([7, 8]))
    decoder.step(torch.tensor([9, 10]))
    decoder.rewind(2)  # back to the prompt: the same token gives the same logits
    assert decoder.steps == 0 and decoder.state.position == 6
    assert torch.equal(decoder.step(torch.tensor([7, 8])), first)
    with pytest.raises(ValueError, match=r"can rewind 0..1 steps, not 2"):
        decoder.rewind(2)
    ela = model_for()
    _, ela_state = ela.prefill(prompt)
    with pytest.raises(ValueError, match="the ELA state sums every token"):
        StaticDecoder(ela, ela_state).rewind(1)
    with_lobe = model_for(attention="softmax")
    _, lobe_state = with_lobe.prefill(prompt)
    with pytest.raises(ValueError, match="the Memory Lobe's ELA state sums every token"):
        StaticDecoder(with_lobe, lobe_state, max_length=12).rewind(0)


def test_static_decoder_copies_the_state_it_starts_from():
    model = model_for()
    _, state = model.prefill(torch.randint(0, 256, (2, 5)))
    before = state.layers[0].attention.S.clone()
    decoder = StaticDecoder(model, state)
    decoder.step(torch.tensor([3, 4]))
    assert torch.equal(state.layers[0].attention.S, before) and state.position == 5
    snapshot = decoder.state
    decoder.step(torch.tensor([5, 6]))
    assert snapshot.position == 6 and decoder.state.position == 7
    # the snapshot continues with model.step like any other state
    logits, _ = model.step(torch.tensor([5, 6]), snapshot)
    assert logits.shape == (2, 256)


def test_static_steps_route_experts_without_data_dependent_shapes(monkeypatch):
    model = model_for()
    _, state = model.prefill(torch.randint(0, 256, (2, 5)))
    decoder = StaticDecoder(model, state)

    def no_nonzero(*args, **kwargs):
        raise AssertionError("nonzero: a shape that depends on the data (and a host sync on CUDA)")

    monkeypatch.setattr(torch, "nonzero", no_nonzero)
    assert decoder.step(torch.tensor([1, 2])).shape == (2, 256)
    with pytest.raises(AssertionError, match="nonzero"):  # model.step gathers tokens per expert
        model.step(torch.tensor([1, 2]), state)


@pytest.mark.parametrize("bias", ["outer", "inner", "none"])
def test_dense_moe_mixture_equals_the_gathered_one(bias):
    torch.manual_seed(0)
    moe = LabelRoutedMoE(16, 24, n_experts=5, top_k=2, bias=bias).double()
    with torch.no_grad():
        moe.labels.mul_(50.0)  # labels as large as the expert outputs, so a wrong bias term shows
    tokens = torch.randn(7, 16, dtype=torch.float64)
    _, scores, experts = moe.route(tokens)
    gathered = moe._mix_gathered(tokens, scores, experts)
    dense = moe._mix_dense(tokens, scores, experts)
    assert rel_err(dense, gathered) <= 1e-14  # measured 1e-16 (summation order)


def test_static_decoder_refuses_what_it_cannot_decode():
    softmax = model_for(attention="softmax")
    _, kv_state = softmax.prefill(torch.randint(0, 256, (1, 4)))
    with pytest.raises(ValueError, match="a softmax model needs max_length"):
        StaticDecoder(softmax, kv_state)
    with pytest.raises(ValueError, match="max_length=4 leaves no room after the 4 tokens"):
        StaticDecoder(softmax, kv_state, max_length=4)
    full = StaticDecoder(softmax, kv_state, max_length=5)
    full.step(torch.tensor([1]))
    with pytest.raises(ValueError, match="holds max_length=5 tokens and is full"):
        full.step(torch.tensor([2]))
    model = model_for()
    with pytest.raises(ValueError, match="holds KVCache, not the state of attention='ela'"):
        StaticDecoder(model, kv_state)
    _, state = model.prefill(torch.randint(0, 256, (2, 4)))
    with pytest.raises(ValueError, match="CUDA device; it is on cpu"):
        StaticDecoder(model, state, cuda_graph=True)
    with pytest.raises(ValueError, match="3 layers, the model 2"):
        StaticDecoder(model, type(state)([*state.layers, state.layers[0]], state.position))
    no_lobe = model_for(memory_lobe=False)
    with pytest.raises(ValueError, match="layer 0 of the state has a Memory Lobe state, unlike the model's"):
        StaticDecoder(no_lobe, state)
    with pytest.raises(ValueError, match=r"shape \(2,\)"):
        StaticDecoder(model, state).step(torch.tensor([1, 2, 3]))


def test_generate_with_a_compiled_step_gives_the_same_tokens():
    model = model_for()
    prompt = torch.randint(0, 256, (2, 7))
    assert torch.equal(generate(model, prompt, 12, compile="eager"), generate(model, prompt, 12))
    softmax = model_for(attention="softmax")  # its KV cache preallocated to prompt + max_new_tokens
    assert torch.equal(generate(softmax, prompt, 12, compile="eager"), generate(softmax, prompt, 12))
    sample = dict(temperature=1.0, top_k=10)
    first = model.generate(prompt, 8, generator=torch.Generator().manual_seed(4), compile="eager", **sample)
    second = model.generate(prompt, 8, generator=torch.Generator().manual_seed(4), **sample)
    assert torch.equal(first, second)


@pytest.mark.skipif(shutil.which("g++") is None and shutil.which("c++") is None, reason="Inductor needs a C++ compiler")
def test_inductor_compiled_step_matches_eager():
    torch.manual_seed(0)
    model = ELAGPT(ELAGPTConfig(d_model=32, n_heads=4, memory_lobe=True, moe_experts=4)).eval()
    reference, fixed, _, _ = _decode_both(model, torch.randint(0, 256, (2, 6)), 4, compile=True)
    assert rel_err(fixed, reference) <= 1e-5  # float32, fused differently: measured 2e-7


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_graph_decoding_matches_eager_steps_on_cuda():
    model = model_for().float().cuda()
    prompt = torch.randint(0, 256, (2, 9), device="cuda")
    _, state = model.prefill(prompt)
    decoder = StaticDecoder(model, state, cuda_graph=True)
    # warming up stepped the buffers twice and put them back; capturing records without running
    after_capture = decoder.state
    assert after_capture.position == 9
    for mine, theirs in zip(after_capture.layers, state.layers):
        for part, expected in ((mine.attention, theirs.attention), (mine.lobe, theirs.lobe)):
            assert torch.equal(part.S, expected.S) and torch.equal(part.shift, expected.shift)
    for token in torch.randint(0, 256, (5, 2), device="cuda"):
        expected, state = model.step(token, state)
        # float32 with the same kernels; the dense MoE mixture sums in another order: a loose bound
        assert rel_err(decoder.step(token), expected) <= 1e-4
    # greedy tokens: in float64 (PyTorch's ELA on CUDA, captured likewise), where no near-tie can flip
    for attention in ("ela", "softmax"):  # softmax: a KV cache preallocated to prompt + 10 tokens
        exact = model_for(attention=attention).cuda()
        assert torch.equal(generate(exact, prompt, 10, cuda_graph=True), generate(exact, prompt, 10)), attention
