"""What ``yolo-lat train|val|predict|export|info`` do, as plain functions over :class:`~yolo_lat.YOLOLAT`.

The CLI parses and checks the arguments (:mod:`yolo_lat.overrides`); this module resolves the
dataset (``data=synth`` or a name from ``datasets/``), validates it before any training starts, and
calls the model's method with the overrides, as ``yolo`` does with ``YOLO``.
"""

from __future__ import annotations

from typing import Any


def prepare_data(data: str | None, mode: str) -> str | None:
    """Resolve ``data=`` and validate the dataset; returns the data YAML path to hand to Ultralytics.

    ``synth`` (also the default for ``train``) is the embedded dataset in ``runs/data/shapes``,
    generated on first use. A bare name such as ``coco.yaml`` is looked up in yolo-lat's ``datasets/``
    before Ultralytics' own. Fatal problems (missing keys or paths, bad labels) raise
    ``DatasetError`` (a ``ValueError``) with a message naming the file; warnings (corrupt images,
    empty label files) are printed with counts and training goes on.
    """
    from yolo_lat.datasets.checks import resolve_data_yaml, validate_dataset

    if data is None and mode == "train":
        data = "synth"
        print("yolo-lat: no data= given, using the embedded synthetic dataset (data=synth)")
    if data is None:
        return None
    if str(data) == "synth":
        from yolo_lat.datasets.synth import ensure_dataset

        data = str(ensure_dataset())
    yaml_file = resolve_data_yaml(data)
    report = validate_dataset(yaml_file).raise_if_errors()
    if report.warnings:
        print(report.summary())
    return str(yaml_file)


def run(mode: str, model: str, overrides: dict[str, Any]) -> Any:
    """Run one model mode; returns what the ``YOLOLAT`` method returns."""
    from yolo_lat import YOLOLAT

    if mode in ("train", "val") and not overrides.get("resume"):
        overrides["data"] = prepare_data(overrides.get("data"), mode)
        if overrides["data"] is None:
            overrides.pop("data")
    if mode == "predict":
        overrides.setdefault("save", True)  # as Ultralytics' own CLI: annotated images are saved
        if overrides.get("source") is None:
            from ultralytics.utils import ASSETS

            overrides["source"] = str(ASSETS / "bus.jpg")
            print(f"yolo-lat: no source= given, predicting on {overrides['source']}")
    if mode == "export":
        overrides.setdefault("format", "onnx")
    yolo = YOLOLAT(model)
    if mode == "info":
        return yolo.info(detailed=bool(overrides.get("detailed", False)), verbose=True)
    return getattr(yolo, mode)(**overrides)
