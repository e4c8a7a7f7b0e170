"""The embedded detection dataset: coloured shapes on cluttered backgrounds, generated offline from a seed.

What an image looks like: a smooth multi-colour gradient with blotchy texture, crossed by distractor clutter
(thin straight lines, scribbles, long thin ellipses and small dots, some half-transparent), holding 0 to
``max_objects`` filled shapes of six classes (circle, square, triangle, star, cross, ring) in random colours
(chosen to contrast with the background under them), sizes (``min_size``..``max_size`` of the short image side,
log-uniform), rotations and slight stretch, with a shading gradient across each shape and sensor-like noise on
top. A fraction ``empty_fraction`` of the images holds clutter only (background images, empty label files).
Distractors are designed not to look like any class: lines and scribbles are thin, ellipses have an axis ratio of
3 or more, dots are smaller than half the smallest shape.

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
    >>> from yolo_lat.datasets.synth import generate
    >>> data_yaml = generate("runs/data/shapes", n_train=400, n_val=100, imgsz=160, seed=0)
    >>> data_yaml.name
    'data.yaml'
"""

from __future__ import annotations

import json
import math
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import yaml

from yolo_lat.datasets.coco_json import ANNOTATIONS_FILE, yolo_to_coco

#: Where ``yolo-lat data synth`` writes by default (``runs/`` is git-ignored; never inside the package folder).
DEFAULT_PATH = Path("runs/data/shapes")

#: Class names, in class-id order.
SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "star", "cross", "ring")

_SPLITS = {"train": 0, "val": 1}  # part of each image's seed
_SUBPIXEL_BITS = 4  # OpenCV fixed-point drawing: coordinates in 1/16 pixel
_VISIBLE_ALPHA = 128  # a pixel belongs to a shape when its coverage is at least one half


@dataclass(frozen=True)
class SynthSettings:
    """Everything that shapes the generated dataset; stored under ``synth:`` in the data YAML.

    Args:
        n_train: Number of training images.
        n_val: Number of validation images.
        imgsz: Long side of every image in pixels.
        seed: Random seed; the same settings give byte-identical files.
        max_objects: Most shapes in one image (at least 1 in a non-empty image).
        min_size: Smallest shape as a fraction of the short image side.
        max_size: Largest shape as a fraction of the short image side.
        min_visible: A shape less visible than this (fraction of its own area) is removed from the scene.
        empty_fraction: Share of images with clutter only.
        clutter: Mean number of distractors per image (Poisson).
        aspect: Largest width/height (or height/width) ratio; 1 makes square images.
        image_format: ``jpg`` or ``png``.
        jpeg_quality: JPEG quality, 1-100.

    Example:
        >>> SynthSettings(n_train=8, n_val=4).imgsz
        160
    """

    n_train: int = 400
    n_val: int = 100
    imgsz: int = 160
    seed: int = 0
    max_objects: int = 6
    min_size: float = 0.14
    max_size: float = 0.42
    min_visible: float = 0.6
    empty_fraction: float = 0.05
    clutter: float = 6.0
    aspect: float = 1.0
    image_format: str = "jpg"
    jpeg_quality: int = 95

    def check(self) -> None:
        """Raise ``ValueError`` (one line) for a setting outside its valid range."""
        rules = [
            (self.n_train >= 1, "n_train must be >= 1"),
            (self.n_val >= 1, "n_val must be >= 1"),
            (32 <= self.imgsz <= 4096, "imgsz must be in 32..4096"),
            (self.max_objects >= 1, "max_objects must be >= 1"),
            (0.02 <= self.min_size <= self.max_size <= 0.9, "need 0.02 <= min_size <= max_size <= 0.9"),
            (0.0 < self.min_visible <= 1.0, "min_visible must be in (0, 1]"),
            (0.0 <= self.empty_fraction <= 1.0, "empty_fraction must be in [0, 1]"),
            (0.0 <= self.clutter <= 100.0, "clutter must be in [0, 100]"),
            (1.0 <= self.aspect <= 4.0, "aspect must be in [1, 4]"),
            (self.image_format in ("jpg", "png"), "image_format must be jpg or png"),
            (1 <= self.jpeg_quality <= 100, "jpeg_quality must be in 1..100"),
        ]
        for ok, message in rules:
            if not ok:
                raise ValueError(message)
        if self.min_size * self.imgsz / self.aspect < 4:
            raise ValueError(f"min_size={self.min_size} makes shapes under 4 px at imgsz={self.imgsz}")


@dataclass
class Shape:
    """One object: a class, where it sits and how it is painted (pixel units)."""

    class_id: int
    center: tuple[float, float]
    size: float
    stretch: float
    angle: float
    colour: tuple[int, int, int]
    shading: tuple[float, float, float]  # gradient direction (x, y) and strength


