"""Model YAMLs of yolo-lat, importable as ``yolo_lat.cfg`` (shipped as package data).

A YAML with a ``scales`` table is named with its scale as a ``-<scale>`` suffix:
``yolo-lat-n.yaml`` is ``yolo-lat.yaml`` at scale ``n`` (see :func:`model_names`).

Example:
    >>> from yolo_lat.cfg import CFG_DIR, list_model_yamls, model_names
    >>> "yolo-lat.yaml" in list_model_yamls()
    True
    >>> "yolo-lat-n.yaml" in model_names()
    True
"""

from pathlib import Path

import yaml

#: Folder holding the model YAMLs, in a checkout or an installed wheel alike.
CFG_DIR = Path(__file__).resolve().parent


def list_model_yamls() -> list[str]:
    """File names of the model YAMLs in :data:`CFG_DIR`, sorted.

    Returns:
        e.g. ``["yolo-lat-pico.yaml", "yolo-lat.yaml", "yolo12-ela.yaml"]``.
    """
    return sorted(path.name for path in CFG_DIR.glob("*.yaml"))


def model_scales(name: str) -> list[str]:
    """Scale letters of one model YAML in :data:`CFG_DIR`, in file order (empty if it has none).

    Args:
        name: a file name from :func:`list_model_yamls`.

    Returns:
        e.g. ``["n", "s", "m", "l", "x"]``.
    """
    with open(CFG_DIR / name, encoding="utf-8") as file:
        return list((yaml.safe_load(file) or {}).get("scales") or {})


def model_names() -> list[str]:
    """Every buildable model name: ``<stem>-<scale>.yaml`` per scale, or the file name if unscaled.

    Returns:
        e.g. ``["yolo-lat-pico.yaml", "yolo-lat-n.yaml", ..., "yolo12-ela-x.yaml"]``.
    """
    names = []
    for file_name in list_model_yamls():
        stem = Path(file_name).stem
        scales = model_scales(file_name)
        names.extend([f"{stem}-{scale}.yaml" for scale in scales] or [file_name])
    return names
