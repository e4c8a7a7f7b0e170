"""Dataset YAMLs and the embedded dataset generator, importable as ``yolo_lat.datasets``."""

from pathlib import Path

#: Folder holding the dataset YAMLs, in a checkout or an installed wheel alike.
DATASETS_DIR = Path(__file__).resolve().parent