@dataclass
class Distractor:
    """One piece of clutter: a polyline or an ellipse, painted with some transparency."""

    kind: str  # "line", "scribble", "ellipse" or "dot"
    points: np.ndarray  # (N, 2) polyline points, or (1, 2) centre for ellipse/dot
    axes: tuple[float, float]
    angle: float
    thickness: int
    colour: tuple[int, int, int]
    alpha: float
    over_shapes: bool


@dataclass
class Scene:
    """Everything random about one image, sampled first so it can be painted again without some shapes."""

    width: int
    height: int
    background: np.ndarray  # (H, W, 3) float32
    shapes: list[Shape] = field(default_factory=list)
    distractors: list[Distractor] = field(default_factory=list)
    noise_sigma: float = 3.0
    noise_seed: int = 0
    blur: bool = False


def _unit_outline(class_id: int) -> list[np.ndarray]:
    """Outline polygons of a shape in unit coordinates (about [-0.5, 0.5]^2); a ring is an outer and inner contour."""
    name = SHAPES[class_id]

    def circle(radius: float, n: int = 48) -> np.ndarray:
        t = np.linspace(0, 2 * np.pi, n, endpoint=False)
        return np.stack([radius * np.cos(t), radius * np.sin(t)], 1)

    if name == "circle":
        return [circle(0.5)]
    if name == "ring":
        return [circle(0.5), circle(0.29)]
    if name == "square":
        return [np.array([[-0.4, -0.4], [0.4, -0.4], [0.4, 0.4], [-0.4, 0.4]])]
    if name == "triangle":
        t = np.pi / 2 + np.arange(3) * 2 * np.pi / 3
        return [np.stack([0.5 * np.cos(t), 0.5 * np.sin(t) + 0.08], 1)]  # shifted to centre its box
    if name == "star":
        t = -np.pi / 2 + np.arange(10) * np.pi / 5
        radius = np.where(np.arange(10) % 2 == 0, 0.5, 0.21)
        return [np.stack([radius * np.cos(t), radius * np.sin(t)], 1)]
    if name == "cross":
        a, b = 0.17, 0.5  # half arm width, half arm length
        return [
            np.array(
                [
                    [-a, -b],
                    [a, -b],
                    [a, -a],
                    [b, -a],
                    [b, a],
                    [a, a],
                    [a, b],
                    [-a, b],
                    [-a, a],
                    [-b, a],
                    [-b, -a],
                    [-a, -a],
                ]
            )
        ]
    raise ValueError(f"unknown shape {name}")


def _outline_pixels(shape: Shape) -> list[np.ndarray]:
    """Outline polygons of ``shape`` in fixed-point pixel coordinates for ``cv2.fillPoly``."""
    cos, sin = math.cos(shape.angle), math.sin(shape.angle)
    rotation = np.array([[cos, -sin], [sin, cos]])
    scale = np.array([shape.size, shape.size * shape.stretch])
    out = []
    for unit in _unit_outline(shape.class_id):
        points = (unit * scale) @ rotation.T + np.asarray(shape.center)
        out.append(np.round(points * (1 << _SUBPIXEL_BITS)).astype(np.int32))
    return out


def _shape_alpha(shape: Shape, height: int, width: int) -> np.ndarray:
    """Anti-aliased coverage (uint8, 0-255) of a shape; inner contours (the ring's hole) are cut out."""
    alpha = np.zeros((height, width), np.uint8)
    outlines = _outline_pixels(shape)
    cv2.fillPoly(alpha, [outlines[0]], 255, cv2.LINE_AA, _SUBPIXEL_BITS)
    for hole in outlines[1:]:
        cv2.fillPoly(alpha, [hole], 0, cv2.LINE_AA, _SUBPIXEL_BITS)
    return alpha


def _distractor_alpha(item: Distractor, height: int, width: int) -> np.ndarray:
    """Anti-aliased coverage (uint8) of one distractor."""
    alpha = np.zeros((height, width), np.uint8)
    scale = 1 << _SUBPIXEL_BITS
    if item.kind in ("line", "scribble"):
        points = np.round(item.points * scale).astype(np.int32)
        cv2.polylines(alpha, [points], False, 255, item.thickness, cv2.LINE_AA, _SUBPIXEL_BITS)
    else:
        center = tuple(round(v * scale) for v in item.points[0])
        axes = tuple(max(1, round(v * scale)) for v in item.axes)
        cv2.ellipse(alpha, center, axes, math.degrees(item.angle), 0, 360, 255, -1, cv2.LINE_AA, _SUBPIXEL_BITS)
    return alpha


