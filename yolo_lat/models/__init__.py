"""Ultralytics integration: the ``YOLOLAT`` model class, its trainer and model-YAML name resolution.

Importing it imports :mod:`yolo_lat.nn`, which registers the YOLO-LAT blocks with Ultralytics'
YAML parser and with ``torch.load(weights_only=True)`` (:mod:`yolo_lat.nn.shim`).

Example:
    >>> from yolo_lat.models import YOLOLAT
    >>> YOLOLAT("yolo-lat-pico.yaml").model.stride.tolist()
    [16.0]
"""

from .config import resolve_model_yaml
from .trainer import YOLOLATDetectionTrainer
from .yololat import YOLOLAT

__all__ = ["YOLOLAT", "YOLOLATDetectionTrainer", "resolve_model_yaml"]
