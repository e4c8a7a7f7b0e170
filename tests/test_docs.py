"""The documentation stays true: its figures come from the committed results, its examples run.

``make test`` also builds the site with ``mkdocs build --strict`` (broken links, pages missing from
``mkdocs.yml``); these tests check what a link checker cannot.
"""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from yolo_lat.bench import report

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
README = ROOT / "README.md"
MARKER = "<!-- tested: tests/test_docs.py runs this block -->"


def _rows(name):
    return json.loads((RESULTS / name).read_text())["rows"]


def _tested_blocks():
    for page in sorted((ROOT / "docs").glob("*.md")):
        text = page.read_text()
        for index, start in enumerate(m.end() for m in re.finditer(re.escape(MARKER), text)):
            block = re.match(r"\s*```python\n(.*?)```", text[start:], re.S)
            assert block, f"{page.name}: the marker must be followed by a python block"
            yield pytest.param(block.group(1), id=f"{page.stem}-{index}")


def test_benchmarks_page_is_generated_from_the_committed_results():
    page = (ROOT / "docs" / "benchmarks.md").read_text()
    assert page == report.build(RESULTS), "docs/benchmarks.md is stale: run `yolo-lat benchmark report`"
    for path in RESULTS.glob("*.json"):  # every committed result has a section that names it
        assert f"File `benchmarks/results/{path.name}`" in page


def test_every_tested_docs_block_is_found():
    pages = {param.id.rsplit("-", 1)[0] for param in _tested_blocks()}
    assert {"ela", "settings", "text"} <= pages


@pytest.mark.parametrize("block", list(_tested_blocks()))
def test_docs_python_blocks_run(block, tmp_path):
    script = tmp_path / "example.py"
    script.write_text(block)
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert result.returncode == 0, result.stderr


def _readme_rows(columns):
    """README table rows with ``columns`` cells whose first cell names a model, by lower-cased model name."""
    table = {}
    for line in README.read_text().splitlines():
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        if len(cells) == columns and re.match(r"(yolo|YOLO)[\w-]+", cells[0]) and cells[1][:1].isdigit():
            table[cells[0].split(" (")[0].lower()] = cells
    return table


def test_readme_accuracy_table_matches_the_committed_file():
    record = json.loads((RESULTS / "accuracy_cpu.json").read_text())
    models = {m["model"]: m for m in record["models"]}
    table = _readme_rows(4)
    assert set(table) == set(models) == {"yolo-lat-n", "yolo26n", "yolo12n", "yolo12-ela-n"}
    for name, (_, params, accuracy, latency) in table.items():
        m = models[name]
        assert params == f"{m['params'] / 1e6:.2f}", name
        seeds = ", ".join(f"{s['map50_95']:.3f}" for s in m["seeds"])
        assert accuracy == f"{m['map50_95_mean']:.3f} ({seeds})", name
        ratio = m["latency_ms"] / models["yolo26n"]["latency_ms"]
        assert latency == f"{m['latency_ms']:.1f} ({ratio:.2f}x)", name


def test_readme_gpu_table_matches_the_committed_files():
    gpu = {(r["model"], r["imgsz"]): r for r in _rows("models_gpu.json")}
    table = _readme_rows(3)
    assert set(table) == {"yolo-lat-n v1", "yolo26n", "yolo12n", "yolo12-ela-n", "yolo-lat-pico"}
    for model, (_, params, gpu_ms) in table.items():
        assert params == f"{gpu[(model, 640)]['params_m']:.2f}", model
        expected = " / ".join(f"{gpu[(model, size)]['median_ms']:.2f}" for size in (640, 1920, 2560))
        assert gpu_ms.startswith(expected), (model, gpu_ms, expected)
    assert f"({gpu[('yolo-lat-pico', 320)]['median_ms']:.2f} at 320)" in table["yolo-lat-pico"][2]


