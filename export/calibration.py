"""INT8 calibration images for TensorRT: a folder of images or a dataset YAML's val split."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from yolo_lat.datasets.checks import load_data_yaml, split_image_files

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


def calibration_images(source: str | Path, imgsz: tuple[int, int], limit: int = 512) -> np.ndarray:
    """Load up to ``limit`` images as a ``(N, 3, H, W)`` float32 RGB array in [0, 1].

    Args:
        source: an image folder, or a dataset YAML (its ``val`` images are used).
        imgsz: (height, width) the images are resized to (the engine's input size).
        limit: most images loaded (TensorRT's guidance is about 500).

    Raises:
        ValueError: nothing readable found; the message names ``source``.
    """
    import cv2

    path = Path(source)
    if path.suffix in (".yaml", ".yml") or not path.exists():
        data, root = load_data_yaml(source)
        files = split_image_files(root, data["val"])
    else:
        files = sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    images = []
    for file in files[:limit]:
        image = cv2.imread(str(file))
        if image is None:
            continue
        image = cv2.resize(image, (int(imgsz[1]), int(imgsz[0])))[..., ::-1].transpose(2, 0, 1)
        images.append(image.astype(np.float32) / 255.0)
    if not images:
        raise ValueError(f"no readable calibration images in {source}")
    return np.ascontiguousarray(np.stack(images))
