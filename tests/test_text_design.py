"""scripts/text_design.py (default text model vs tied embeddings and the linear gate) and its figures in the docs."""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "text_design.py"
spec = importlib.util.spec_from_file_location("text_design", SCRIPT)
text_design = importlib.util.module_from_spec(spec)
spec.loader.exec_module(text_design)


def test_mean_pairwise_cosine_is_one_for_parallel_rows_and_excludes_self_pairs():
    assert text_design.mean_pairwise_cosine(torch.tensor([[1.0, 2.0], [2.0, 4.0], [3.0, 6.0]])) == pytest.approx(1)
    assert text_design.mean_pairwise_cosine(torch.eye(4)) == pytest.approx(0)
    rows = torch.randn(7, 5)
    unit = torch.nn.functional.normalize(rows, dim=-1)
    pairs = unit @ unit.t()
    expected = (pairs.sum() - pairs.diagonal().sum()) / (7 * 6)
    assert text_design.mean_pairwise_cosine(rows) == pytest.approx(expected.item(), abs=1e-6)


@pytest.mark.slow
def test_script_trains_each_run_and_records_routing(tmp_path):
    out = tmp_path / "design.json"
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "steps=2", "windows=3", f"out={out}"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    record = json.loads(out.read_text())
    runs = record["runs"]
    assert list(runs) == ["default", "tied", "linear_gate"]
    assert record["command"] == f"OMP_NUM_THREADS=1 python scripts/text_design.py steps=2 windows=3 out={out}"
    # a tied head drops the output projection: vocab 256 x d_model 64 parameters
    assert runs["default"]["parameters"] - runs["tied"]["parameters"] == 256 * 64
    assert runs["linear_gate"]["parameters"] == runs["default"]["parameters"]  # gate E x d, labels E x d
    for run in runs.values():
        assert set(run["routing"]) == set(run["cosine"]) == {"0", "1"}
        for layer, shares in run["routing"].items():
            assert len(shares) == 4 and sum(shares) == pytest.approx(1, abs=1e-3)
            assert set(run["cosine"][layer]) == {"expert_input", "stream"}
            assert all(-1 <= c <= 1 for c in run["cosine"][layer].values())
        assert run["history"][-1]["step"] == 2
    assert "| linear_gate |" in result.stdout and "cosine, expert input" in result.stdout


def test_the_text_page_quotes_the_committed_run():
    record = json.loads((ROOT / "benchmarks" / "results" / "text_design_cpu.json").read_text())
    page = " ".join((ROOT / "docs" / "text.md").read_text().split())
    runs = record["runs"]
    assert f"`{record['command']}`" in page
    loss = {name: f"{run['final_val_loss']:.3f}" for name, run in runs.items()}
    assert f"tied, the default model ends at a validation loss of {loss['tied']} against {loss['default']}" in page
    assert f"validation loss of {loss['linear_gate']} against {loss['default']} for the default" in page
    assert f"It ends at a validation loss of {loss['default']} nats per byte" in page
    cosine = {name: run["cosine"] for name, run in runs.items()}
    first, second = cosine["default"]["0"], cosine["default"]["1"]
    assert (
        f"(mean pairwise cosine {first['expert_input']:.2f} against {first['stream']:.2f}, "
        f"and {second['expert_input']:.2f} against {second['stream']:.2f})" in page
    )
    linear = cosine["linear_gate"]
    assert f"({linear['0']['expert_input']:.2f} and {linear['1']['expert_input']:.2f} in its model)" in page
    largest = {name: max(max(shares) for shares in run["routing"].values()) for name, run in runs.items()}
    assert f"largest first-choice share in a layer is {largest['linear_gate']:.2f}" in page
    assert f"(label gate: {largest['default']:.2f})" in page
    fewer = runs["default"]["parameters"] - runs["tied"]["parameters"]
    assert f"(with {fewer:,} fewer parameters)" in page
