"""The reference code's forms of the text model (hyperlink_form, lobe_form, moe_gate): what each
computes, that decoding equals recomputation and StaticDecoder equals model.step for every
combination, that none reads later tokens, and that checkpoints and the CLI carry them."""

import itertools

import pytest
import torch
from conftest import rel_err
from test_text_bad_input import assert_one_line_error, cli
from test_text_generate import EXACT, model_for
from test_text_leak import TOLERANCE, changed_prefix
from test_text_static import _counting_backend, _decode_both

from yolo_lat.cli import main
from yolo_lat.ela import ela_attention, list_kernels
from yolo_lat.text import ELAGPT, ELAGPTConfig, generate, generate_by_recompute
from yolo_lat.text.checkpoint import load_model, read_checkpoint, save_checkpoint
from yolo_lat.text.experts import describe_experts, routing_shares
from yolo_lat.text.tokenizer import ByteTokenizer

VARIANTS = ("hyperlink_form", "lobe_form", "moe_gate")
COMBOS = [
    dict(zip(VARIANTS, forms))
    for forms in itertools.product(("paper", "reference"), ("project", "reference"), ("label", "linear"))
]
KERNELS = list_kernels()
# every combination with ELA (the kernels taken in turn, each at least once) and with softmax attention,
# plus the standard pre-norm layer with the reference lobe and the linear gate
CASES = (
    [dict(attention="ela", kernel=KERNELS[i % len(KERNELS)], **combo) for i, combo in enumerate(COMBOS)]
    + [dict(attention="ela", kernel=k, **COMBOS[-1]) for k in KERNELS[len(COMBOS) :]]
    + [dict(attention="softmax", **combo) for combo in COMBOS]
    + [dict(hyperlink=False, lobe_form="reference", moe_gate="linear")]
)


def case_id(case):
    return "-".join(map(str, case.values()))


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_greedy_decoding_equals_recomputing_the_whole_sequence(case):
    model = model_for(**case)
    prompt = torch.randint(0, 256, (2, 9))
    fast = generate(model, prompt, max_new_tokens=16)
    slow, slow_logits = generate_by_recompute(model, prompt, max_new_tokens=16)
    assert torch.equal(fast, slow)
    logits, state = model.prefill(prompt)
    stepped = [logits[:, -1]]
    for token in fast[:, 9:-1].unbind(1):
        step_logits, state = model.step(token, state)
        stepped.append(step_logits)
    assert rel_err(torch.stack(stepped, dim=1), slow_logits) <= EXACT
    # teacher-forced random tokens too (a greedy continuation may repeat one token)
    ids = torch.randint(0, 256, (2, 25))
    logits, state = model.prefill(ids[:, :9])
    stepped = [logits]
    for token in ids[:, 9:].unbind(1):
        step_logits, state = model.step(token, state)
        stepped.append(step_logits[:, None])
    assert rel_err(torch.cat(stepped, dim=1), model(ids)) <= EXACT


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_static_decoder_matches_model_step(case):
    model = model_for(**case)
    reference, fixed, state, decoder = _decode_both(model, torch.randint(0, 256, (2, 9)), 6)
    assert rel_err(fixed, reference) <= EXACT
    assert decoder.state.position == state.position == 15
    for mine, theirs in zip(decoder.state.layers, state.layers):
        assert mine.lobe.tokens == theirs.lobe.tokens == 15
        assert rel_err(mine.lobe.S, theirs.lobe.S) <= EXACT


def test_static_decoder_of_all_reference_forms_compiles_into_one_graph():
    model = model_for(**COMBOS[-1])
    backend, graphs = _counting_backend()
    reference, fixed, _, _ = _decode_both(model, torch.randint(0, 256, (2, 9)), 6, compile=backend)
    torch._dynamo.reset()
    assert rel_err(fixed, reference) <= EXACT and len(graphs) == 1


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_no_output_depends_on_later_tokens(case):
    model = ELAGPT(ELAGPTConfig(d_model=32, n_layers=2, n_heads=4, memory_lobe=True, moe_experts=4, **case))
    model = model.double().eval()
    for block in model.blocks:  # spread routing scores so top-k choices differ between tokens
        torch.nn.init.normal_(block.ffn.labels if block.ffn.gate is None else block.ffn.gate.weight, std=1.0)
    prefix_change, suffix_change = changed_prefix(model)
    assert prefix_change <= TOLERANCE
    assert suffix_change > 1e-6


