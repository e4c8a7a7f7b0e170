"""yolo-lat: Exact Linear Attention (ELA) and YOLO-LAT detectors.

Importing ``yolo_lat`` changes nothing outside the package and imports neither Ultralytics nor
torch. The parts load when imported:

* :mod:`yolo_lat.ela`: the ELA core (torch only);
* :mod:`yolo_lat.nn`: the YOLO-LAT blocks; importing it registers them with Ultralytics;
* :class:`YOLOLAT` (Ultralytics' ``YOLO`` for YOLO-LAT models, from :mod:`yolo_lat.models`),
  loaded on first use of ``yolo_lat.YOLOLAT``;
* :mod:`yolo_lat.text`: the ELA text models;
* :mod:`yolo_lat.settings`: the run-time modes.

Example:
    >>> import yolo_lat
    >>> model = yolo_lat.YOLOLAT("yolo-lat-n.yaml")
"""

__version__ = "0.1.0"
__all__ = ["YOLOLAT", "__version__"]


def __getattr__(name: str):
    if name == "YOLOLAT":  # on first use: it imports Ultralytics, which plain ELA users do not need
        from yolo_lat.models import YOLOLAT

        return YOLOLAT
    raise AttributeError(f"module 'yolo_lat' has no attribute {name!r}")
