"""Training end to end on a tiny generated dataset: every model trains, checkpoints reload anywhere.

The dataset (coloured rectangles on grey, YOLO labels) is written by the test itself so it never
depends on a download or on the project's dataset generator.
"""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from ultralytics.utils import ASSETS

from yolo_lat import YOLOLAT
from yolo_lat.cfg import model_names


def write_tiny_dataset(root: Path, images: int = 4, size: int = 64, seed: int = 0) -> Path:
    """Write ``images`` train and ``images // 2`` val pictures of 2 classes; returns the data YAML.

    Args:
        root: empty folder to fill.
        images: number of training images.
        size: side of the square images in pixels.
        seed: seed of the rectangle layout.

    Returns:
        Path of ``data.yaml`` (classes ``red`` and ``blue``).
    """
    rng = np.random.default_rng(seed)
    for split, count in (("train", images), ("val", max(images // 2, 1))):
        (root / "images" / split).mkdir(parents=True, exist_ok=True)
        (root / "labels" / split).mkdir(parents=True, exist_ok=True)
        for index in range(count):
            image = np.full((size, size, 3), 114, np.uint8)
            labels = []
            for _ in range(2):
                cls = int(rng.integers(0, 2))
                w, h = (int(v) for v in rng.integers(size // 6, size // 2, 2))
                x0, y0 = int(rng.integers(0, size - w)), int(rng.integers(0, size - h))
                cv2.rectangle(image, (x0, y0), (x0 + w, y0 + h), (0, 0, 255) if cls == 0 else (255, 0, 0), -1)
                labels.append(
                    f"{cls} {(x0 + w / 2) / size:.6f} {(y0 + h / 2) / size:.6f} {w / size:.6f} {h / size:.6f}"
                )
            cv2.imwrite(str(root / "images" / split / f"{index}.png"), image)
            (root / "labels" / split / f"{index}.txt").write_text("\n".join(labels) + "\n")
    data = root / "data.yaml"
    data.write_text(f"path: {root}\ntrain: images/train\nval: images/val\nnames:\n  0: red\n  1: blue\n")
    return data


TRAIN_ARGS = {"epochs": 1, "imgsz": 64, "batch": 2, "workers": 0, "device": "cpu", "amp": False, "verbose": False}


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory) -> Path:
    return write_tiny_dataset(tmp_path_factory.mktemp("tiny"))


@pytest.fixture
def no_network(monkeypatch):
    """Refuse every DNS lookup and connection (as on an offline machine) and record the attempts."""
    attempts = []

    def refuse_lookup(host, *args, **kwargs):
        attempts.append(host)
        raise OSError(f"network disabled in tests ({host})")

    def refuse_connect(self, address):
        attempts.append(address)
        raise OSError(f"network disabled in tests ({address})")

    monkeypatch.setattr(socket, "getaddrinfo", refuse_lookup)
    monkeypatch.setattr(socket.socket, "connect", refuse_connect)
    return attempts


@pytest.mark.slow
@pytest.mark.parametrize("name", model_names())
def test_one_epoch_train(name, tiny_data, tmp_path, no_network):
    model = YOLOLAT(name)
    model.train(data=str(tiny_data), project=str(tmp_path), name="run", plots=False, **TRAIN_ARGS)
    best = tmp_path / "run" / "weights" / "best.pt"
    assert best.is_file()
    assert model.overrides["model"] == str(best) and model.model.yaml["yaml_file"] == name
    assert model.model.names == {0: "red", 1: "blue"}
    results = model.predict(np.full((64, 64, 3), 114, np.uint8), imgsz=64, verbose=False)
    assert len(results) == 1 and results[0].boxes.data.shape[-1] == 6
    assert set(no_network) <= {"github.com"}  # at most Ultralytics' Arial.ttf lookup (see test below)


@pytest.mark.slow
def test_train_with_plots_offline(tiny_data, tmp_path, no_network):
    """plots=True works offline.

    Ultralytics (8.4.190) looks Arial.ttf up once per process when it checks a dataset, plots or not,
    even with YOLO_OFFLINE=1 (check_det_dataset -> check_font -> a HEAD request to github.com, 3 s
    timeout); refused here, it falls back to PIL's default font. Nothing else may reach the network.
    """
    model = YOLOLAT("yolo-lat-pico.yaml")
    model.train(data=str(tiny_data), project=str(tmp_path), name="run", plots=True, **TRAIN_ARGS)
    run = tmp_path / "run"
    for plot in ("labels.jpg", "train_batch0.jpg", "results.png", "val_batch0_pred.jpg"):
        assert (run / plot).is_file(), plot
    assert set(no_network) <= {"github.com"}  # only the font lookup, refused here, nothing else


_RELOAD_SCRIPT = """
import json, sys
import torch
best, image = sys.argv[1], sys.argv[2]
# globals a weights-only load must be allowed to build, listed before anything registers them
needed = sorted(n for n in torch.serialization.get_unsafe_globals_in_checkpoint(best) if n.startswith("yolo_lat"))
from ultralytics.utils import SAFE_LOAD
{imports}
result = {model}(best).predict(image, imgsz=64, conf=0.0, max_det=5, verbose=False)[0]
print(json.dumps({{"safe_load": SAFE_LOAD, "boxes": result.boxes.data.tolist(), "yolo_lat_globals": needed}}))
"""


def _predict_in_fresh_process(best: Path, imports: str, model: str, safe_load: bool) -> dict:
    environment = {**os.environ, "YOLO_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    environment["ULTRALYTICS_SAFE_LOAD"] = "1" if safe_load else "0"
    script = _RELOAD_SCRIPT.format(imports=imports, model=model)
    completed = subprocess.run(
        [sys.executable, "-c", script, str(best), str(ASSETS / "bus.jpg")],
        capture_output=True,
        text=True,
        env=environment,
        cwd=best.parent,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    return json.loads(completed.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_checkpoint_reloads_in_fresh_process_also_weights_only(tiny_data, tmp_path):
    model = YOLOLAT("yolo-lat-n.yaml")
    model.train(data=str(tiny_data), project=str(tmp_path), name="run", plots=False, **TRAIN_ARGS)
    best = tmp_path / "run" / "weights" / "best.pt"
    here = model.predict(str(ASSETS / "bus.jpg"), imgsz=64, conf=0.0, max_det=5, verbose=False)[0].boxes.data

    runs = {
        "yolo_lat": _predict_in_fresh_process(best, "import yolo_lat\nfrom yolo_lat import YOLOLAT", "YOLOLAT", False),
        # plain Ultralytics: unpickling the checkpoint imports yolo_lat by itself
        "ultralytics": _predict_in_fresh_process(best, "from ultralytics import YOLO", "YOLO", False),
        # ULTRALYTICS_SAFE_LOAD=1: torch.load(weights_only=True) with the blocks on the allow-list
        "weights_only": _predict_in_fresh_process(
            best, "import yolo_lat\nfrom yolo_lat import YOLOLAT", "YOLOLAT", True
        ),
    }
    assert runs["weights_only"]["safe_load"] is True and runs["yolo_lat"]["safe_load"] is False
    assert "yolo_lat.nn.blocks.C2fELA" in runs["weights_only"]["yolo_lat_globals"]  # the allow-list was needed
    for name, run in runs.items():
        boxes = torch.tensor(run["boxes"])
        assert boxes.shape == here.shape, name
        assert torch.allclose(boxes, here.cpu(), atol=1e-3), name  # same weights, same boxes (measured diff 0)
