"""The embedded detection dataset: coloured shapes on cluttered backgrounds, generated offline from a seed.

What an image looks like, and how its random scene is sampled and painted, is in :mod:`yolo_lat.datasets.scenes`;
this module keeps the shapes that stay visible, labels them and writes the dataset.

Occlusion: shapes are painted in order, later ones over earlier ones, and a third of the lines cross over the
shapes. The label box of a shape is the box around its *visible* pixels (COCO's convention for a box). A shape with
less than ``min_visible`` of its own area still visible is removed from the scene and the image is painted again
without it, so there are no unlabelled shape fragments; removing a shape can only uncover the others.

Determinism: every image has its own random stream seeded by ``(seed, split, index)``, so the same seed gives
byte-identical files (same numpy/OpenCV versions), and image ``k`` of a split does not depend on how many images
the other split has.

Layout (Ultralytics YOLO; numeric file stems so ``image_id = int(stem)`` as Ultralytics writes in
``predictions.json``)::

    <path>/data.yaml                      path (absolute), train, val, names, synth (the settings used)
    <path>/images/{train,val}/000001.jpg
    <path>/labels/{train,val}/000001.txt  "class cx cy w h" normalised to 0-1, one row per shape
    <path>/annotations/instances_val.json COCO ground truth of val (category_id = class + 1)
    <path>/preview.png                    a grid of val images with their boxes

Example:
    >>> import tempfile
    >>> from yolo_lat.datasets.synth import generate
    >>> data_yaml = generate(tempfile.mkdtemp(), n_train=4, n_val=2, imgsz=64, seed=0, preview=False)
    >>> data_yaml.name, sorted(f.name for f in (data_yaml.parent / "labels" / "val").iterdir())
    ('data.yaml', ['000001.txt', '000002.txt'])
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import yaml

from yolo_lat.datasets.coco_json import ANNOTATIONS_FILE, yolo_to_coco
from yolo_lat.datasets.scenes import SHAPES, Scene, Shape, SynthSettings, render, sample_scene

__all__ = [  # SHAPES, Scene, Shape and SynthSettings are imported from here too
    "DEFAULT_PATH",
    "SHAPES",
    "Scene",
    "Shape",
    "SynthSettings",
    "ensure_dataset",
    "generate",
    "make_image",
    "sample_scene",
    "write_preview",
]

#: Where ``yolo-lat data synth`` writes by default (``runs/`` is git-ignored; never inside the package folder).
DEFAULT_PATH = Path("runs/data/shapes")

_SPLITS = {"train": 0, "val": 1}  # part of each image's seed


def make_image(rng: np.random.Generator, settings: SynthSettings) -> tuple[np.ndarray, list[tuple[int, ...]]]:
    """Sample and paint one image, dropping shapes that end up less than ``min_visible`` visible.

    Args:
        rng: The image's own generator.
        settings: Dataset settings.

    Returns:
        The BGR image and its boxes ``(class_id, x0, y0, x1, y1)`` in pixels (x1, y1 exclusive) around the
        visible pixels of each kept shape.

    Example:
        >>> image, boxes = make_image(np.random.default_rng(3), SynthSettings())
        >>> all(0 <= x0 < x1 <= 160 for _, x0, _, x1, _ in boxes)
        True
    """
    scene = sample_scene(rng, settings)
    keep = [True] * len(scene.shapes)
    while True:  # each pass removes at least one shape, so this ends
        image, owner, area = render(scene, keep)
        visible = np.bincount(owner[owner >= 0].ravel(), minlength=len(scene.shapes))
        hidden = [i for i, k in enumerate(keep) if k and (area[i] == 0 or visible[i] < settings.min_visible * area[i])]
        if not hidden:
            break
        for i in hidden:
            keep[i] = False
    boxes = []
    for index, shape in enumerate(scene.shapes):
        if keep[index]:
            ys, xs = np.nonzero(owner == index)
            boxes.append((shape.class_id, int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1))
    return image, boxes


def _prepare_folder(root: Path) -> None:
    """Make ``root`` ready: empty, or a previous synthetic dataset whose generated parts are removed."""
    if root.exists() and not root.is_dir():
        raise FileExistsError(f"{root} exists and is not a folder")
    if root.is_dir() and any(root.iterdir()):
        previous = root / "data.yaml"
        try:
            is_ours = previous.is_file() and "synth" in (yaml.safe_load(previous.read_text()) or {})
        except yaml.YAMLError:
            is_ours = False
        if not is_ours:
            raise FileExistsError(f"{root} is not empty and holds no synthetic dataset; choose an empty or new path")
        for name in ("images", "labels", "annotations"):
            shutil.rmtree(root / name, ignore_errors=True)
        for name in ("data.yaml", "preview.png"):
            (root / name).unlink(missing_ok=True)
    root.mkdir(parents=True, exist_ok=True)


def _write_image(file: Path, image: np.ndarray, settings: SynthSettings) -> None:
    params = [cv2.IMWRITE_JPEG_QUALITY, settings.jpeg_quality] if settings.image_format == "jpg" else []
    ok, encoded = cv2.imencode(f".{settings.image_format}", image, params)
    if not ok:
        raise OSError(f"OpenCV could not encode {file}")
    file.write_bytes(encoded.tobytes())


def write_preview(root: Path, split: str = "val", count: int = 16, columns: int = 4) -> Path:
    """Save a grid of images with their label boxes and class names as ``<root>/preview.png``.

    Args:
        root: Dataset folder (made by :func:`generate`).
        split: Which split to show.
        count: Number of images in the grid.
        columns: Images per row.

    Returns:
        The path of the preview image.

    Example:
        >>> import tempfile
        >>> root = generate(tempfile.mkdtemp(), n_train=4, n_val=2, imgsz=64, seed=0, preview=False).parent
        >>> preview = write_preview(root)
        >>> preview.name, cv2.imread(str(preview)).shape  # one row of four 64-pixel tiles, each with a 2-pixel border
        ('preview.png', (66, 264, 3))
    """
    files = sorted((root / "images" / split).glob("*.*"))[:count]
    tiles, side = [], 0
    for file in files:
        image = cv2.imread(str(file))
        h, w = image.shape[:2]
        side = max(side, h, w)
        for row in (root / "labels" / split / f"{file.stem}.txt").read_text().splitlines():
            c, cx, cy, bw, bh = (float(v) for v in row.split())
            x0, y0 = int((cx - bw / 2) * w), int((cy - bh / 2) * h)
            x1, y1 = int((cx + bw / 2) * w), int((cy + bh / 2) * h)
            cv2.rectangle(image, (x0, y0), (x1 - 1, y1 - 1), (255, 255, 255), 1)
            cv2.putText(image, SHAPES[int(c)], (x0, max(y0 - 2, 8)), cv2.FONT_HERSHEY_PLAIN, 0.7, (255, 255, 255))
        tiles.append(image)
    grid_rows = []
    for start in range(0, len(tiles), columns):
        row = [
            cv2.copyMakeBorder(t, 0, side - t.shape[0] + 2, 0, side - t.shape[1] + 2, cv2.BORDER_CONSTANT)
            for t in tiles[start : start + columns]
        ]
        row += [np.zeros_like(row[0])] * (columns - len(row))
        grid_rows.append(np.hstack(row))
    out = root / "preview.png"
    cv2.imwrite(str(out), np.vstack(grid_rows))
    return out


def generate(
    path: str | Path,
    n_train: int = 400,
    n_val: int = 100,
    imgsz: int = 160,
    seed: int = 0,
    preview: bool = True,
    **options: Any,
) -> Path:
    """Generate the synthetic shapes dataset and return its data YAML.

    Args:
        path: Output folder; must be empty, new, or a previous synthetic dataset (which is replaced).
        n_train: Training images.
        n_val: Validation images.
        imgsz: Long image side in pixels.
        seed: Random seed (same seed, same bytes).
        preview: Also write ``preview.png``.
        **options: Any other :class:`SynthSettings` field (``max_objects``, ``min_size``, ``clutter``, ...).

    Returns:
        Path of ``<path>/data.yaml``.

    Raises:
        ValueError: A setting out of range. FileExistsError: ``path`` holds something else.

    Example:
        >>> import tempfile
        >>> data_yaml = generate(tempfile.mkdtemp(), n_train=4, n_val=2, imgsz=64, seed=1)
        >>> sorted(p.name for p in data_yaml.parent.iterdir())
        ['annotations', 'data.yaml', 'images', 'labels', 'preview.png']
        >>> len(list((data_yaml.parent / "images" / "train").iterdir())), yaml.safe_load(data_yaml.read_text())["val"]
        (4, 'images/val')
    """
    unknown = set(options) - set(SynthSettings.__dataclass_fields__)
    if unknown:
        raise ValueError(f"unknown synth setting(s): {', '.join(sorted(unknown))}")
    settings = SynthSettings(n_train=n_train, n_val=n_val, imgsz=imgsz, seed=seed, **options)
    settings.check()
    root = Path(path).resolve()
    _prepare_folder(root)
    val_files, val_sizes, val_labels = [], [], []
    for split, count in (("train", settings.n_train), ("val", settings.n_val)):
        (root / "images" / split).mkdir(parents=True)
        (root / "labels" / split).mkdir(parents=True)
        for index in range(count):
            rng = np.random.default_rng(np.random.SeedSequence(settings.seed, spawn_key=(_SPLITS[split], index)))
            image, boxes = make_image(rng, settings)
            h, w = image.shape[:2]
            stem = f"{index + 1:06d}"
            image_file = root / "images" / split / f"{stem}.{settings.image_format}"
            _write_image(image_file, image, settings)
            rows = [
                f"{c} {(x0 + x1) / 2 / w:.6f} {(y0 + y1) / 2 / h:.6f} {(x1 - x0) / w:.6f} {(y1 - y0) / h:.6f}\n"
                for c, x0, y0, x1, y1 in boxes
            ]
            label_file = root / "labels" / split / f"{stem}.txt"
            label_file.write_text("".join(rows))
            if split == "val":
                val_files.append(image_file)
                val_sizes.append((w, h))
                val_labels.append(label_file)
    annotations = root / ANNOTATIONS_FILE
    annotations.parent.mkdir(parents=True, exist_ok=True)
    annotations.write_text(json.dumps(yolo_to_coco(val_files, SHAPES, sizes=val_sizes, label_files=val_labels)))
    data = {
        "path": str(root),
        "train": "images/train",
        "val": "images/val",
        "names": dict(enumerate(SHAPES)),
        "synth": asdict(settings),
    }
    header = (
        "# Synthetic shapes dataset made by `yolo-lat data synth` (yolo_lat.datasets.synth); regenerate it with the\n"
        "# settings under `synth:`. COCO-format val ground truth: annotations/instances_val.json.\n"
    )
    data_yaml = root / "data.yaml"
    data_yaml.write_text(header + yaml.safe_dump(data, sort_keys=False))
    if preview:
        write_preview(root)
    return data_yaml


def ensure_dataset(path: str | Path = DEFAULT_PATH, **settings: Any) -> Path:
    """The data YAML of the synthetic dataset at ``path``, generated only if missing or made with other settings.

    Args:
        path: Dataset folder.
        **settings: :func:`generate` arguments (``n_train``, ``n_val``, ``imgsz``, ``seed``, any
            :class:`SynthSettings` field); omitted ones take their defaults.

    Returns:
        Path of ``<path>/data.yaml``.

    Example:
        >>> import tempfile
        >>> path = tempfile.mkdtemp()
        >>> data_yaml = ensure_dataset(path, n_train=4, n_val=2, imgsz=64, preview=False)  # generated
        >>> _ = data_yaml.write_text(data_yaml.read_text() + "# kept\\n")
        >>> again = ensure_dataset(path, n_train=4, n_val=2, imgsz=64, preview=False)  # same settings: kept
        >>> again.read_text().endswith("# kept\\n")
        True
        >>> other = ensure_dataset(path, n_train=4, n_val=2, imgsz=64, seed=1, preview=False)  # other seed: made again
        >>> other.read_text().endswith("# kept\\n")
        False
    """
    preview = settings.pop("preview", True)
    wanted = asdict(SynthSettings(**settings))
    data_yaml = Path(path).resolve() / "data.yaml"
    try:
        existing = yaml.safe_load(data_yaml.read_text()) if data_yaml.is_file() else None
    except yaml.YAMLError:
        existing = None
    complete = (
        isinstance(existing, dict)
        and existing.get("synth") == wanted
        and existing.get("path") == str(data_yaml.parent)
        and (data_yaml.parent / ANNOTATIONS_FILE).is_file()
        and len(list((data_yaml.parent / "images" / "val").glob("*"))) == wanted["n_val"]
    )
    if complete:
        return data_yaml
    return generate(path, preview=preview, **settings)