def test_readme_ratios_match_the_committed_files():
    gpu = {(r["model"], r["imgsz"]): r["median_ms"] for r in _rows("models_gpu.json")}
    params = {r["model"]: r["params_m"] for r in _rows("models_gpu.json")}
    cpu = {(r["model"], r["format"], r["imgsz"]): r["median_ms"] for r in _rows("models_cpu.json")}
    text = " ".join(README.read_text().split())
    ratios = {
        "3.7x faster than YOLO12n at 2560 px": gpu[("yolo12n", 2560)] / gpu[("yolo-lat-n v1", 2560)],
        "makes YOLO12n 3.4x faster at 2560 px": gpu[("yolo12n", 2560)] / gpu[("yolo12-ela-n", 2560)],
        "4.7x faster than YOLO26n at 320 px on the H200": gpu[("yolo26n", 320)] / gpu[("yolo-lat-pico", 320)],
        "3.4x on the CPU in PyTorch": cpu[("yolo26n", "pytorch", 320)] / cpu[("yolo-lat-pico", "pytorch", 320)],
        "6.5x in ONNX Runtime": cpu[("yolo26n", "onnx", 320)] / cpu[("yolo-lat-pico", "onnx", 320)],
        "9.0x fewer parameters": params["yolo26n"] / params["yolo-lat-pico"],
    }
    for phrase, ratio in ratios.items():
        assert phrase in text, phrase
        assert re.search(r"(\d+\.\d)x", phrase).group(1) == f"{ratio:.1f}", (phrase, ratio)


def test_lobe_leak_figures_in_the_text_page_match_their_file():
    record = json.loads((RESULTS / "lobe_leak_cpu.json").read_text())
    page = (ROOT / "docs" / "text.md").read_text()
    final = record["final_val_loss"]
    for value in (final["causal"], final["bidirectional"], final["bidirectional, lobe restricted to the past"]):
        assert f"{value:.3f}" in page
    assert f"{record['leak_probe']['bidirectional']:.2f}" in page
    last = record["history"]["causal"][-1]["train_loss"], record["history"]["bidirectional"][-1]["train_loss"]
    assert f"| {last[0]:.3f} | {last[1]:.3f} |" in page


def test_no_citation_of_a_file_outside_the_repository():
    texts = [README, ROOT / "CHANGELOG.md", *(ROOT / "docs").glob("*.md"), *(ROOT / "cfg").glob("*.yaml")]
    for folder in ("yolo_lat", "cfg", "datasets", "cuda_ops", "export", "benchmarks", "scripts"):
        texts += (ROOT / folder).rglob("*.py")
    cited = [str(path.relative_to(ROOT)) for path in texts if "ELA.md" in path.read_text()]
    assert not cited


def test_readme_is_a_front_page():
    text = README.read_text()
    assert len(text) < 15_000
    for heading in ("## Results", "## The two commands", "## Quick start", "## Command line", "## What works"):
        assert heading in text
    assert "make demo" in text and "make test" in text


def test_flagship_figures_in_the_detectors_page_match_their_files():
    page = (ROOT / "docs" / "detectors.md").read_text()
    main = {m["model"]: m for m in json.loads((RESULTS / "accuracy_cpu.json").read_text())["models"]}
    for name, m in main.items():
        seeds = ", ".join(f"{s['map50_95']:.3f}" for s in m["seeds"])
        ratio = m["latency_ms"] / main["yolo26n"]["latency_ms"]
        assert f"| {name} | {m['params'] / 1e6:.2f} | {m['gflops']:.1f} | {m['map50_95_mean']:.3f} ({seeds}) |" in page
        assert f"| {m['latency_ms']:.1f} ({ratio:.2f}x) |" in page, name
    variants = {m["model"]: m for m in json.loads((RESULTS / "accuracy_variants_cpu.json").read_text())["models"]}
    for name, m in variants.items():
        ratio = m["latency_ms"] / variants["yolo26n"]["latency_ms"]
        row = f"| {m['params'] / 1e6:.2f} | {m['map50_95_mean']:.3f} | {m['latency_ms']:.1f} ({ratio:.2f}x) |"
        assert f"| `{name}` |" in page and row in page, name
    for row in json.loads((RESULTS / "ablate_cpu.json").read_text())["rows"]:
        assert f"| {row['layer']} | {row['attention_params']:,} | {row['map50_95']:.3f} | {row['delta']:+.3f} |" in page
