"""`yolo-lat benchmark accuracy` end to end at a tiny size: training per model and seed, the JSON
figures and how they add up, Markdown and plots, resuming (finished runs are not trained again, an
interrupted one is), a changed recipe refused, and bad arguments refused before any training."""

import json
import os
import statistics
import subprocess
import sys

import pytest
from detect_fixtures import TINY, tiny_data

from yolo_lat import YOLOLAT
from yolo_lat.args import ArgumentError
from yolo_lat.bench import report
from yolo_lat.bench.accuracy_report import markdown
from yolo_lat.bench.accuracy_runs import RUN_RECORD
from yolo_lat.cli import main

pytestmark = pytest.mark.slow

MODELS = ("yolo-lat-pico", "yolo26n")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return tiny_data(tmp_path_factory.mktemp("data"))


def _bench(project, data, *words):
    args = ["benchmark", "accuracy", f"models={','.join(MODELS)}", "epochs=1", *TINY, f"data={data}"]
    args += ["latency_imgsz=64", "latency_budget=0.3", "latency_runs=20", f"project={project}", "name=acc", *words]
    return main(args)


def test_accuracy_trains_every_model_and_seed_writes_results_and_resumes(tmp_path, data, capsys):
    assert _bench(tmp_path, data, "seeds=0") == 0
    out = capsys.readouterr().out
    record = json.loads((tmp_path / "acc.json").read_text())
    assert record["benchmark"] == "accuracy" and [m["model"] for m in record["models"]] == list(MODELS)
    assert record["settings"]["seeds"] == [0] and record["recipe"]["val_during_training"] is False
    assert "weights do not change latency" in record["latency_method"] and "ONNX Runtime" in record["latency_method"]
    assert {"torch", "ultralytics", "onnxruntime"} <= set(record["environment"])
    for m in record["models"]:
        (run,) = m["seeds"]
        assert run["seed"] == 0 and 0.0 <= run["map50_95"] <= run["map50"] <= 1.0
        assert m["map50_95_mean"] == run["map50_95"] and m["map50_mean"] == run["map50"] and m["map50_95_std"] == 0.0
        best = tmp_path / "acc" / f"{m['model']}-s0" / "weights" / "best.pt"
        assert run["weights"] == str(best)
        assert m["params"] == run["params"] == sum(p.numel() for p in YOLOLAT(str(best)).model.parameters())
        assert m["latency_status"] == "ok" and m["latency_ms"] > 0 and m["gflops"] > 0
        assert run["train_s"] > 0 and run["wall_s"] >= run["train_s"]
        assert f"{m['model']} seed 0: training into" in out
    first, second = record["models"]
    assert first["latency_ratio"] == 1.0
    assert second["latency_ratio"] == pytest.approx(second["latency_ms"] / first["latency_ms"])
    assert (tmp_path / "acc.md").read_text().strip() == markdown(record).strip()
    assert "yolo-lat-pico" in out and "mAP50-95 mean ± std" in out
    for suffix in ("_latency.png", "_params.png"):
        assert (tmp_path / f"acc{suffix}").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    results = tmp_path / "results"  # as committed under benchmarks/results: a section of docs/benchmarks.md
    results.mkdir()
    (results / "accuracy_cpu.json").write_text((tmp_path / "acc.json").read_text())
    page = report.build(results)
    assert "## Detector accuracy at one recipe: accuracy_cpu" in page and f"`{record['command']}`" in page
    assert markdown(record).splitlines()[-1] in page and "`benchmarks/results/accuracy_cpu_latency.png`" in page

    # second run, same folder, one more seed: finished runs are reused, an interrupted one is trained again
    runs = {name: tmp_path / "acc" / f"{name}-s0" for name in MODELS}
    (runs["yolo-lat-pico"] / RUN_RECORD).unlink()  # finished weights without their record: validated, not trained
    kept = {name: (folder / "weights" / "best.pt").stat().st_mtime_ns for name, folder in runs.items()}
    record_mtime = (runs["yolo26n"] / RUN_RECORD).stat().st_mtime_ns
    interrupted = tmp_path / "acc" / "yolo-lat-pico-s1" / "weights"
    interrupted.mkdir(parents=True)
    (interrupted / "last.pt").write_bytes(b"cut short")
    assert _bench(tmp_path, data, "seeds=0,1", "latency_format=pytorch") == 0
    out = capsys.readouterr().out
    assert "yolo26n seed 0: finished run found" in out and "yolo-lat-pico seed 0: finished weights found" in out
    assert "yolo-lat-pico seed 1: " in out and "holds no finished run; training it again from scratch" in out
    assert "yolo26n seed 1: training into" in out and "yolo-lat-pico seed 0: training into" not in out
    assert {name: (folder / "weights" / "best.pt").stat().st_mtime_ns for name, folder in runs.items()} == kept
    assert (runs["yolo26n"] / RUN_RECORD).stat().st_mtime_ns == record_mtime
    assert not (interrupted / "last.pt").read_bytes() == b"cut short"
    again = json.loads((tmp_path / "acc.json").read_text())
    assert again["settings"]["seeds"] == [0, 1] and "PyTorch forward pass" in again["latency_method"]
    for before, m in zip(record["models"], again["models"]):
        assert [r["seed"] for r in m["seeds"]] == [0, 1]
        assert m["seeds"][0]["map50_95"] == before["seeds"][0]["map50_95"]  # seed 0 not retrained
        values = [r["map50_95"] for r in m["seeds"]]
        assert m["map50_95_mean"] == pytest.approx(statistics.mean(values))
        assert m["map50_95_std"] == pytest.approx(statistics.stdev(values))
        assert m["latency_ms"] > 0
    assert json.loads((runs["yolo-lat-pico"] / RUN_RECORD).read_text())["wall_s"] is None  # recorded, not trained

    # a changed recipe in the same folder is refused before anything is trained
    with pytest.raises(ArgumentError, match=r"made with epochs=1 \(now 2\)"):
        _bench(tmp_path, data, "seeds=0,1,2", "epochs=2")
    assert not (tmp_path / "acc" / "yolo26n-s2").exists()


@pytest.mark.parametrize(
    ("words", "message"),
    [
        (["models=yolo-lat-pico,nope-q"], "models: cannot build 'nope-q'"),
        (["models=best.pt"], "models: 'best.pt' is a trained or exported model"),
        (["models="], "models: none given"),
        (["seeds="], "seeds: none given"),
        (["seeds=0,x"], "seeds: 'x' is not a seed"),
        (["data=missing/data.yaml"], "data=missing/data.yaml: "),
        (["latency_format=tflite"], "latency_format='tflite'"),
        (["epochs=0"], "epochs=0: expected an integer >= 1"),
    ],
)
def test_accuracy_bad_arguments_are_refused_before_training(tmp_path, data, words, message):
    args = ["benchmark", "accuracy", "models=yolo-lat-pico", f"data={data}", f"project={tmp_path}", *words]
    with pytest.raises(ArgumentError) as caught:
        main(args)
    assert message in str(caught.value)
    assert not (tmp_path / "accuracy").exists()


def test_accuracy_bad_argument_exit_status(tmp_path):
    env = {**os.environ, "YOLO_OFFLINE": "1", "MPLBACKEND": "Agg"}
    result = subprocess.run(
        [sys.executable, "-m", "yolo_lat.cli", "benchmark", "accuracy", "seeds=", f"project={tmp_path}"],
        capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 2
    assert "yolo-lat: error: seeds: none given" in result.stderr
