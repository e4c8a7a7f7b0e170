"""COCO-format ground truth for YOLO-layout datasets, and COCO mAP of Ultralytics ``predictions.json`` files.

Conventions (read off ``ultralytics.models.yolo.detect.val.DetectionValidator`` in ultralytics 8.4.190, the
version this project pins):

- ``pred_to_json`` derives ``image_id`` from the image file stem: ``int(stem)`` when the stem is all digits,
  otherwise the stem string itself. We give every image the same id, so numeric stems (``000123.jpg``) are best.
- ``category_id`` is ``class_map[class_index]``. ``class_map`` is the COCO-80 -> COCO-91 table only when the
  dataset *is* COCO (its ``val`` path contains ``coco`` and ends with ``/val2017.txt`` or ``/test-dev2017.txt``);
  for every other dataset it is ``range(1, nc + 1)``, i.e. ``category_id = class_index + 1``.
- ``bbox`` is ``[x_min, y_min, width, height]`` in pixels of the original image (boxes scaled back from the
  letterboxed input and clipped to the image); ``score`` is the confidence.
- With ``save_json=True`` Ultralytics evaluates a non-COCO dataset itself (faster-coco-eval) on ground truth it
  rebuilds in memory from the YOLO labels, with dataloader indices as image ids. It only copies mAP_small/medium/
  large from that evaluation into its metrics; the printed mAP50 and mAP50-95 stay its own (``DetMetrics``). The
  ``predictions.json`` it writes keeps the stem-derived ids above, so it can be evaluated against the file this
  module writes.

Example:
    >>> from yolo_lat.datasets.coco_json import evaluate_predictions, image_id_for
    >>> image = {"id": image_id_for("images/val/000001.jpg"), "width": 64, "height": 64}
    >>> box = {"id": 1, "image_id": 1, "category_id": 1, "bbox": [8, 8, 20, 20], "area": 400, "iscrowd": 0}
    >>> truth = {"images": [image], "annotations": [box], "categories": [{"id": 1, "name": "circle"}]}
    >>> hit = {"image_id": 1, "category_id": 1, "bbox": [8, 8, 20, 20], "score": 0.9}
    >>> round(evaluate_predictions([hit], truth)["map50_95"], 3)
    1.0
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from yolo_lat.datasets.checks import load_data_yaml
from yolo_lat.datasets.layout import label_file_for, split_image_files

#: Name of the COCO-format val annotations inside a dataset root (our convention; Ultralytics never reads it).
ANNOTATIONS_FILE = "annotations/instances_val.json"

BACKENDS = ("pycocotools", "faster_coco_eval")


def image_id_for(image_file: str | Path) -> int | str:
    """The COCO image id Ultralytics writes for ``image_file``: ``int(stem)`` if the stem is numeric, else the stem.

    Args:
        image_file: Path of an image.

    Returns:
        The id used in ``predictions.json``.

    Example:
        >>> image_id_for("images/val/000042.jpg"), image_id_for("images/val/bus.jpg")
        (42, 'bus')
    """
    stem = Path(image_file).stem
    return int(stem) if stem.isnumeric() else stem


def read_yolo_boxes(label_file: str | Path) -> list[tuple[int, float, float, float, float]]:
    """Read ``class cx cy w h`` rows (normalised) from a YOLO label file; a missing file means no objects.

    Segment rows (``class x1 y1 x2 y2 ...``) are turned into the box around their points.

    Args:
        label_file: Path of the ``.txt`` file.

    Returns:
        One ``(class_index, cx, cy, w, h)`` tuple per row.

    Example:
        >>> import tempfile
        >>> label = Path(tempfile.mkdtemp()) / "000001.txt"
        >>> _ = label.write_text("3 0.5 0.5 0.25 0.2\\n0 0.25 0.25 0.75 0.25 0.5 0.75\\n")  # a box, a triangle
        >>> read_yolo_boxes(label)
        [(3, 0.5, 0.5, 0.25, 0.2), (0, 0.5, 0.5, 0.5, 0.5)]
        >>> read_yolo_boxes(label.with_name("000002.txt"))  # no label file: a background image
        []
    """
    path = Path(label_file)
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8-sig").splitlines():
        values = line.split()
        if not values:
            continue
        numbers = [float(v) for v in values]
        if len(numbers) > 6:  # polygon: the box around its points
            xs, ys = numbers[1::2], numbers[2::2]
            x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)
            numbers = [numbers[0], (x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0]
        cls, cx, cy, w, h = numbers[:5]
        rows.append((int(cls), cx, cy, w, h))
    return rows


def yolo_to_coco(
    image_files: Sequence[str | Path],
    names: Sequence[str],
    sizes: Sequence[tuple[int, int]] | None = None,
    label_files: Sequence[str | Path] | None = None,
) -> dict[str, Any]:
    """Build a COCO detection dict from YOLO images and labels, with Ultralytics' id conventions.

    Args:
        image_files: Image paths.
        names: Class names, index = YOLO class id; category id = index + 1.
        sizes: ``(width, height)`` of each image; read from the image headers when omitted.
        label_files: The label file of each image; found with Ultralytics' rule
            (:func:`~yolo_lat.datasets.layout.label_file_for`) when omitted.

    Returns:
        A dict with ``info``, ``images``, ``annotations`` and ``categories``. Boxes are
        ``[x_min, y_min, w, h]`` pixels clipped to the image, ``area = w * h``, ``iscrowd = 0``.

    Example:
        >>> import tempfile
        >>> from PIL import Image
        >>> root = Path(tempfile.mkdtemp())
        >>> for folder in ("images", "labels"):
        ...     (root / folder).mkdir()
        >>> Image.new("RGB", (200, 100)).save(root / "images" / "000007.jpg")
        >>> _ = (root / "labels" / "000007.txt").write_text("1 0.5 0.5 0.2 0.4\\n")
        >>> coco = yolo_to_coco([root / "images" / "000007.jpg"], ["circle", "square"])
        >>> coco["images"][0]
        {'id': 7, 'file_name': '000007.jpg', 'width': 200, 'height': 100}
        >>> coco["annotations"][0]["category_id"], coco["annotations"][0]["bbox"], coco["categories"][1]
        (2, [80.0, 30.0, 40.0, 40.0], {'id': 2, 'name': 'square', 'supercategory': 'object'})
    """
    if sizes is None:
        from PIL import Image  # header read only; the pixels are not decoded

        sizes = []
        for file in image_files:
            with Image.open(file) as im:
                sizes.append(im.size)
    if label_files is None:
        label_files = [label_file_for(file) for file in image_files]
    images, annotations, seen = [], [], {}
    for file, (width, height), label_file in zip(image_files, sizes, label_files):
        image_id = image_id_for(file)
        if image_id in seen:
            raise ValueError(f"{file}: image id {image_id!r} is also the id of {seen[image_id]} (same file stem)")
        seen[image_id] = file
        images.append({"id": image_id, "file_name": Path(file).name, "width": int(width), "height": int(height)})
        for cls, cx, cy, w, h in read_yolo_boxes(label_file):
            x0, x1 = max((cx - w / 2) * width, 0.0), min((cx + w / 2) * width, float(width))
            y0, y1 = max((cy - h / 2) * height, 0.0), min((cy + h / 2) * height, float(height))
            box = [round(x0, 4), round(y0, 4), round(x1 - x0, 4), round(y1 - y0, 4)]
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": cls + 1,
                    "bbox": box,
                    "area": round(box[2] * box[3], 4),
                    "iscrowd": 0,
                }
            )
    categories = [{"id": i + 1, "name": str(name), "supercategory": "object"} for i, name in enumerate(names)]
    info = {"description": "YOLO labels converted by yolo_lat.datasets.coco_json", "version": "1.0"}
    return {"info": info, "images": images, "annotations": annotations, "categories": categories}


def write_coco_annotations(data_yaml: str | Path, split: str = "val", out: str | Path | None = None) -> Path:
    """Write the COCO-format ground truth of one split of a YOLO dataset.

    Args:
        data_yaml: The dataset YAML (``path``, ``train``, ``val``, ``names``).
        split: Which split to convert.
        out: Output file; default ``<root>/annotations/instances_<split>.json``.

    Returns:
        The path written.

    Example:
        >>> import tempfile
        >>> from yolo_lat.datasets.synth import generate
        >>> data_yaml = generate(tempfile.mkdtemp(), n_train=4, n_val=2, imgsz=64, seed=0, preview=False)
        >>> out = write_coco_annotations(data_yaml, split="train")
        >>> out.relative_to(data_yaml.parent).as_posix(), len(json.loads(out.read_text())["images"])
        ('annotations/instances_train.json', 4)
    """
    data, root = load_data_yaml(data_yaml)
    files = split_image_files(root, data[split])
    coco = yolo_to_coco(files, list(data["names"].values()))
    out = Path(out) if out else root / "annotations" / f"instances_{split}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(coco))
    return out


def _load_json(source: str | Path | list | dict) -> Any:
    if isinstance(source, (str, Path)):
        return json.loads(Path(source).read_text())
    return copy.deepcopy(source)  # the COCO tools add keys to what they are given


def evaluate_predictions(
    predictions: str | Path | list[dict],
    annotations: str | Path | dict,
    backend: str = "pycocotools",
) -> dict[str, float]:
    """COCO box mAP of detections (an Ultralytics ``predictions.json``) against COCO-format ground truth.

    Every image of ``annotations`` is evaluated, including those without a single prediction (COCO's own
    ``imgIds``), so missed images count.

    Args:
        predictions: Path of a COCO results file or the list itself (``image_id``, ``category_id``, ``bbox``,
            ``score``).
        annotations: Path of the COCO ground truth or the dict itself.
        backend: ``pycocotools`` or ``faster_coco_eval`` (the one Ultralytics uses).

    Returns:
        ``map50_95``, ``map50``, ``map75``, ``map_small``, ``map_medium``, ``map_large`` (COCO's -1 for "no
        ground truth in this range" is kept), plus ``images`` and ``detections`` counts.

    Raises:
        ValueError: When a prediction names an image id the annotations do not have (the usual sign of
            mismatched id conventions), or for an unknown backend.

    Example:
        >>> images = [{"id": i, "width": 64, "height": 64} for i in (1, 2)]
        >>> boxes = [{"id": i, "image_id": i, "category_id": 1, "bbox": [8, 8, 20, 20], "area": 400, "iscrowd": 0}
        ...          for i in (1, 2)]
        >>> truth = {"images": images, "annotations": boxes, "categories": [{"id": 1, "name": "circle"}]}
        >>> hit = {"image_id": 1, "category_id": 1, "bbox": [8, 8, 20, 20], "score": 0.9}
        >>> result = evaluate_predictions([hit], truth)  # image 2 has no prediction: half the objects are missed
        >>> round(result["map50"], 3), result["map_large"], result["images"], result["detections"]
        (0.505, -1.0, 2.0, 1.0)
        >>> evaluate_predictions([{**hit, "image_id": 99}], truth)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ValueError: 1 prediction image id(s) are not in the annotations (first: 99); ...
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend={backend!r}: use one of {', '.join(BACKENDS)}")
    gt, dets = _load_json(annotations), _load_json(predictions)
    known_ids = {image["id"] for image in gt["images"]}
    unknown = sorted({str(d["image_id"]) for d in dets if d["image_id"] not in known_ids})
    if unknown:
        raise ValueError(
            f"{len(unknown)} prediction image id(s) are not in the annotations (first: {', '.join(unknown[:5])}); "
            "predictions and annotations must come from the same split and use image_id = int(file stem)"
        )
    gt.setdefault("info", {})
    counts = {"images": float(len(gt["images"])), "detections": float(len(dets))}
    if not dets:  # the COCO tools refuse an empty result list; nothing detected means an AP of zero
        zeros = dict.fromkeys(("map50_95", "map50", "map75", "map_small", "map_medium", "map_large"), 0.0)
        return {**zeros, **counts}
    quiet = io.StringIO()
    with contextlib.redirect_stdout(quiet):  # both tools print their progress and tables
        if backend == "pycocotools":
            from pycocotools.coco import COCO
            from pycocotools.cocoeval import COCOeval as Evaluator
        else:
            from faster_coco_eval import COCO
            from faster_coco_eval import COCOeval_faster as Evaluator
        coco_gt = COCO()
        coco_gt.dataset = gt
        coco_gt.createIndex()
        coco_dt = coco_gt.loadRes(dets)
        evaluator = Evaluator(coco_gt, coco_dt, "bbox")
        evaluator.params.imgIds = sorted(known_ids, key=str)
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    keys = ("map50_95", "map50", "map75", "map_small", "map_medium", "map_large")
    return {**{k: float(v) for k, v in zip(keys, evaluator.stats[:6])}, **counts}
