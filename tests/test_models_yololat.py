"""YOLOLAT and model names: resolution rules, the YOLO API (info, predict, val, export)."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from test_models_train import write_tiny_dataset
from ultralytics import YOLO
from ultralytics.utils import ASSETS

from yolo_lat import YOLOLAT
from yolo_lat.cfg import CFG_DIR
from yolo_lat.models import YOLOLATDetectionTrainer, resolve_model_yaml
from yolo_lat.nn import C2fELA


@pytest.mark.parametrize(
    ("name", "scale", "first_row"),
    [
        ("yolo-lat-n.yaml", "n", "Conv"),
        ("yolo-lat-x.yaml", "x", "Conv"),
        ("yolo12-ela-m.yaml", "m", "Conv"),
        ("yolo-lat-pico.yaml", "", "Conv"),
        ("yolo26s.yaml", "s", "Conv"),  # Ultralytics' own names still work
    ],
)
def test_names_resolve_to_yaml_and_scale(name, scale, first_row):
    config = resolve_model_yaml(name)
    assert config["scale"] == scale and config["yaml_file"] == name
    assert config["backbone"][0][2] == first_row


def test_user_yaml_paths(tmp_path):
    shutil.copy(CFG_DIR / "yolo-lat.yaml", tmp_path / "mine.yaml")
    # a scale suffix on a file that does not exist picks the scale of the file without it
    config = resolve_model_yaml(tmp_path / "mine-l.yaml")
    assert config["scale"] == "l" and config["yaml_file"] == str(tmp_path / "mine-l.yaml")
    # an existing file named with a scale suffix uses it when its scales table has it
    shutil.copy(CFG_DIR / "yolo-lat.yaml", tmp_path / "other-s.yaml")
    assert resolve_model_yaml(tmp_path / "other-s.yaml")["scale"] == "s"
    assert resolve_model_yaml(tmp_path / "mine.yaml")["scale"] == ""  # unscaled: parse_model takes the first
    model = YOLOLAT(tmp_path / "mine-s.yaml")
    assert model.model.yaml["scale"] == "s"
    assert model.model.model[16].cv2.conv.out_channels == 128  # 256 x width 0.5


@pytest.mark.parametrize(
    ("name", "error", "message"),
    [
        ("yolo-lat-pico-n.yaml", ValueError, "no scale 'n'"),
        ("yolo-lat-q.yaml", FileNotFoundError, "yolo-lat-q"),
        ("yolo-lat-n.pt.txt", ValueError, "model .yaml"),
    ],
)
def test_bad_names_fail_clearly(name, error, message):
    with pytest.raises(error, match=message):
        resolve_model_yaml(name)


def test_yololat_is_a_yolo_with_the_yolo_lat_trainer():
    model = YOLOLAT("yolo-lat-n.yaml")
    assert isinstance(model, YOLO) and model.task == "detect"
    assert model.task_map["detect"]["trainer"] is YOLOLATDetectionTrainer
    _, parameters, _, gflops = model.info()
    assert parameters == sum(p.numel() for p in model.model.parameters()) and gflops > 0


def test_ultralytics_yolo_builds_yolo_lat_yaml_after_import():
    """The registration is global: plain YOLO parses a YOLO-LAT YAML file (scale from the table)."""
    model = YOLO(CFG_DIR / "yolo-lat.yaml")
    assert any(isinstance(m, C2fELA) for m in model.model.modules())


def test_import_yolo_lat_nn_registers_in_a_fresh_process():
    # `import yolo_lat` alone registers nothing (it has no side effects); the blocks' package does
    script = (
        "import yolo_lat.nn\nfrom ultralytics.nn import tasks\n"
        "print(tasks.parse_model.__yolo_lat_shim__, tasks.C2PSAELA.__module__)"
    )
    completed = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env={**os.environ, "YOLO_OFFLINE": "1"}
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert completed.stdout.split() == ["True", "yolo_lat.nn.blocks"]


def test_predict_on_a_real_image():
    model = YOLOLAT("yolo-lat-n.yaml")
    results = model.predict(str(ASSETS / "bus.jpg"), imgsz=160, conf=0.0, max_det=10, verbose=False)
    boxes = results[0].boxes
    assert boxes.data.shape == (10, 6) and torch.isfinite(boxes.data).all()
    assert results[0].orig_shape == (1080, 810)


@pytest.mark.slow
def test_val_and_onnx_export(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a YAML-built model exports next to its name, i.e. into the working directory
    data = write_tiny_dataset(tmp_path / "data")
    model = YOLOLAT("yolo-lat-pico.yaml")
    metrics = model.val(
        data=str(data), imgsz=64, batch=2, device="cpu", plots=False, verbose=False, project=str(tmp_path)
    )
    assert 0.0 <= metrics.box.map <= 1.0
    onnx_file = model.export(format="onnx", imgsz=64, simplify=False)
    assert Path(onnx_file).resolve().parent == tmp_path.resolve()
    exported = YOLOLAT(onnx_file)
    result = exported.predict(str(ASSETS / "bus.jpg"), imgsz=64, verbose=False)[0]
    assert result.boxes.data.shape[-1] == 6
    reference = model.predict(str(ASSETS / "bus.jpg"), imgsz=64, conf=0.0, max_det=5, verbose=False)[0]
    onnx_result = exported.predict(str(ASSETS / "bus.jpg"), imgsz=64, conf=0.0, max_det=5, verbose=False)[0]
    assert torch.allclose(onnx_result.boxes.data, reference.boxes.data, atol=1e-2)  # measured max diff 2e-8
