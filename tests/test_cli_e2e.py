"""The real yolo-lat CLI in subprocesses at tiny sizes: train, val (+ COCO cross-check), predict, export, resume."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from ultralytics.utils import ASSETS

from yolo_lat.datasets.coco_json import ANNOTATIONS_FILE, evaluate_predictions
from yolo_lat.datasets.synth import generate

pytestmark = pytest.mark.slow

ENV = {**os.environ, "YOLO_OFFLINE": "1", "MPLBACKEND": "Agg", "OMP_NUM_THREADS": "1"}


def cli(*args, cwd, timeout=600):
    result = subprocess.run(
        [sys.executable, "-m", "yolo_lat.cli", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=ENV,
        cwd=cwd,
    )
    return result


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    data = generate(root / "data", n_train=16, n_val=8, imgsz=64, seed=0, preview=False)
    return root, data


@pytest.fixture(scope="module")
def trained(workdir):
    root, data = workdir
    result = cli(
        "train", "model=yolo-lat-n.yaml", f"data={data}", "epochs=1", "imgsz=64", "batch=4", "workers=0",
        f"project={root}", "name=train", "exist_ok=True", "plots=False", cwd=root,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    best = root / "train" / "weights" / "best.pt"
    assert best.is_file() and (root / "train" / "weights" / "last.pt").is_file()
    assert not (root / "train" / "weights" / ".partial").exists()
    return best


def test_val_save_json_agrees_with_pycocotools(workdir, trained):
    root, data = workdir
    result = cli(
        "val", f"model={trained}", f"data={data}", "imgsz=64", "batch=4", "save_json=True", "conf=0.001",
        f"project={root}", "name=val", "exist_ok=True", "plots=False", cwd=root,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    predictions = root / "val" / "predictions.json"
    assert predictions.is_file() and isinstance(json.loads(predictions.read_text()), list)
    stats = evaluate_predictions(predictions, data.parent / ANNOTATIONS_FILE)
    ours = _ultralytics_map(result.stdout + result.stderr)
    assert abs(stats["map50_95"] - ours) <= 0.01


def _ultralytics_map(log: str) -> float:
    for line in log.splitlines():
        words = line.split()
        if words[:1] == ["all"] and len(words) >= 7:
            return float(words[-1])
    raise AssertionError(f"no 'all' metrics row in the validation log:\n{log[-2000:]}")


def test_predict_saves_annotated_image_and_onnx_round_trip(workdir, trained):
    root, _ = workdir
    result = cli(
        "predict", f"model={trained}", f"source={ASSETS / 'bus.jpg'}", "imgsz=64", f"project={root}",
        "name=predict", "exist_ok=True", cwd=root,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert (root / "predict" / "bus.jpg").is_file()
    onnx_file = trained.with_suffix(".onnx")  # exported beside the checkpoint
    result = cli("export", f"model={trained}", "imgsz=64", "ela_op=custom", cwd=root)
    assert result.returncode == 0, result.stderr[-3000:]
    assert onnx_file.is_file() and "ela_op=custom" in result.stdout
    result = cli(
        "predict", f"model={onnx_file}", f"source={ASSETS / 'zidane.jpg'}", "imgsz=64", f"project={root}",
        "name=predict_onnx", "exist_ok=True", cwd=root,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert (root / "predict_onnx" / "zidane.jpg").is_file()


def test_onnx_model_validates(workdir, trained, tmp_path):
    from yolo_lat import YOLOLAT

    _, data = workdir
    onnx_file = YOLOLAT(str(trained)).export(format="onnx", imgsz=64, output=tmp_path / "v.onnx")
    metrics = YOLOLAT(onnx_file).val(data=str(data), imgsz=64, batch=1, plots=False, project=str(tmp_path))
    assert 0.0 <= metrics.box.map <= 1.0


def test_bad_dataset_is_reported_before_training(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(f"path: {tmp_path}\ntrain: images/train\nnames: [a, b]\n")  # no 'val'
    result = cli("train", f"data={bad}", "epochs=1", "imgsz=64", cwd=tmp_path)
    assert result.returncode == 2
    assert "val" in result.stderr and "bad.yaml" in result.stderr
    assert "Traceback" not in result.stderr


def test_resume_after_sigkill_mid_epoch(tmp_path):
    data = generate(tmp_path / "data", n_train=64, n_val=8, imgsz=64, seed=1, preview=False)
    run = tmp_path / "run"
    args = [
        sys.executable, "-m", "yolo_lat.cli", "train", "model=yolo-lat-n.yaml", f"data={data}", "epochs=3",
        "imgsz=64", "batch=4", "workers=0", f"project={tmp_path}", "name=run", "exist_ok=True", "plots=False",
        "val=False",
    ]  # fmt: skip
    process = subprocess.Popen(args, env=ENV, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    last = run / "weights" / "last.pt"
    deadline = time.time() + 300
    while not last.exists() and time.time() < deadline and process.poll() is None:
        time.sleep(0.05)
    assert last.exists(), "no checkpoint after the first epoch"
    time.sleep(0.5)  # an epoch here takes several seconds: the kill lands inside the second one
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
    checkpoint = torch.load(last, weights_only=False)  # whatever moment the kill came, last.pt is complete
    assert checkpoint["epoch"] == 0, "the kill did not land in the second epoch"
    result = cli("train", "resume=True", f"model={last}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Resuming training" in result.stdout + result.stderr
    rows = (run / "results.csv").read_text().strip().splitlines()[1:]
    assert [int(float(r.split(",")[0])) for r in rows] == [1, 2, 3]  # every planned epoch, each once
    assert torch.load(run / "weights" / "last.pt", weights_only=False)["epoch"] == -1  # finished and stripped