def test_a_bidirectional_reference_lobe_leaks_and_the_check_sees_it():
    # weights as in model_for: at init the FFN writes so little that the lobe's reading of it is tiny
    leaky = model_for(moe_experts=0, lobe_form="reference", lobe_bidirectional=True)
    causal = model_for(moe_experts=0, lobe_form="reference")
    causal.load_state_dict(leaky.state_dict())
    assert changed_prefix(leaky)[0] > 1e-4
    assert changed_prefix(causal)[0] <= TOLERANCE


def _pair(seed=0, **changes):
    """The default model and one with ``changes``, both from the same seed (same weights where shared)."""
    models = []
    for values in ({}, changes):
        torch.manual_seed(seed)
        models.append(model_for(**values))
    return models


def _block_parts(model, ids):
    """First layer's input x, attention output a and FFN output f (captured with hooks)."""
    block, seen = model.blocks[0], {}

    def keep(name, which):
        def hook(module, inputs, output=None):
            seen.setdefault(name, inputs[0] if which == "in" else output[0])  # the first call only

        return hook

    hooks = [
        block.attn.register_forward_hook(keep("a", "out")),
        block.ffn.register_forward_hook(keep("f", "out")),
        block.register_forward_hook(keep("out", "out")),
        block.register_forward_pre_hook(keep("x", "in")),
    ]
    if block.lobe is not None:
        hooks.append(block.lobe.register_forward_pre_hook(keep("lobe_in", "in")))
    with torch.no_grad():
        model(ids)
    for hook in hooks:
        hook.remove()
    return seen


def test_reference_hyperlink_adds_the_attention_output_to_the_stream():
    paper, reference = _pair(memory_lobe=True, moe_experts=4, hyperlink_form="reference")
    assert paper.state_dict().keys() == reference.state_dict().keys()
    ids = torch.randint(0, 256, (2, 12))
    p, r = _block_parts(paper, ids), _block_parts(reference, ids)
    assert rel_err(p["out"], p["x"] + p["f"] + paper.blocks[0].lobe(p["x"])[0]) <= EXACT
    assert rel_err(r["out"], r["x"] + r["a"] + r["f"] + reference.blocks[0].lobe(r["x"])[0]) <= EXACT
    assert rel_err(r["out"] - p["out"], r["a"]) <= EXACT  # same weights: they differ by exactly a
    assert rel_err(reference(ids), paper(ids)) > 1e-3


@pytest.mark.parametrize("hyperlink_form", ["paper", "reference"])
def test_reference_lobe_is_one_projection_only_head_over_the_ffn_output(hyperlink_form):
    _, model = _pair(memory_lobe=True, moe_experts=4, lobe_form="reference", hyperlink_form=hyperlink_form)
    lobe = model.blocks[0].lobe
    assert [name for name, _ in lobe.named_parameters()] == ["qkv.weight"]
    assert lobe.norm is None and lobe.out is None and lobe.n_heads == 1 and lobe.head_dim == 32
    assert lobe.qkv.weight.shape == (96, 32)
    ids = torch.randint(0, 256, (2, 12))
    seen = _block_parts(model, ids)
    written = seen["f"] + (seen["a"] if hyperlink_form == "reference" else 0)
    assert torch.equal(seen["lobe_in"], written)  # what the FFN step writes, not the flow x_k - x_{k-1}
    with torch.no_grad():  # one causal ELA head of width d_model, scale d_model^-1/2, no output projection
        q, k, v = (t.unsqueeze(1) for t in lobe.qkv(written).chunk(3, dim=-1))
        expected = ela_attention(q, k, v, kernel=model.config.kernel, causal=True, scale=32**-0.5).squeeze(1)
        assert rel_err(lobe(written)[0], expected) <= EXACT
        assert rel_err(seen["out"], seen["x"] + written + expected) <= EXACT
    default, _ = _pair(memory_lobe=True, moe_experts=4)
    names = [name for name, _ in default.blocks[0].lobe.named_parameters()]
    assert names == ["norm.weight", "qkv.weight", "out.weight"]


