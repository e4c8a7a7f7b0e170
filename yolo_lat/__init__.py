"""yolo-lat: Exact Linear Attention (ELA) and YOLO-LAT detectors.

The ELA core lives in :mod:`yolo_lat.ela` and imports nothing from Ultralytics.
"""

__version__ = "0.1.0"
