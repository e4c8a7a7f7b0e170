"""Handlers of ``yolo-lat data synth|check|download`` and their argument tables.

Run as ``yolo-lat data SUBMODE key=value ...`` or ``python -m yolo_lat.datasets.cli SUBMODE key=value ...``;
``--help`` after a submode lists its arguments (the dispatcher and help are :mod:`yolo_lat.cli`). As everywhere
in ``yolo-lat``, bad input exits with status 2: ``check`` on a dataset with a fatal problem (the same status
``train``/``val`` give for it), ``download`` when the recipe is missing, refused or did not produce the data, and
a bad argument (:class:`yolo_lat.args.ArgumentError`).

Example:
    >>> import tempfile
    >>> from yolo_lat.datasets.cli import main
    >>> path = tempfile.mkdtemp()
    >>> main(["synth", f"path={path}", "n=4", "n_val=2", "imgsz=64", "preview=False"])  # doctest: +ELLIPSIS
    wrote 6 images (4 train, 2 val) in ... s
    data: .../data.yaml
    0
"""

from __future__ import annotations

import sys
import time
from typing import Any

from yolo_lat.args import ArgumentError
from yolo_lat.cli import entrypoint
from yolo_lat.cli import main as cli_main
from yolo_lat.datasets.checks import DatasetError, validate_dataset
from yolo_lat.datasets.download import download_dataset
from yolo_lat.datasets.synth import generate

SYNTH_DEFAULTS: dict[str, Any] = {
    "path": "runs/data/shapes",
    "n": 400,
    "n_val": 100,
    "imgsz": 160,
    "seed": 0,
    "max_objects": 6,
    "min_size": 0.14,
    "max_size": 0.42,
    "min_visible": 0.6,
    "empty_fraction": 0.05,
    "clutter": 6.0,
    "aspect": 1.0,
    "image_format": "jpg",
    "preview": True,
}
SYNTH_DOCS = {
    "path": "output folder (new, empty, or a previous synthetic dataset, which is replaced)",
    "n": "training images",
    "n_val": "validation images",
    "imgsz": "long image side in pixels",
    "seed": "random seed: the same seed gives byte-identical files",
    "max_objects": "most shapes per image",
    "min_size": "smallest shape, fraction of the short image side",
    "max_size": "largest shape, fraction of the short image side",
    "min_visible": "shapes less visible than this (fraction of their area) are removed",
    "empty_fraction": "share of background-only images",
    "clutter": "mean number of distractors (lines, scribbles, thin ellipses, dots) per image",
    "aspect": "largest width/height ratio (1: square images)",
    "image_format": "jpg or png",
    "preview": "write preview.png (val images with their boxes)",
}
CHECK_DEFAULTS: dict[str, Any] = {"data": "", "splits": ["train", "val"], "decode": True, "max_images": 0, "limit": 20}
CHECK_DOCS = {
    "data": "dataset YAML, folder holding data.yaml, or built-in name (coco)",
    "splits": "splits to check (test is checked when listed and present)",
    "decode": "decode every image fully (finds truncated pixel data)",
    "max_images": "check at most this many images per split (0: all)",
    "limit": "most errors and warnings listed (the rest are counted)",
}
DOWNLOAD_DEFAULTS: dict[str, Any] = {"data": "", "force": False}
DOWNLOAD_DOCS = {
    "data": "dataset YAML or built-in name (coco) whose download: recipe to run (needs internet)",
    "force": "run the recipe even when the data is already there",
}


def synth(settings: dict[str, Any]) -> int:
    """``yolo-lat data synth``: generate the synthetic shapes dataset; prints its YAML path and a summary.

    Args:
        settings: :data:`SYNTH_DEFAULTS` with the given values.

    Returns:
        The exit status.

    Example:
        >>> import tempfile
        >>> synth({**SYNTH_DEFAULTS, "path": tempfile.mkdtemp(), "n": 4, "n_val": 2, "imgsz": 64})  # doctest: +ELLIPSIS
        wrote 6 images (4 train, 2 val) in ... s
        data: .../data.yaml
        0
    """
    options = {k: v for k, v in settings.items() if k not in ("path", "n", "n_val", "imgsz", "seed", "preview")}
    started = time.perf_counter()
    try:
        data_yaml = generate(
            settings["path"],
            n_train=settings["n"],
            n_val=settings["n_val"],
            imgsz=settings["imgsz"],
            seed=settings["seed"],
            preview=settings["preview"],
            **options,
        )
    except (ValueError, FileExistsError) as err:
        raise ArgumentError(f"data synth: {err}") from None
    elapsed = time.perf_counter() - started
    images = settings["n"] + settings["n_val"]
    print(f"wrote {images} images ({settings['n']} train, {settings['n_val']} val) in {elapsed:.1f} s")
    print(f"data: {data_yaml}")
    return 0


def check(settings: dict[str, Any]) -> int:
    """``yolo-lat data check``: validate a dataset; prints the report, returns 2 when it has fatal problems.

    Args:
        settings: :data:`CHECK_DEFAULTS` with the given values.

    Returns:
        The exit status.

    Example:
        >>> import tempfile
        >>> root = generate(tempfile.mkdtemp(), n_train=4, n_val=2, imgsz=64, seed=0, preview=False).parent
        >>> check({**CHECK_DEFAULTS, "data": str(root), "splits": ["val"]})  # doctest: +ELLIPSIS
        dataset .../data.yaml (root ..., 6 classes)
          val: 2 images, 2 label files (0 empty), ...
        result: OK (0 errors, 0 warnings, 0 notes)
        0
    """
    if not settings["data"]:
        raise ArgumentError("data check: data= is required (a dataset YAML, folder or built-in name)")
    report = validate_dataset(
        settings["data"],
        splits=[str(s) for s in settings["splits"]],
        decode_images=settings["decode"],
        max_images=settings["max_images"] or None,
    )
    print(report.summary(settings["limit"]))
    return 0 if report.ok else 2


def download(settings: dict[str, Any]) -> int:
    """``yolo-lat data download``: run a dataset YAML's download recipe (the only path that downloads data).

    Args:
        settings: :data:`DOWNLOAD_DEFAULTS` with the given values.

    Returns:
        The exit status.

    Example:
        >>> download({**DOWNLOAD_DEFAULTS, "data": "coco"})  # fetches COCO over the internet  # doctest: +SKIP
        dataset ready: /home/me/datasets/coco
        0
    """
    if not settings["data"]:
        raise ArgumentError("data download: data= is required (a dataset YAML or built-in name)")
    try:
        root = download_dataset(settings["data"], force=settings["force"])
    except DatasetError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"dataset ready: {root}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """``yolo-lat data`` with ``argv`` (the words after ``data``); returns the exit status (:func:`yolo_lat.cli.main`).

    Example:
        >>> import tempfile
        >>> main(["check", f"data={tempfile.mkdtemp()}/missing.yaml"])  # doctest: +ELLIPSIS
        dataset .../missing.yaml
        errors (1):
          error: ...: dataset YAML '...missing.yaml' not found (tried ...); built-in YAMLs: coco.yaml
        result: NOT USABLE: fix the errors above (1 errors, 0 warnings, 0 notes)
        2
    """
    return cli_main(["data", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    entrypoint(["data", *sys.argv[1:]])
