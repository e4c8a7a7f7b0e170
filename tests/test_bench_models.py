"""`yolo-lat benchmark models` end to end at a tiny size: rows for every model and format, a failed
row that states its reason, mAP from data=, and the JSON / Markdown / PNG outputs."""

import json
import os
import subprocess
import sys

import pytest

from yolo_lat.bench.models import markdown
from yolo_lat.datasets.synth import generate

pytestmark = pytest.mark.slow

ENV = {**os.environ, "YOLO_OFFLINE": "1", "MPLBACKEND": "Agg", "OMP_NUM_THREADS": "1"}


def test_benchmark_models_rows_files_and_map(tmp_path):
    data = generate(tmp_path / "data", n_train=4, n_val=4, imgsz=64, seed=0, preview=False)
    project = tmp_path / "bench"
    result = subprocess.run(
        [sys.executable, "-m", "yolo_lat.cli", "benchmark", "models=yolo-lat-pico,yolo26n", "imgsz=64",
         "formats=pytorch,onnx,engine", "budget=0.2", "runs=5", f"data={data}", f"project={project}", "name=tiny"],
        capture_output=True, text=True, timeout=600, env=ENV, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    record = json.loads((project / "tiny.json").read_text())
    rows = {(r["model"], r["format"]): r for r in record["rows"]}
    assert set(rows) == {(m, f) for m in ("yolo-lat-pico", "yolo26n") for f in ("pytorch", "onnx", "engine")}
    for model in ("yolo-lat-pico", "yolo26n"):
        for fmt in ("pytorch", "onnx"):
            row = rows[(model, fmt)]
            assert row["status"] == "ok", row
            assert row["median_ms"] > 0 and row["p90_ms"] >= row["median_ms"]
            assert row["fps"] == pytest.approx(1e3 / row["median_ms"])
            assert 0.0 <= row["map50_95"] <= 1.0
        # no GPU here: the engine row is reported as failed, with the reason, and the run goes on
        assert rows[(model, "engine")]["status"].startswith("failed: RuntimeError: TensorRT engines need a CUDA")
    assert rows[("yolo-lat-pico", "pytorch")]["params_m"] == pytest.approx(0.286248)
    assert rows[("yolo-lat-pico", "pytorch")]["params_m"] < rows[("yolo26n", "pytorch")]["params_m"] / 5
    env = record["environment"]
    assert {"torch", "ultralytics", "onnxruntime", "tensorrt"} <= set(env)
    assert "no pre/post-processing" in record["method"] and "interleaved" in record["method"]
    assert "2 warm-up calls per model" in record["method"] and "(at most 5)" in record["method"]
    page = (project / "tiny.md").read_text()
    assert page.strip() == markdown(record).strip()
    assert "Latency relative to the first model" in page
    for suffix in ("_latency.png", "_params.png"):
        png = project / f"tiny{suffix}"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not (project / "tiny.partial.json").exists()
    assert "yolo-lat-pico" in result.stdout and "failed: RuntimeError" in result.stdout


def test_benchmark_models_rejects_unknown_format(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "yolo_lat.cli", "benchmark", "models=yolo-lat-pico", "formats=pytorch,tflite",
         f"project={tmp_path}"],
        capture_output=True, text=True, timeout=300, env=ENV, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 2
    assert "unknown format 'tflite'" in result.stderr
