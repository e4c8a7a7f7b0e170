"""yolo-lat: Exact Linear Attention (ELA) and YOLO-LAT detectors.

The ELA core lives in :mod:`yolo_lat.ela` and imports nothing from Ultralytics. Importing
``yolo_lat`` does not import Ultralytics either; it arranges for the YOLO-LAT blocks to be
registered with Ultralytics as soon as Ultralytics is imported (at once if it already is), so model
YAMLs can name them. :class:`YOLOLAT` (Ultralytics' ``YOLO`` for YOLO-LAT models) loads on first use.

Example:
    >>> import yolo_lat
    >>> model = yolo_lat.YOLOLAT("yolo-lat-n.yaml")
"""

from yolo_lat._lazy_ultralytics import install_when_imported

__version__ = "0.1.0"
__all__ = ["YOLOLAT", "__version__"]

install_when_imported()


def __getattr__(name: str):
    if name == "YOLOLAT":
        from yolo_lat.models import YOLOLAT

        return YOLOLAT
    raise AttributeError(f"module 'yolo_lat' has no attribute {name!r}")
