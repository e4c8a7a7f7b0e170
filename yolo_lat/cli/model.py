"""Handlers of ``yolo-lat train|val|predict|export|info``: plain functions over :class:`~yolo_lat.YOLOLAT`.

Each takes the checked Ultralytics overrides (:func:`yolo_lat.args.parse_overrides`), resolves the
dataset (``data=synth`` or a name from ``datasets/``), validates it before any training starts, and
calls the model's method with the overrides, as ``yolo`` does with ``YOLO``. The dispatcher loads
this module only when a model command runs (it imports Ultralytics).

Example:
    >>> info({"model": "yolo-lat-pico.yaml"})  # doctest: +SKIP
    0
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ultralytics.utils import ASSETS

from yolo_lat.args import ArgumentError
from yolo_lat.datasets.checks import DatasetError, resolve_data_yaml, validate_dataset
from yolo_lat.datasets.synth import ensure_dataset
from yolo_lat.models import YOLOLAT

#: The model a mode uses when no ``model=`` is given.
MODEL_DEFAULTS = {"train": "yolo-lat-n.yaml", "info": "yolo-lat-n.yaml"}


def prepare_data(data: str | None, mode: str, splits: list[str]) -> str | None:
    """Resolve ``data=`` and validate the splits about to be used; returns the data YAML for Ultralytics.

    ``synth`` (also the default for ``train``) is the embedded dataset in ``runs/data/shapes``,
    generated on first use. A bare name such as ``coco.yaml`` is looked up in yolo-lat's ``datasets/``
    before Ultralytics' own. Fatal problems (missing keys or paths, bad labels) raise
    ``DatasetError`` (a ``ValueError``: exit status 2, as from ``yolo-lat data check``) with the first
    problem in one line naming its file; when there are more, the whole report is printed first.
    Warnings (corrupt images, empty label files) are printed with counts and the mode goes on.

    Args:
        data: the ``data=`` setting, or None.
        mode: ``train`` or ``val``.
        splits: the splits to check (``["train", "val"]`` to train, the evaluated split to validate).
    """
    if data is None and mode == "train":
        data = "synth"
        print("yolo-lat: no data= given, using the embedded synthetic dataset (data=synth)")
    if data is None:
        return None
    if str(data) == "synth":
        data = str(ensure_dataset())
    yaml_file = resolve_data_yaml(data)
    report = validate_dataset(yaml_file, splits=splits)
    try:
        report.raise_if_errors()
    except DatasetError:  # its message is the whole report: one line instead (the report is printed if needed)
        raise DatasetError(_one_line(report, yaml_file)) from None
    if report.warnings:
        print(report.summary())
    return str(yaml_file)


def _one_line(report: Any, yaml_file: Path) -> str:
    """The first fatal problem of ``report`` in one line; the full report is printed when it says more."""
    first = report.errors[0]
    head, *rest = str(first).removeprefix(f"{first.severity}: ").splitlines()
    more = len(report.errors) - 1
    if rest or more:
        print(report.summary())
    if rest:
        head += " see the report above" if head.endswith(":") else " (more in the report above)"
    if more:
        head += f"; and {more} more problem{'s' * (more > 1)} (report above)"
    return f"{head}; check the dataset with: yolo-lat data check data={yaml_file}"


def run(mode: str, overrides: dict[str, Any]) -> Any:
    """Run one model mode with ``overrides`` (``model=`` among them); returns what the ``YOLOLAT`` method returns.

    The model is loaded and the training settings checked first, so a bad ``model=``, a finished
    run given to ``resume``, or an ``imgsz`` too small to train is reported before the dataset is
    checked or anything is printed or written.

    Raises:
        ArgumentError: no ``model=`` for a mode that has no default model.
        ModelError: a ``model=`` that cannot be used (its file and what is wrong, one line).
    """
    overrides = dict(overrides)
    model = overrides.pop("model", None) or MODEL_DEFAULTS.get(mode)
    if model is None:
        raise ArgumentError(f"'yolo-lat {mode}' needs model=... (a .pt checkpoint, a model YAML or an exported file)")
    yolo = YOLOLAT(str(model))
    if mode == "train":
        yolo.check_train(**overrides)
    if mode in ("train", "val") and not overrides.get("resume"):
        splits = ["train", "val"] if mode == "train" else [str(overrides.get("split") or "val")]
        overrides["data"] = prepare_data(overrides.get("data"), mode, splits)
        if overrides["data"] is None:
            overrides.pop("data")
    if mode == "predict":
        overrides.setdefault("save", True)  # as Ultralytics' own CLI: annotated images are saved
        if overrides.get("source") is None:
            overrides["source"] = str(ASSETS / "bus.jpg")
            print(f"yolo-lat: no source= given, predicting on {overrides['source']}")
    if mode == "export":
        overrides.setdefault("format", "onnx")
    if mode == "info":
        return yolo.info(detailed=bool(overrides.get("detailed", False)), verbose=True)
    return getattr(yolo, mode)(**overrides)


def train(overrides: dict[str, Any]) -> int:
    """``yolo-lat train``: train a detector (default model ``yolo-lat-n.yaml``, data ``synth``)."""
    run("train", overrides)
    return 0


def val(overrides: dict[str, Any]) -> int:
    """``yolo-lat val``: validate a detector on the ``split=`` split (default ``val``) of ``data=``."""
    run("val", overrides)
    return 0


def predict(overrides: dict[str, Any]) -> int:
    """``yolo-lat predict``: detect objects in ``source=`` (default Ultralytics' ``bus.jpg``), saving images."""
    run("predict", overrides)
    return 0


def export(overrides: dict[str, Any]) -> int:
    """``yolo-lat export``: export a model (default ``format=onnx``)."""
    run("export", overrides)
    return 0


def info(overrides: dict[str, Any]) -> int:
    """``yolo-lat info``: print layers, parameters and GFLOPs of a model (default ``yolo-lat-n.yaml``)."""
    run("info", overrides)
    return 0
