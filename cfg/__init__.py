"""Model YAMLs of yolo-lat, importable as ``yolo_lat.cfg`` (shipped as package data)."""

from pathlib import Path

#: Folder holding the model YAMLs, in a checkout or an installed wheel alike.
CFG_DIR = Path(__file__).resolve().parent
