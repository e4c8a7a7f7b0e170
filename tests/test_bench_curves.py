"""``yolo-lat benchmark curves``: training curves of ELA-GPT vs its softmax twin per layer variant."""

from __future__ import annotations

import json
import math
import subprocess
import sys

from yolo_lat.bench import curves, report


def test_tiny_curves_run_writes_json_png_and_table(tmp_path, capsys):
    out = tmp_path / "curves.json"
    args = ["variants=standard,lobe_reference", "steps=12", "val_every=4", "d_model=16", "n_heads=2"]
    assert curves.main([*args, "block=16", "batch=8", "lr=0.01", f"out={out}"]) == 0
    record = json.loads(out.read_text())
    assert record["benchmark"] == "curves"
    assert record["command"].startswith("yolo-lat benchmark curves variants=standard,lobe_reference")
    assert record["settings"]["steps"] == 12 and "torch" in json.dumps(record["environment"])
    runs = record["runs"]
    assert [(r["variant"], r["method"]) for r in runs] == [
        ("standard", "ela"),
        ("standard", "softmax"),
        ("lobe_reference", "ela"),
        ("lobe_reference", "softmax"),
    ]
    for ela, softmax in (runs[:2], runs[2:]):
        assert ela["parameters"] == softmax["parameters"] > 0
    assert runs[2]["parameters"] > runs[0]["parameters"]  # the lobe adds its projections
    target = record["target_val_loss"]
    assert target == max(r["final_val_loss"] for r in runs)
    for r in runs:
        assert r["tokens_seen"] == 12 * 8 * 16 and r["seconds"] > 0
        assert [point[0] for point in r["curve"]] == [4, 8, 12]
        assert all(math.isfinite(value) for point in r["curve"] for value in point[1:])
        first, last = r["curve"][0][2], r["curve"][-1][2]
        assert last < first < math.log(256) + 0.5  # learning: the validation loss falls from about ln(256)
        assert r["final_val_loss"] == last and r["best_val_loss"] == min(p[2] for p in r["curve"])
        assert r["steps_to_target"] is not None and r["steps_to_target"] <= 12
    png = tmp_path / "curves.png"
    assert record["plot"] == str(png) and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = capsys.readouterr().out
    assert table.count("ELA - softmax") == 2 and "lobe_reference" in table and f"steps to {target:.3f}" in table
    assert report.render(record).count("ELA - softmax") == 2  # docs/benchmarks.md recognises the record


def test_steps_to_reach_takes_the_first_recorded_step_at_or_below_the_target():
    curve = [[10, 3.0, 2.9], [20, 2.6, 2.45], [30, 2.4, 2.5], [40, 2.2, 2.1]]
    assert curves.steps_to_reach(curve, 2.5) == 20
    assert curves.steps_to_reach(curve, 2.0) is None
    assert curves.steps_to_reach(curve, 2.9) == 10


def test_variants_set_the_documented_layer_forms():
    assert curves.VARIANTS["standard"] == {"hyperlink": False, "memory_lobe": False}
    assert curves.VARIANTS["hyperlink_reference"]["hyperlink_form"] == "reference"
    assert curves.VARIANTS["lobe_project"]["lobe_form"] == "project"
    assert curves.VARIANTS["lobe_reference"]["lobe_form"] == "reference"
    assert set(curves.DEFAULTS["variants"]) <= set(curves.VARIANTS)


def test_unknown_variant_is_a_one_line_error_with_exit_status_2(tmp_path):
    code = "from yolo_lat.cli import entrypoint; entrypoint()"
    words = ["benchmark", "curves", "variants=standard,lobe_sideways", f"out={tmp_path / 'c.json'}"]
    result = subprocess.run([sys.executable, "-c", code, *words], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "yolo-lat: error: variants: unknown variant 'lobe_sideways'; choose from " + ", ".join(curves.VARIANTS)
    ]
    assert not (tmp_path / "c.json").exists()
