"""Handler of ``yolo-lat convert``: a YOLO12 checkpoint to its yolo12-ela twin, with mAP before and after on ``data=``.

Run as ``yolo-lat convert model=yolo12n.pt [out=...] [data=... imgsz=... batch=... device=...]``
(``--help`` lists the arguments). The conversion is :func:`yolo_lat.models.convert.convert_yolo12`;
with ``data=`` both checkpoints are validated on its ``val`` split and their mAP50-95 and mAP50 are
printed. A checkpoint that is missing, unreadable or not YOLO12 is one error line and exit status 2.

Example:
    >>> convert({**CONVERT_DEFAULTS, "model": "runs/detect/train/weights/best.pt", "data": "synth"})  # doctest: +SKIP
    converted runs/detect/train/weights/best.pt (YOLO12 n, 3 classes) -> runs/.../best-ela.pt: 691/691 tensors, ...
    mAP on .../data.yaml (val split):
      before  mAP50-95 0.5850  mAP50 0.8410  runs/detect/train/weights/best.pt (YOLO12)
      after   mAP50-95 0.5860  mAP50 0.8410  runs/detect/train/weights/best-ela.pt (yolo12-ela)
    0
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from yolo_lat.args import ArgumentError
from yolo_lat.cli.model import prepare_data
from yolo_lat.models import YOLOLAT
from yolo_lat.models.convert import convert_yolo12

CONVERT_DEFAULTS: dict[str, Any] = {"model": "", "out": "", "data": "", "imgsz": 0, "batch": 16, "device": ""}
CONVERT_DOCS = {
    "model": "YOLO12 .pt checkpoint to convert (any scale: n s m l x)",
    "out": "output checkpoint (default: <model stem>-ela.pt next to model)",
    "data": "dataset YAML, folder or synth: validate before and after, print mAP50-95 and mAP50 (empty: skip)",
    "imgsz": "validation image size (0: the size the checkpoint was trained at)",
    "batch": "validation batch size",
    "device": "validation device: cpu, 0, 0,1 (empty: Ultralytics' choice)",
}


def _map(checkpoint: Path, data: str, settings: dict[str, Any], project: str) -> tuple[float, float]:
    """``(mAP50-95, mAP50)`` of ``checkpoint`` on ``data``'s val split (run files go to ``project``)."""
    options: dict[str, Any] = {"batch": settings["batch"], "plots": False, "project": project, "name": "val"}
    if settings["imgsz"]:
        options["imgsz"] = settings["imgsz"]
    if str(settings["device"]):
        options["device"] = str(settings["device"])
    metrics = YOLOLAT(str(checkpoint)).val(data=data, **options)
    return float(metrics.box.map), float(metrics.box.map50)


def convert(settings: dict[str, Any]) -> int:
    """``yolo-lat convert``: write the yolo12-ela checkpoint; with ``data=``, print mAP before and after.

    Args:
        settings: :data:`CONVERT_DEFAULTS` with the given values.

    Returns:
        The exit status (0).

    Raises:
        ArgumentError: no ``model=``.
        ModelError: a checkpoint that is missing, unreadable or not YOLO12 (exit status 2).
        DatasetError: a ``data=`` that cannot be validated (exit status 2).

    Example:
        >>> convert(CONVERT_DEFAULTS)
        Traceback (most recent call last):
        ...
        yolo_lat.args.ArgumentError: convert: model= is required (a YOLO12 .pt checkpoint such as best.pt)
    """
    if not settings["model"]:
        raise ArgumentError("convert: model= is required (a YOLO12 .pt checkpoint such as best.pt)")
    data = prepare_data(str(settings["data"]), "val", ["val"]) if settings["data"] else None
    source = Path(str(settings["model"]))
    converted = convert_yolo12(source, settings["out"] or None, log=print)
    if data is None:
        return 0
    with tempfile.TemporaryDirectory(prefix="yolo-lat-convert-") as project:
        before = _map(source, data, settings, project)
        after = _map(converted, data, settings, project)
    print(f"mAP on {data} (val split):")
    print(f"  before  mAP50-95 {before[0]:.4f}  mAP50 {before[1]:.4f}  {source} (YOLO12)")
    print(f"  after   mAP50-95 {after[0]:.4f}  mAP50 {after[1]:.4f}  {converted} (yolo12-ela)")
    return 0
