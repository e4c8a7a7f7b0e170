"""MQAR benchmark layer variants (Hyper-Link, lobe and MoE forms) and the committed MQAR figures in the docs."""

import json
import re
from pathlib import Path

import pytest

from yolo_lat.args import ArgumentError
from yolo_lat.bench import mqar, report
from yolo_lat.text import ELAGPT

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
TINY = {
    **mqar.DEFAULTS,
    "methods": ["softmax", "hadamard_exp"],
    "pairs": 2,
    "keys": 4,
    "values": 4,
    "d_model": 16,
    "steps": 2,
    "batch": 4,
    "eval_sequences": 8,
}


def _parameters(**variant):
    return ELAGPT(mqar.model_config("hadamard_exp", {**TINY, **variant})).num_parameters()


def test_variant_fields_reach_both_twins():
    for variant in (
        {"hyperlink": True, "hyperlink_form": "reference"},
        {"memory_lobe": True, "lobe_form": "reference"},
        {"moe_experts": 3, "moe_top_k": 1, "moe_gate": "linear"},
    ):
        ela = mqar.model_config("hadamard_exp", {**TINY, **variant})
        softmax = mqar.model_config("softmax", {**TINY, **variant})
        for name, value in variant.items():
            assert getattr(ela, name) == value and getattr(softmax, name) == value
        assert (ela.attention, softmax.attention) == ("ela", "softmax")
        assert ELAGPT(ela).num_parameters() == ELAGPT(softmax).num_parameters()
    dense = _parameters()
    # project lobe: norm (d) + Q, K, V, output (4 d^2) per layer; reference lobe: Q, K, V only (3 d^2)
    assert _parameters(memory_lobe=True, lobe_form="project") - dense == 2 * (4 * 16 * 16 + 16)
    assert _parameters(memory_lobe=True, lobe_form="reference") - dense == 2 * 3 * 16 * 16
    assert _parameters(moe_experts=3) > 2 * dense  # three SwiGLU experts per layer instead of one
    linear = ELAGPT(mqar.model_config("softmax", {**TINY, "moe_experts": 3, "moe_gate": "linear"}))
    assert all(block.ffn.gate is not None and block.ffn.labels is None for block in linear.blocks)


def test_a_moe_run_records_its_variant_and_routing_shares(tmp_path, capsys):
    out = tmp_path / "mqar.json"
    words = ["methods=softmax,hadamard_exp", "pairs=2", "keys=4", "values=4", "d_model=16", "memory_lobe=True"]
    words += ["lobe_form=reference", "moe_experts=3", "moe_top_k=1", "steps=2", "batch=4", "eval_sequences=8"]
    assert mqar.main([*words, f"out={out}"]) == 0
    record = json.loads(out.read_text())
    settings = record["settings"]
    assert (settings["memory_lobe"], settings["lobe_form"], settings["moe_experts"], settings["moe_top_k"]) == (
        True,
        "reference",
        3,
        1,
    )
    assert settings["moe_gate"] == "label" and settings["hyperlink"] is False
    # the words that differ from the defaults, in the order of --help
    assert record["command"] == " ".join(["yolo-lat benchmark mqar", *words, f"out={out}"])
    moe = _parameters(memory_lobe=True, lobe_form="reference", moe_experts=3, moe_top_k=1)
    assert [r["parameters"] for r in record["rows"]] == [moe, moe]
    for row in record["rows"]:
        assert set(row["routing"]) == {"0", "1"}
        for shares in row["routing"].values():
            assert len(shares) == 3 and sum(shares) == pytest.approx(1, abs=1e-3)
    printed = capsys.readouterr().out
    assert "standard layers + lobe (reference) + MoE 3 experts, top 1, label gate" in printed
    assert "largest expert share per layer" in printed


@pytest.mark.parametrize(
    ("words", "message"),
    [
        (["hyperlink_form=reference"], "hyperlink_form='reference' needs hyperlink=True"),
        (["lobe_form=reference"], "lobe_form='reference' needs memory_lobe=True"),
        (["moe_gate=linear"], r"moe_gate='linear' needs moe_experts > 0"),
        (["moe_experts=4", "moe_gate=soft"], "moe_gate must be one of label, linear, got 'soft'"),
        (["moe_experts=2", "moe_top_k=3"], r"moe_top_k must be in 1..moe_experts=2, got 3"),
        (["hyperlink=True", "hyperlink_form=residual"], "hyperlink_form must be one of paper, reference"),
    ],
)
def test_a_bad_variant_is_refused_before_training(tmp_path, words, message):
    out = tmp_path / "mqar.json"
    with pytest.raises(ArgumentError, match=message):
        mqar.main([*words, "steps=100000", f"out={out}"])  # would run for hours if it trained first
    assert not out.exists()


def test_variants_table_has_a_row_per_record_and_a_column_per_method():
    soft, ela = {"method": "softmax", "accuracy": 1.0}, {"method": "sum_sq_euclid", "accuracy": 0.5432}
    records = {
        "a.json": {"settings": {**mqar.DEFAULTS, "hyperlink": True, "hyperlink_form": "reference"}, "rows": [soft]},
        "b.json": {"settings": {"hyperlink": False}, "rows": [soft, ela]},  # a record older than the variant fields
    }
    lines = mqar.variants_table(records).splitlines()
    assert lines[0] == "| file | layers | softmax | sum_sq_euclid |"
    assert lines[2] == "| `a.json` | Hyper-Link (reference) | 1.000 | - |"
    assert lines[3] == "| `b.json` | standard layers | 1.000 | 0.543 |"


def _docs_table(page: str) -> dict[str, list[str]]:
    """Rows of the MQAR variants table in a page: file name -> cells after the layers cell."""
    rows = {}
    for line in page.splitlines():
        match = re.match(r"\|\s*`(mqar_\w+\.json)`\s*\|", line)
        if match:
            rows[match.group(1)] = [cell.strip() for cell in line.strip().strip("|").split("|")][2:]
    return rows


def test_the_text_page_quotes_every_committed_mqar_file():
    files = sorted(RESULTS.glob("mqar_*.json"))
    assert {p.name for p in files} >= {
        "mqar_cpu.json",
        "mqar_hyperlink_paper_cpu.json",
        "mqar_hyperlink_reference_cpu.json",
        "mqar_lobe_project_cpu.json",
        "mqar_lobe_reference_cpu.json",
        "mqar_moe_label_cpu.json",
        "mqar_moe_linear_cpu.json",
    }
    page = (ROOT / "docs" / "text.md").read_text()
    table = _docs_table(page)
    assert set(table) == {p.name for p in files}
    header = next(line for line in page.splitlines() if line.startswith("| file | layers |"))
    methods = [cell.strip() for cell in header.strip("|").split("|")][2:]
    for path in files:
        record = json.loads(path.read_text())
        accuracy = {r["method"]: f"{r['accuracy']:.3f}" for r in record["rows"]}
        assert table[path.name] == [accuracy.get(m, "-") for m in methods], path.name
        assert f"`{record['command']}`" in page, path.name  # the command that wrote it, next to the table
        assert record["settings"]["steps"] == 1000 and record["settings"]["batch"] == 64
        assert report.SECTIONS[path.name][1] == record["command"], path.name
    # the benchmarks page has the same table, built from the files
    records = {p.name: json.loads(p.read_text()) for p in files}
    assert mqar.variants_table(records) in report.build(RESULTS)
