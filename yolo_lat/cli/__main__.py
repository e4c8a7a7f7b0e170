"""``python -m yolo_lat.cli``: the ``yolo-lat`` command."""

from yolo_lat.cli import entrypoint

entrypoint()
