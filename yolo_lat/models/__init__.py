"""Ultralytics integration: the ``YOLOLAT`` model class, name resolution and the registration shim.

Importing this package (``import yolo_lat`` does) registers the YOLO-LAT blocks with Ultralytics'
YAML parser and with ``torch.load(weights_only=True)``; see :mod:`yolo_lat.models.shim`.

Example:
    >>> from yolo_lat.models import YOLOLAT
    >>> YOLOLAT("yolo-lat-pico.yaml").model.stride.tolist()
    [16.0]
"""

from . import shim

shim.install()

from .config import resolve_model_yaml  # noqa: E402  (after the shim: it imports ultralytics.nn.tasks)
from .trainer import YOLOLATDetectionTrainer  # noqa: E402
from .yololat import YOLOLAT  # noqa: E402

__all__ = ["YOLOLAT", "YOLOLATDetectionTrainer", "resolve_model_yaml", "shim"]
