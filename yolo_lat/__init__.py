"""yolo-lat: Exact Linear Attention (ELA) and YOLO-LAT detectors.

The ELA core lives in :mod:`yolo_lat.ela` and imports nothing from Ultralytics. Importing
``yolo_lat`` registers the YOLO-LAT blocks with Ultralytics (model YAMLs can name them) and
exposes :class:`YOLOLAT`.

Example:
    >>> import yolo_lat
    >>> model = yolo_lat.YOLOLAT("yolo-lat-n.yaml")
"""

__version__ = "0.1.0"

from yolo_lat.models import YOLOLAT

__all__ = ["YOLOLAT", "__version__"]