def test_linear_gate_renormalises_the_top_k_and_adds_no_label():
    _, model = _pair(memory_lobe=False, moe_experts=4, moe_top_k=2, moe_gate="linear")
    moe = model.blocks[0].ffn
    assert moe.labels is None and moe.gate.weight.shape == (4, 32) and moe.gate.bias is None
    assert "labels" not in dict(moe.named_parameters())
    x = torch.randn(50, 32, dtype=torch.float64)
    probs, top_scores, top_experts = moe.route(x)
    assert torch.allclose(top_scores.sum(-1), torch.ones(50, dtype=torch.float64), atol=1e-12)
    top_logits = moe.gate(x).gather(1, top_experts)
    assert rel_err(top_scores, top_logits.softmax(-1)) <= EXACT  # softmax over the chosen logits
    assert rel_err(probs, moe.gate(x).softmax(-1)) <= EXACT
    with torch.no_grad():
        y, balance = moe(x, route_on=torch.randn_like(x))  # the linear gate routes on its input, always
        expected = torch.stack(
            [
                sum(s * moe.experts[int(e)](row[None])[0] for s, e in zip(scores, experts))
                for row, scores, experts in zip(x, top_scores, top_experts)
            ]
        )
    assert rel_err(y, expected) <= EXACT
    share = torch.nn.functional.one_hot(top_experts, 4).double().sum((0, 1)) / top_experts.numel()
    assert balance.item() == pytest.approx(4 * (share * probs.mean(0)).sum().item(), rel=1e-12)
    label, _ = _pair(memory_lobe=False, moe_experts=4, moe_top_k=2)
    assert rel_err(label.blocks[0].ffn.route(x)[1].sum(-1), torch.ones(50)) > 1e-3  # label scores: not renormalised
    ids = torch.randint(0, 256, (2, 12))
    assert sum(routing_shares(model, ids)[0]).item() == pytest.approx(1.0)
    with pytest.raises(ValueError, match=r"linear gate .* no label vectors"):
        describe_experts(model, ByteTokenizer())


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"hyperlink_form": "ref"}, "hyperlink_form must be one of paper, reference, got 'ref'"),
        ({"lobe_form": "x"}, "lobe_form must be one of project, reference, got 'x'"),
        ({"moe_gate": "topk"}, "moe_gate must be one of label, linear, got 'topk'"),
        ({"hyperlink": False, "hyperlink_form": "reference"}, "hyperlink_form='reference' needs hyperlink=True"),
        ({"lobe_form": "reference"}, "lobe_form='reference' needs memory_lobe=True"),
        ({"moe_gate": "linear"}, "moe_gate='linear' needs moe_experts > 0"),
    ],
)
def test_config_rejects_unknown_and_ineffective_forms(changes, message):
    with pytest.raises(ValueError) as raised:
        ELAGPTConfig(**changes)
    assert str(raised.value) == message


def test_cli_rejects_an_unknown_form_with_exit_status_2():
    assert_one_line_error(cli("train", "moe_gate=bogus"), "moe_gate must be one of label, linear, got 'bogus'")


TINY = ["d_model=16", "n_layers=1", "n_heads=2", "moe_experts=2", "block=16", "batch=2", "steps=1", "val_batches=1"]


def test_cli_trains_the_reference_forms_and_checkpoints_keep_them(tmp_path, capsys):
    forms = ["hyperlink_form=reference", "lobe_form=reference", "moe_gate=linear"]
    assert main(["text", "train", *TINY, *forms, f"project={tmp_path}", "name=ref", "progress=False"]) == 0
    model, _, record = load_model(tmp_path / "ref" / "last.pt")
    assert (model.config.hyperlink_form, model.config.lobe_form, model.config.moe_gate) == (
        "reference",
        "reference",
        "linear",
    )
    assert model.blocks[0].lobe.out is None and model.blocks[0].ffn.labels is None
    assert record["settings"]["moe_gate"] == "linear"


def test_a_checkpoint_without_the_form_fields_loads_with_the_defaults(tmp_path, capsys):
    assert main(["text", "train", *TINY, f"project={tmp_path}", "name=old", "progress=False"]) == 0
    record = read_checkpoint(tmp_path / "old" / "last.pt")
    for key in VARIANTS:
        del record["config"][key]
    save_checkpoint(record, tmp_path / "old.pt")
    model, _, _ = load_model(tmp_path / "old.pt")
    assert (model.config.hyperlink_form, model.config.lobe_form, model.config.moe_gate) == ("paper", "project", "label")
    fresh, _, _ = load_model(tmp_path / "old" / "last.pt")
    ids = torch.randint(0, 256, (1, 10))
    assert torch.equal(model(ids), fresh(ids))
