"""``export(model, format=onnx|engine, ela_op=standard|custom, ...)`` for Ultralytics detection models.

ONNX export goes through Ultralytics' own exporter (Detect heads in export mode, dynamic axes,
onnxslim, the usual metadata), run inside ``yolo_lat.settings.override(ela_op=...)`` so ELA is
written as standard ops or as ``yolo_lat::ELA`` nodes; the custom form then gets its model-local
function. Every file is produced under a temporary name in the destination folder and renamed when
complete: an interrupted export never leaves a broken file under the final name.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import onnx

from yolo_lat.settings import CHOICES
from yolo_lat.settings import override as override_settings

from .calibration import calibration_images
from .onnx_functions import attach_ela_functions, ela_nodes
from .tensorrt import EngineSettings, build_engine

__all__ = ["FORMATS", "export"]

FORMATS = ("onnx", "engine")


def _destination(model: Any, suffix: str, output: str | Path | None) -> Path:
    if output is not None:
        return Path(output)
    source = Path(getattr(model.model, "pt_path", None) or model.model.yaml.get("yaml_file", "model.yaml"))
    if source.suffix in (".yaml", ".yml"):  # a model built from YAML exports to the working directory
        return Path.cwd() / f"{source.stem}{suffix}"
    return source.with_suffix(suffix)


def _imgsz(value: Any) -> tuple[int, int]:
    if isinstance(value, (list, tuple)):
        return (int(value[0]), int(value[-1]))
    return (int(value), int(value))


@contextlib.contextmanager
def _quiet_ultralytics() -> Iterator[None]:
    """Hide Ultralytics' export log, which names the staging path rather than the final file."""
    from ultralytics.utils import LOGGER

    level = LOGGER.level
    LOGGER.setLevel(logging.WARNING)
    try:
        yield
    finally:
        LOGGER.setLevel(level)


def _ultralytics_onnx(model: Any, staging: Path, stem: str, ela_op: str, options: dict[str, Any]) -> Path:
    """Run Ultralytics' ONNX exporter with its output redirected into ``staging``."""
    import torch
    from ultralytics.engine.model import Model

    inner = model.model
    saved = getattr(inner, "pt_path", None)
    inner.pt_path = str(staging / f"{stem}.pt")  # the exporter names its output after this path
    # Ultralytics' device selection sets torch's CPU threads to cpu_count - 1 (1 on a 2-core
    # machine) for good; an export must not slow down what the caller runs afterwards.
    threads = torch.get_num_threads()
    try:
        with override_settings(ela_op=ela_op), _quiet_ultralytics():
            produced = Model.export(model, format="onnx", **options)
    finally:
        torch.set_num_threads(threads)
        if saved is None:
            del inner.pt_path
        else:
            inner.pt_path = saved
    return Path(produced)


def export(
    model: Any,
    *,
    format: str = "onnx",
    ela_op: str = "standard",
    output: str | Path | None = None,
    half: bool = False,
    int8: bool = False,
    calibration: Any = None,
    workspace: float | None = None,
    plugin: str = "aot",
    **options: Any,
) -> str:
    """Export an Ultralytics model (YOLOLAT or YOLO) to ONNX or a TensorRT engine.

    Args:
        model: a ``YOLOLAT``/``YOLO`` object holding a PyTorch model.
        format: ``onnx`` or ``engine``.
        ela_op: ``standard`` (ELA in standard ONNX ops) or ``custom`` (one ``yolo_lat::ELA`` node per
            attention plus a model-local function).
        output: destination file (default: beside the checkpoint, or the working directory for a
            model built from YAML).
        half: fp16 (ONNX traced in fp16 on a GPU; engine built in fp16).
        int8: INT8 engine (``format=engine`` only); needs ``calibration`` images.
        calibration: INT8 calibration: an (N, 3, H, W) float32 array in [0, 1], an image folder or a
            dataset YAML (default: ``data=``).
        workspace: TensorRT workspace in GiB.
        plugin: ``format=engine`` with ``ela_op=custom``: ``aot`` (the ELA kernel compiled into the
            engine, TensorRT >= 10.8; runs without Python) or ``jit`` (a Python callback).
        **options: Ultralytics export settings (imgsz, batch, dynamic, simplify, opset, device, nms, ...).

    Returns:
        Path of the exported file, as a string (like ``YOLO.export``).

    Raises:
        ValueError: an unknown format or ela_op, int8 for ONNX or without calibration data.

    Example:
        >>> from yolo_lat import YOLOLAT
        >>> YOLOLAT("yolo-lat-n.yaml").export(format="onnx", imgsz=320, ela_op="custom")  # doctest: +SKIP
        '.../yolo-lat-n.onnx'
    """
    fmt = str(format).lower()
    if fmt not in FORMATS:
        raise ValueError(f"format={format!r} is not supported by yolo-lat export; use one of {', '.join(FORMATS)}")
    if ela_op not in CHOICES["ela_op"]:
        raise ValueError(f"ela_op={ela_op!r}: use one of {', '.join(CHOICES['ela_op'])}")
    if int8 and fmt != "engine":
        raise ValueError("int8=True applies to format=engine (TensorRT INT8); ONNX export is fp32 or fp16")
    imgsz = _imgsz(options.get("imgsz", model.model.args.get("imgsz", 640) if hasattr(model.model, "args") else 640))
    if int8 and calibration is None and options.get("data"):
        calibration = options["data"]
    if int8 and isinstance(calibration, (str, Path)):
        calibration = calibration_images(calibration, imgsz)
    settings = EngineSettings(
        half=bool(half),
        int8=bool(int8),
        dynamic=bool(options.get("dynamic", False)),
        batch=int(options.get("batch", 1) or 1),
        imgsz=imgsz,
        workspace=workspace,
        calibration=calibration,
        plugin=plugin,
    )
    if fmt == "engine":
        settings.check()  # bad engine settings fail before the (slow) ONNX export
    final = _destination(model, ".onnx" if fmt == "onnx" else ".engine", output)
    final.parent.mkdir(parents=True, exist_ok=True)
    if half:
        options["quantize"] = 16
    with tempfile.TemporaryDirectory(dir=final.parent, prefix=f".{final.stem}.export-") as tmp:
        staging = Path(tmp)
        onnx_file = _ultralytics_onnx(model, staging, final.stem, ela_op, options)
        graph = onnx.load(str(onnx_file))
        if ela_op == "custom":
            if not ela_nodes(graph):
                raise ValueError("ela_op=custom: the model has no ELA attention to export as yolo_lat::ELA nodes")
            attach_ela_functions(graph)
            onnx.checker.check_model(graph)
            onnx.save(graph, str(onnx_file))
        if fmt == "onnx":
            os.replace(onnx_file, final)
        else:
            metadata = {p.key: p.value for p in graph.metadata_props}
            metadata["ela_op"] = ela_op
            build_engine(onnx_file, final, settings, metadata)
    opset = next((o.version for o in graph.opset_import if o.domain in ("", "ai.onnx")), "?")
    print(f"yolo-lat export: {final} ({final.stat().st_size / 2**20:.1f} MiB, {fmt}, ela_op={ela_op}, opset {opset})")
    return str(final)
