"""``export(model, format=onnx|engine, ela_op=standard|custom, ...)`` for Ultralytics detection models.

ONNX export goes through Ultralytics' own exporter (Detect heads in export mode, dynamic axes,
onnxslim, the usual metadata), run inside ``yolo_lat.settings.override(ela_op=...)`` so ELA is
written as standard ops or as ``yolo_lat::ELA`` nodes; the custom form then gets its model-local
function. Every file is produced in a hidden staging folder beside the destination
(``.NAME.export-PID-*``) and renamed when complete: an interrupted export never leaves a broken file
under the final name, and the next export of the same file removes the staging folders of exports
whose process is gone.

``opset=`` is checked against the range that exports and runs (:data:`ELA_MIN_OPSET` for models
with ELA attention, up to the installed torch's newest opset).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import onnx
import torch
from torch.onnx import _constants as torch_onnx_constants  # the exporter's own opset limit (no public name)

from yolo_lat.nn import ELAAttention2d
from yolo_lat.settings import CHOICES
from yolo_lat.settings import override as override_settings

from .calibration import calibration_images
from .onnx_functions import attach_ela_functions, ela_nodes
from .tensorrt import EngineSettings, build_engine

__all__ = ["ELA_MIN_OPSET", "FORMATS", "MAX_OPSET", "export", "remove_stale_staging"]

FORMATS = ("onnx", "engine")
#: The oldest ONNX opset per ``ela_op`` for a model with ELA attention: the standard form uses
#: ``IsFinite`` (opset 10); the custom form's model-local function uses ``CastLike`` (opset 15).
ELA_MIN_OPSET = {"standard": 10, "custom": 15}
#: The newest opset the installed torch exports.
MAX_OPSET = int(torch_onnx_constants.ONNX_MAX_OPSET)
_STAGING = re.compile(r"^\.(?P<name>.+)\.export-(?:(?P<pid>\d+)-)?[^/]*$")


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: only checks that the process exists
    except ProcessLookupError:
        return False
    except OSError:  # exists but belongs to another user, or cannot be asked
        return True
    return True


def remove_stale_staging(final: Path) -> list[Path]:
    """Remove the staging folders that exports of ``final`` left behind when they were killed.

    A folder ``.NAME.export-PID-*`` beside ``final`` is stale when process ``PID`` no longer
    exists; ``.STEM.export-*`` folders without a process id (written by earlier yolo-lat versions)
    are stale too. Folders of running exports are kept. Only POSIX can ask whether a process
    exists; elsewhere nothing is removed.

    Args:
        final: the file an export is about to write.

    Returns:
        The folders removed.

    Example:
        >>> remove_stale_staging(Path("runs/never-exported/model.onnx"))
        []
    """
    if os.name != "posix" or not final.parent.is_dir():
        return []
    removed = []
    for folder in final.parent.glob(".*.export-*"):
        match = _STAGING.match(folder.name)
        if not match or not folder.is_dir():
            continue
        pid = match["pid"]
        ours = match["name"] == final.name if pid else match["name"] == final.stem
        if ours and (pid is None or not _process_exists(int(pid))):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


def check_opset(model: Any, opset: Any, ela_op: str) -> None:
    """Refuse an ``opset=`` outside the range that exports ``model`` with ``ela_op`` and runs.

    Raises:
        ValueError: not an integer, older than :data:`ELA_MIN_OPSET` (model with ELA attention) or
            newer than :data:`MAX_OPSET`.

    Example:
        >>> from types import SimpleNamespace
        >>> check_opset(SimpleNamespace(model=ELAAttention2d(16, 2)), 14, "custom")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: opset=14: ela_op=custom needs opset 15 or newer (its ELA function uses CastLike); use opset=15...
    """
    if opset is None:
        return
    if not isinstance(opset, int) or isinstance(opset, bool):
        raise ValueError(f"opset={opset!r}: expected an integer ONNX opset")
    if opset > MAX_OPSET:
        raise ValueError(f"opset={opset}: the installed torch exports ONNX opsets up to {MAX_OPSET}")
    inner = getattr(model, "model", None)
    if not isinstance(inner, torch.nn.Module) or not any(isinstance(m, ELAAttention2d) for m in inner.modules()):
        return  # Ultralytics checks the floor of models without ELA
    floor = ELA_MIN_OPSET[ela_op]
    if opset < floor:
        why = "its ELA function uses CastLike" if ela_op == "custom" else "ELA's guarded division uses IsFinite"
        other = "" if ela_op == "standard" else f", or ela_op=standard (opset {ELA_MIN_OPSET['standard']} or newer)"
        raise ValueError(
            f"opset={opset}: ela_op={ela_op} needs opset {floor} or newer ({why}); "
            f"use opset={floor}..{MAX_OPSET}{other}"
        )


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
    """Run Ultralytics' ONNX exporter with its output redirected into ``staging``.

    Raises:
        ValueError: Ultralytics refused the settings (its assertions, such as an opset below its floor).
    """
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
    except AssertionError as err:  # Ultralytics states its requirements as assertions
        raise ValueError(" ".join(str(err).split())) from None
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
        ValueError: an unknown format or ela_op, int8 for ONNX or without calibration data, an
            ``opset`` outside the range that exports (:func:`check_opset`).

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
    check_opset(model, options.get("opset"), ela_op)
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
    remove_stale_staging(final)
    with tempfile.TemporaryDirectory(dir=final.parent, prefix=f".{final.name}.export-{os.getpid()}-") as tmp:
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
