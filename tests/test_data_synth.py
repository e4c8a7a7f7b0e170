"""The embedded synthetic dataset: determinism, layout, labels vs pixels, occlusion rule, COCO JSON, CLI."""

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from yolo_lat.args import ArgumentError
from yolo_lat.datasets import DATASETS_DIR
from yolo_lat.datasets import cli as data_cli
from yolo_lat.datasets.coco_json import image_id_for, label_file_for
from yolo_lat.datasets.synth import SHAPES, Scene, Shape, SynthSettings, generate, make_image

SMALL = dict(n_train=6, n_val=5, imgsz=64)


def _digest(root: Path) -> dict[str, str]:
    """sha256 of every generated file, by relative path."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != "data.yaml"  # data.yaml holds the absolute path
    }


def test_same_seed_gives_identical_bytes_and_other_seed_differs(tmp_path):
    a = generate(tmp_path / "a", seed=3, aspect=1.5, **SMALL).parent
    b = generate(tmp_path / "b", seed=3, aspect=1.5, **SMALL).parent
    c = generate(tmp_path / "c", seed=4, aspect=1.5, **SMALL).parent
    digest_a = _digest(a)
    assert len([k for k in digest_a if k.startswith("images/")]) == 11
    assert len([k for k in digest_a if k.startswith("labels/")]) == 11
    assert digest_a == _digest(b)
    differing = [k for k in digest_a if k.startswith("images/") and digest_a[k] != _digest(c)[k]]
    assert len(differing) == 11
    # image k of val does not depend on the size of train
    d = generate(tmp_path / "d", seed=3, aspect=1.5, n_train=2, n_val=5, imgsz=64).parent
    assert _digest(d)["images/val/000003.jpg"] == digest_a["images/val/000003.jpg"]


def test_layout_yaml_and_labels(tmp_path):
    data_yaml = generate(tmp_path / "shapes", n_train=40, n_val=10, imgsz=96, seed=0, aspect=1.5)
    root = data_yaml.parent
    data = yaml.safe_load(data_yaml.read_text())
    assert data["path"] == str(root) and data["train"] == "images/train" and data["val"] == "images/val"
    assert data["names"] == dict(enumerate(SHAPES)) and len(SHAPES) == 6
    assert data["synth"]["seed"] == 0 and data["synth"]["imgsz"] == 96
    assert (root / "preview.png").is_file()
    classes, counts, sizes, shapes_seen = [], [], [], set()
    for image_file in sorted((root / "images").rglob("*.jpg")):
        image = cv2.imread(str(image_file))
        h, w = image.shape[:2]
        shapes_seen.add((w, h))
        assert max(w, h) == 96 and min(w, h) >= 96 / 1.5 - 1
        rows = [line.split() for line in label_file_for(image_file).read_text().splitlines()]
        counts.append(len(rows))
        for c, cx, cy, bw, bh in rows:
            cx, cy, bw, bh = float(cx), float(cy), float(bw), float(bh)
            classes.append(int(c))
            assert 0 < bw <= 1 and 0 < bh <= 1
            assert -1e-6 <= cx - bw / 2 and cx + bw / 2 <= 1 + 1e-6
            assert -1e-6 <= cy - bh / 2 and cy + bh / 2 <= 1 + 1e-6
            sizes.append(max(bw * w, bh * h) / min(w, h))
    assert set(classes) == set(range(6))  # every class appears in 50 images
    assert max(counts) >= 4 and 0 in counts  # crowded images and at least one background image
    assert len(shapes_seen) > 5  # varied aspect ratios
    # visible box sizes span most of the configured range 0.14-0.42 of the short side (occlusion shrinks some)
    assert min(sizes) < 0.2 and max(sizes) > 0.35


def _plain_scene(shapes: list[Shape], size: int = 100) -> Scene:
    return Scene(width=size, height=size, background=np.full((size, size, 3), 128, np.float32), shapes=shapes)


RED, BLUE = (0, 0, 255), (255, 0, 0)  # BGR


def _shape(class_id: int, center, size: float, colour=RED) -> Shape:
    return Shape(class_id, center, size, 1.0, 0.0, colour, (1.0, 0.0, 0.0))  # no shading


def _extent(image: np.ndarray, colour) -> tuple[int, int, int, int] | None:
    """(x0, y0, x1, y1) of the pixels more than half covered by a pure red or blue shape on grey 128."""
    channel = 2 if colour == RED else 0
    mask = (image[..., channel].astype(int) > 191) & (image[..., 2 - channel].astype(int) < 64)
    ys, xs = np.nonzero(mask)
    return None if len(xs) == 0 else (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)


def _made(monkeypatch, scene: Scene, min_visible: float = 0.6):
    from yolo_lat.datasets import synth

    monkeypatch.setattr(synth, "sample_scene", lambda rng, settings: scene)
    return make_image(np.random.default_rng(0), SynthSettings(min_visible=min_visible))


def test_box_encloses_exactly_the_painted_pixels(monkeypatch):
    image, boxes = _made(monkeypatch, _plain_scene([_shape(0, (40.0, 55.0), 30.0)]))  # circle, diameter 30
    assert len(boxes) == 1 and boxes[0][0] == 0
    assert boxes[0][1:] == _extent(image, RED)
    x0, y0, x1, y1 = boxes[0][1:]
    # geometry: [25, 55] x [40, 70]; OpenCV's anti-aliased fill adds about one pixel (measured 31 px wide)
    assert abs(x0 - 25) <= 1 and abs(y0 - 40) <= 1 and 30 <= x1 - x0 <= 32 and 30 <= y1 - y0 <= 32


def test_occlusion_rule_drops_hidden_shapes_and_shrinks_boxes(monkeypatch):
    # a small star entirely under a later big square: removed, only the square is labelled
    image, boxes = _made(
        monkeypatch, _plain_scene([_shape(3, (50.0, 50.0), 20.0), _shape(1, (50.0, 50.0), 60.0, BLUE)])
    )
    assert boxes == [(1, *_extent(image, BLUE))] and _extent(image, RED) is None
    # a square (side 40, x 30-70) whose left part (to x 37) is under a later square: 82% visible, kept, and its box
    # starts where it becomes visible
    scene = _plain_scene([_shape(1, (50.25, 50.25), 50.0), _shape(1, (17.25, 50.25), 50.0, BLUE)])
    image, boxes = _made(monkeypatch, scene)
    blue, red = sorted(boxes, key=lambda b: b[1])
    # a pixel on the seam belongs to the later square when more than half covered by it, so colour extents
    # and boxes may differ by one pixel there
    assert np.abs(np.subtract(blue[1:], _extent(image, BLUE))).max() <= 1
    assert np.abs(np.subtract(red[1:], _extent(image, RED))).max() <= 1
    assert red[1] == blue[3] and 36 <= red[1] <= 39 and red[3] - red[1] < 36  # starts where the blue one ends
    # the same square 60% covered (visible 0.4 < min_visible 0.6) is removed and the image painted again without
    # it: no unlabelled red fragment is left
    scene = _plain_scene([_shape(1, (50.25, 50.25), 50.0), _shape(1, (26.25, 50.25), 50.0, BLUE)])
    image, boxes = _made(monkeypatch, scene)
    assert boxes == [(1, *_extent(image, BLUE))] and _extent(image, RED) is None
    # with min_visible 0.3 it stays
    _, boxes = _made(monkeypatch, scene, min_visible=0.3)
    assert len(boxes) == 2


def test_coco_json_matches_labels_and_ultralytics_conventions(tmp_path):
    root = generate(tmp_path / "shapes", n_train=2, n_val=8, imgsz=80, seed=5, aspect=1.6).parent
    coco = json.loads((root / "annotations" / "instances_val.json").read_text())
    assert [c["id"] for c in coco["categories"]] == [1, 2, 3, 4, 5, 6]  # Ultralytics' class_map: class + 1
    assert [c["name"] for c in coco["categories"]] == list(SHAPES)
    by_id = {im["id"]: im for im in coco["images"]}
    assert len(by_id) == 8
    n_boxes = 0
    for image_file in sorted((root / "images" / "val").glob("*.jpg")):
        image_id = image_id_for(image_file)
        assert isinstance(image_id, int) and image_id == int(image_file.stem)
        h, w = cv2.imread(str(image_file)).shape[:2]
        assert (by_id[image_id]["width"], by_id[image_id]["height"]) == (w, h)
        anns = [a for a in coco["annotations"] if a["image_id"] == image_id]
        rows = [list(map(float, r.split())) for r in label_file_for(image_file).read_text().splitlines()]
        assert len(anns) == len(rows)
        for ann, (c, cx, cy, bw, bh) in zip(anns, rows):
            n_boxes += 1
            assert ann["category_id"] == int(c) + 1 and ann["iscrowd"] == 0
            expected = [(cx - bw / 2) * w, (cy - bh / 2) * h, bw * w, bh * h]
            assert np.allclose(ann["bbox"], expected, atol=1e-3)  # 4-decimal rounding
            assert abs(ann["area"] - ann["bbox"][2] * ann["bbox"][3]) < 1e-2
    assert n_boxes == len(coco["annotations"]) > 0


def test_cli_synth_help_and_errors(tmp_path, capsys):
    assert data_cli.main(["synth", "--help"]) == 0
    assert "n_val=100" in capsys.readouterr().out
    out = tmp_path / "s"
    assert data_cli.main(["synth", f"path={out}", "n=3", "n_val=2", "imgsz=64", "preview=False"]) == 0
    assert f"data: {out / 'data.yaml'}" in capsys.readouterr().out
    assert len(list((out / "images" / "train").glob("*.jpg"))) == 3 and not (out / "preview.png").exists()
    # regenerating into a previous synthetic dataset replaces it
    assert data_cli.main(["synth", f"path={out}", "n=2", "n_val=2", "imgsz=64", "image_format=png"]) == 0
    assert sorted(p.name for p in (out / "images" / "train").iterdir()) == ["000001.png", "000002.png"]
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(ArgumentError, match="not empty"):
        data_cli.main(["synth", f"path={foreign}"])
    with pytest.raises(ArgumentError, match="n_train must be >= 1"):
        data_cli.main(["synth", f"path={tmp_path / 'x'}", "n=0"])
    with pytest.raises(ArgumentError, match=r"unknown argument 'sed'.*'seed'"):
        data_cli.main(["synth", "sed=1"])
    with pytest.raises(ArgumentError, match="expected an integer"):
        data_cli.main(["synth", "n=many"])
    with pytest.raises(ArgumentError, match="unknown data submode 'synt'"):
        data_cli.main(["synt"])


@pytest.mark.slow
def test_cli_subprocess_synth_then_check(tmp_path):
    env = {**os.environ, "YOLO_OFFLINE": "1"}
    out = tmp_path / "shapes"
    cmd = [sys.executable, "-m", "yolo_lat.datasets.cli"]
    made = subprocess.run(
        [*cmd, "synth", f"path={out}", "n=4", "n_val=3", "imgsz=64"], capture_output=True, text=True, env=env
    )
    assert made.returncode == 0, made.stderr
    assert "wrote 7 images (4 train, 3 val)" in made.stdout
    checked = subprocess.run([*cmd, "check", f"data={out}"], capture_output=True, text=True, env=env)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "val: 3 images, 3 label files" in checked.stdout and "result: OK" in checked.stdout


def test_datasets_dir_ships_coco_yaml():
    data = yaml.safe_load((DATASETS_DIR / "coco.yaml").read_text())
    assert data["path"] == "coco" and data["train"] == "train2017.txt" and data["val"] == "val2017.txt"
    assert len(data["names"]) == 80 and data["names"][0] == "person" and data["names"][79] == "toothbrush"
    assert "images.cocodataset.org/zips/val2017.zip" in data["download"].replace("{split}2017", "val2017")
    compile(data["download"], "coco.yaml:download", "exec")  # the recipe is valid Python


def test_ensure_dataset_generates_once_and_again_when_settings_change(tmp_path):
    from yolo_lat.datasets.synth import ensure_dataset

    data_yaml = ensure_dataset(tmp_path / "s", n_train=3, n_val=2, imgsz=64, seed=0, preview=False)
    first = data_yaml.parent / "images" / "val" / "000001.jpg"
    stamp = first.stat().st_mtime_ns
    assert ensure_dataset(tmp_path / "s", n_train=3, n_val=2, imgsz=64, seed=0) == data_yaml
    assert first.stat().st_mtime_ns == stamp  # reused, not rewritten
    old = first.read_bytes()
    ensure_dataset(tmp_path / "s", n_train=3, n_val=2, imgsz=64, seed=1, preview=False)
    assert yaml.safe_load(data_yaml.read_text())["synth"]["seed"] == 1 and first.read_bytes() != old
