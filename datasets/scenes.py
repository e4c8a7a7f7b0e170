"""One image of the embedded detection dataset: sampling its random scene and painting it.

What an image looks like: a smooth multi-colour gradient with blotchy texture, crossed by distractor clutter
(thin straight lines, scribbles, long thin ellipses and small dots, some half-transparent), holding 0 to
``max_objects`` filled shapes of six classes (circle, square, triangle, star, cross, ring) in random colours
(chosen to contrast with the background under them), sizes (``min_size``..``max_size`` of the short image side,
log-uniform), rotations and slight stretch, with a shading gradient across each shape and sensor-like noise on
top. A fraction ``empty_fraction`` of the images holds clutter only (background images, empty label files).
Distractors are designed not to look like any class: lines and scribbles are thin, ellipses have an axis ratio of
3 or more, dots are smaller than half the smallest shape.

Everything random about an image is drawn first (:func:`sample_scene`), so that it can be painted again
without some shapes (:func:`render`); :mod:`yolo_lat.datasets.synth` decides which shapes stay and writes
the dataset.

Example:
    >>> import numpy as np
    >>> from yolo_lat.datasets.scenes import SynthSettings, render, sample_scene
    >>> image, owner, area = render(sample_scene(np.random.default_rng(0), SynthSettings()))
    >>> image.shape
    (160, 160, 3)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np

#: Class names, in class-id order.
SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "star", "cross", "ring")

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