def _background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Smooth colour gradient plus blotchy texture, float32 (H, W, 3) in 0-255."""
    grid = rng.uniform(20, 235, size=(int(rng.integers(2, 5)), int(rng.integers(2, 5)), 3)).astype(np.float32)
    base = cv2.resize(grid, (width, height), interpolation=cv2.INTER_CUBIC)
    cell = int(rng.integers(4, 12))
    texture = rng.normal(0, rng.uniform(4, 16), size=(height // cell + 2, width // cell + 2, 3)).astype(np.float32)
    texture = cv2.resize(texture, (width, height), interpolation=cv2.INTER_LINEAR)
    return np.clip(base + texture, 0, 255)


def _contrasting_colour(rng: np.random.Generator, under: np.ndarray) -> tuple[int, int, int]:
    """A saturated random colour (BGR) far enough from ``under`` (the mean background colour below a shape)."""
    best, best_distance = None, -1.0
    for _ in range(24):
        hsv = np.array([[[rng.integers(0, 180), rng.integers(110, 256), rng.integers(70, 256)]]], np.uint8)
        colour = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0].astype(np.float32)
        distance = float(np.linalg.norm(colour - under))
        if distance > best_distance:
            best, best_distance = colour, distance
        if distance >= 110:
            break
    return tuple(int(v) for v in best)


def sample_scene(rng: np.random.Generator, settings: SynthSettings) -> Scene:
    """Draw all the random choices for one image.

    Args:
        rng: The image's own generator.
        settings: Dataset settings.

    Returns:
        A :class:`Scene` to paint with :func:`render`.

    Example:
        >>> scene = sample_scene(np.random.default_rng(0), SynthSettings())
        >>> (scene.width, scene.height)
        (160, 160)
    """
    ratio = math.exp(rng.uniform(-math.log(settings.aspect), math.log(settings.aspect)))
    width = settings.imgsz if ratio >= 1 else round(settings.imgsz * ratio)
    height = settings.imgsz if ratio < 1 else round(settings.imgsz / ratio)
    scene = Scene(width=width, height=height, background=_background(rng, height, width))
    short = min(width, height)

    for _ in range(int(rng.poisson(settings.clutter))):
        kind = str(rng.choice(["line", "scribble", "ellipse", "dot"], p=[0.35, 0.2, 0.25, 0.2]))
        colour = tuple(int(v) for v in rng.integers(0, 256, 3))
        alpha, angle = float(rng.uniform(0.35, 1.0)), float(rng.uniform(0, np.pi))
        if kind == "line":
            points = rng.uniform(0, 1, size=(2, 2)) * [width, height]
            axes, thickness = (0.0, 0.0), int(rng.integers(1, 3))
        elif kind == "scribble":
            steps = rng.normal(0, 0.08 * short, size=(int(rng.integers(4, 9)), 2)).cumsum(0)
            points = steps + rng.uniform(0, 1, size=2) * [width, height]
            axes, thickness = (0.0, 0.0), int(rng.integers(1, 3))
        elif kind == "ellipse":  # long and thin: never mistaken for a circle
            major = rng.uniform(settings.min_size, settings.max_size) * short / 2
            points = rng.uniform(0, 1, size=(1, 2)) * [width, height]
            axes, thickness = (major, major / rng.uniform(3.0, 6.0)), -1
        else:  # dot: smaller than half the smallest shape
            points = rng.uniform(0, 1, size=(1, 2)) * [width, height]
            radius = rng.uniform(0.05, 0.22) * settings.min_size * short
            axes, thickness = (radius, radius), -1
        over = kind in ("line", "scribble") and rng.random() < 1 / 3
        scene.distractors.append(Distractor(kind, points, axes, angle, thickness, colour, alpha, over))

    n_shapes = 0 if rng.random() < settings.empty_fraction else int(rng.integers(1, settings.max_objects + 1))
    log_min, log_max = math.log(settings.min_size * short), math.log(settings.max_size * short)
    for _ in range(n_shapes):
        size = math.exp(rng.uniform(log_min, log_max))
        stretch = float(rng.uniform(0.85, 1.15))
        half_w, half_h = size / 2, size * stretch / 2
        reach = math.hypot(half_w, half_h)  # keeps the rotated shape inside the image
        cx = float(rng.uniform(min(reach, width / 2), max(width - reach, width / 2)))
        cy = float(rng.uniform(min(reach, height / 2), max(height - reach, height / 2)))
        x0, x1 = int(max(cx - half_w, 0)), int(min(cx + half_w, width)) + 1
        y0, y1 = int(max(cy - half_h, 0)), int(min(cy + half_h, height)) + 1
        under = scene.background[y0:y1, x0:x1].reshape(-1, 3).mean(0)
        direction = rng.uniform(0, 2 * np.pi)
        scene.shapes.append(
            Shape(
                class_id=int(rng.integers(0, len(SHAPES))),
                center=(cx, cy),
                size=size,
                stretch=stretch,
                angle=float(rng.uniform(0, 2 * np.pi)),
                colour=_contrasting_colour(rng, under),
                shading=(math.cos(direction), math.sin(direction), float(rng.uniform(0, 40))),
            )
        )
    scene.noise_sigma = float(rng.uniform(2.0, 7.0))
    scene.noise_seed = int(rng.integers(0, 2**31))
    scene.blur = bool(rng.random() < 0.3)
    return scene


def _paint(
    image: np.ndarray, alpha: np.ndarray, colour: tuple | np.ndarray, opacity: float = 1.0, shading=None
) -> None:
    """Blend ``colour`` (BGR) into ``image`` in place with coverage ``alpha``, optionally with a linear shading.

    Only the bounding rectangle of the non-zero coverage is touched (most shapes and distractors are small).
    ``shading`` is ``(center_x, center_y, size, (gx, gy, strength))``: brightness changes by ``strength`` per
    ``size`` pixels along direction ``(gx, gy)``.
    """
    x, y, w, h = cv2.boundingRect(alpha)
    if w == 0 or h == 0:
        return
    region = image[y : y + h, x : x + w]
    weight = alpha[y : y + h, x : x + w].astype(np.float32)[..., None] * (opacity / 255.0)
    colour = np.asarray(colour, np.float32)
    if shading is not None:
        cx, cy, size, (gx, gy, strength) = shading
        ys, xs = np.mgrid[y : y + h, x : x + w].astype(np.float32)
        ramp = ((xs - cx) * gx + (ys - cy) * gy) * (strength / max(size, 1.0))
        colour = colour + ramp[..., None]
    region *= 1.0 - weight
    region += weight * colour


def render(scene: Scene, keep: list[bool] | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Paint a scene.

    Args:
        scene: From :func:`sample_scene`.
        keep: Which shapes to paint (default all).

    Returns:
        ``image`` (H, W, 3) uint8 BGR, ``owner`` (H, W) int16 with the index of the shape seen at each pixel
        (-1: background or clutter), and ``area`` (n_shapes,) the pixel count of each shape on its own.

    Example:
        >>> image, owner, area = render(sample_scene(np.random.default_rng(0), SynthSettings()))
        >>> image.shape, image.dtype
        ((160, 160, 3), dtype('uint8'))
    """
    h, w = scene.height, scene.width
    keep = keep if keep is not None else [True] * len(scene.shapes)
    image = scene.background.copy()
    owner = np.full((h, w), -1, np.int16)
    area = np.zeros(len(scene.shapes), np.int64)
    for item in (d for d in scene.distractors if not d.over_shapes):
        _paint(image, _distractor_alpha(item, h, w), item.colour, item.alpha)
    for index, shape in enumerate(scene.shapes):
        if not keep[index]:
            continue
        alpha = _shape_alpha(shape, h, w)
        covered = alpha >= _VISIBLE_ALPHA
        area[index] = int(covered.sum())
        _paint(image, alpha, shape.colour, shading=(*shape.center, shape.size, shape.shading))
        owner[covered] = index
    for item in (d for d in scene.distractors if d.over_shapes):
        alpha = _distractor_alpha(item, h, w)
        _paint(image, alpha, item.colour, item.alpha)
        owner[alpha.astype(np.float32) * item.alpha >= _VISIBLE_ALPHA] = -1
    if scene.blur:
        image = cv2.GaussianBlur(image, (3, 3), 0)
    noise = np.random.default_rng(scene.noise_seed).normal(0, scene.noise_sigma, image.shape).astype(np.float32)
    image = np.clip(image + noise, 0, 255).round().astype(np.uint8)
    return image, owner, area


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
        >>> write_preview(Path("runs/data/shapes")).name
        'preview.png'
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
        >>> data_yaml = generate("runs/data/shapes", n_train=64, n_val=16, imgsz=128, seed=1)
        >>> sorted(p.name for p in data_yaml.parent.iterdir())
        ['annotations', 'data.yaml', 'images', 'labels', 'preview.png']
    """
    unknown = set(options) - set(SynthSettings.__dataclass_fields__)
    if unknown:
        raise ValueError(f"unknown synth setting(s): {', '.join(sorted(unknown))}")
    settings = SynthSettings(n_train=n_train, n_val=n_val, imgsz=imgsz, seed=seed, **options)
    settings.check()
    root = Path(path).resolve()
    _prepare_folder(root)
    val_files, val_sizes = [], []
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
            (root / "labels" / split / f"{stem}.txt").write_text("".join(rows))
            if split == "val":
                val_files.append(image_file)
                val_sizes.append((w, h))
    annotations = root / ANNOTATIONS_FILE
    annotations.parent.mkdir(parents=True, exist_ok=True)
    annotations.write_text(json.dumps(yolo_to_coco(val_files, SHAPES, sizes=val_sizes)))
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
        >>> ensure_dataset("runs/data/shapes", n_train=400, seed=0).name  # generates on the first call only
        'data.yaml'
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
