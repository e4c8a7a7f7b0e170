"""Run a dataset YAML's ``download:`` recipe on request (``yolo-lat data download data=coco.yaml``).

Training and validation never download: they validate first (:mod:`yolo_lat.datasets.checks`) and stop with the
expected paths when data is missing. Downloading is this explicit step. A recipe is what Ultralytics accepts: a
URL of an archive, ``bash <script>``, or Python code run with ``yaml`` bound to the parsed YAML whose ``path`` is
the resolved dataset root (the YAML is the user's own file, run because the user asked for it).

Example:
    >>> from yolo_lat.datasets.download import download_dataset
    >>> download_dataset("coco")  # fetches COCO over the internet  # doctest: +SKIP
    PosixPath('/home/me/datasets/coco')
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from yolo_lat.datasets.checks import DatasetError, load_data_yaml, ultralytics_datasets_dir
from yolo_lat.datasets.layout import expected_layout, split_sources


def _offline() -> bool:
    return os.environ.get("YOLO_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def missing_paths(data: dict, root: Path, splits: tuple[str, ...] = ("train", "val")) -> list[Path]:
    """Split paths of ``data`` that do not exist yet.

    Args:
        data: Parsed YAML (``load_data_yaml``).
        root: Resolved dataset root.
        splits: Splits to look at.

    Returns:
        The missing paths (empty when the dataset is in place).

    Example:
        >>> missing_paths({"train": "images/train", "val": "images/val"}, Path("/nowhere"))
        [PosixPath('/nowhere/images/train'), PosixPath('/nowhere/images/val')]
    """
    return [p for s in splits if data.get(s) for p in split_sources(root, data[s]) if not p.exists()]


def download_dataset(data: str | Path, force: bool = False) -> Path:
    """Fetch a dataset with the recipe in its YAML, unless its train and val paths already exist.

    Args:
        data: YAML path, dataset folder or built-in name (``coco``).
        force: Run the recipe even when the paths exist.

    Returns:
        The dataset root.

    Raises:
        DatasetError: No recipe, ``YOLO_OFFLINE`` is set, or the paths are still missing after the recipe.

    Example:
        >>> import tempfile
        >>> from yolo_lat.datasets.synth import generate
        >>> data_yaml = generate(tempfile.mkdtemp(), n_train=1, n_val=1, imgsz=64, seed=0, preview=False)
        >>> download_dataset(data_yaml) == data_yaml.parent  # train and val are in place: nothing is fetched
        True
        >>> download_dataset("coco")  # fetches COCO over the internet  # doctest: +SKIP
        PosixPath('/home/me/datasets/coco')
    """
    parsed, root = load_data_yaml(data)
    if not force and not missing_paths(parsed, root):
        return root
    layout = "\n".join(expected_layout(root, parsed, s) for s in ("train", "val"))
    recipe = parsed.get("download")
    if not recipe:
        raise DatasetError(f"{data}: no 'download:' recipe in the YAML; put the data here by hand:\n{layout}")
    if _offline():
        raise DatasetError(
            f"{data}: YOLO_OFFLINE is set, so nothing is downloaded. Unset it (needs internet) to fetch into {root}, "
            f"or put the data here by hand:\n{layout}"
        )
    recipe = str(recipe).strip()
    if recipe.startswith(("http://", "https://")):
        from ultralytics.utils.downloads import safe_download  # deferred: Ultralytics is heavy

        safe_download(url=recipe, dir=ultralytics_datasets_dir(), unzip=True, delete=True)
    elif recipe.startswith("bash "):
        subprocess.run(recipe.split(), check=True)
    else:
        exec(recipe, {"yaml": {**parsed, "path": root}})
    still_missing = missing_paths(parsed, root)
    if still_missing:
        raise DatasetError(
            f"{data}: the download recipe ran but {still_missing[0]} is still missing. Expected:\n{layout}"
        )
    return root
