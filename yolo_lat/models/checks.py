"""Model sources checked before Ultralytics uses them: each problem is one :class:`ModelError` line.

Ultralytics reports a bad ``model=`` deep inside its loaders (``KeyError: 'backbone'`` for an empty
YAML, ``KeyError: 'C2PSAELAX'`` for a misspelt module, a ``TypeError`` for random bytes or a
text-model checkpoint). The checks here name the file and what is wrong instead:

* :func:`check_model_config`: a model YAML's structure (layer rows, module names with a
  did-you-mean, ``scales`` rows of numbers, ``nc``);
* :func:`check_model_path`: a directory or a file of no model format;
* :func:`explain_checkpoint`: why a ``.pt`` file did not load as a detector checkpoint;
* :func:`check_resumable`: ``resume=`` on a run that is finished or on something that is no
  training checkpoint.

Example:
    >>> check_model_config({"backbone": [[-1, 1, "Conv", [16, 3, 2]]], "head": [[-1, 1, "Detec", [1]]]}, "m.yaml")
    Traceback (most recent call last):
    ...
    yolo_lat.models.checks.ModelError: m.yaml: head layer 0: unknown module 'Detec'. Did you mean 'Detect'?
"""

from __future__ import annotations

import numbers
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import ultralytics.nn.tasks as ultralytics_tasks
import yaml
from ultralytics.nn.autobackend import AutoBackend

import yolo_lat.nn  # noqa: F401  (registers the YOLO-LAT blocks: module names resolve as in parse_model)
from yolo_lat.args import closest
from yolo_lat.text.checkpoint import FORMAT as TEXT_FORMAT

__all__ = [
    "ModelError",
    "check_model_config",
    "check_model_path",
    "check_resumable",
    "explain_checkpoint",
    "explain_yaml",
]

LAYER_FIELDS = "[from, repeats, module, args]"
SCALE_FIELDS = "[depth, width, max_channels]"


class ModelError(ValueError):
    """A ``model=`` (file, YAML content or checkpoint) that cannot be used; the message is one line."""


def _module_names() -> list[str]:
    """Every module name a model YAML may use without a prefix (the classes ``parse_model`` can see)."""
    return sorted(
        name
        for name, value in vars(ultralytics_tasks).items()
        if isinstance(value, type) and issubclass(value, torch.nn.Module)
    )


def _check_module(name: Any, where: str) -> None:
    if not isinstance(name, str) or not name:
        raise ModelError(f"{where}: the module (third field) must be a name such as Conv, got {name!r}")
    if name.startswith("nn."):
        if not isinstance(getattr(torch.nn, name[3:], None), type):
            raise ModelError(f"{where}: unknown module '{name}' (no torch.nn.{name[3:]})")
        return
    if name.startswith("torchvision.ops."):
        return  # resolved by Ultralytics from torchvision, an optional dependency
    names = _module_names()
    if name not in names:
        raise ModelError(f"{where}: unknown module '{name}'.{closest(name, names)}")


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def check_model_config(config: Any, file: str | Path) -> None:
    """Check the structure of a loaded model YAML; raise :class:`ModelError` naming ``file`` and the field.

    Args:
        config: the parsed YAML (a dict for a valid file).
        file: the YAML's path or name, for messages.

    Raises:
        ModelError: an empty file or not a mapping; ``backbone``/``head`` missing or not lists of
            ``[from, repeats, module, args]`` rows; an unknown module name (with the closest known one);
            a ``scales`` row that is not three numbers; ``nc`` not a positive integer.

    Example:
        >>> check_model_config({"scales": {"n": [0.5, "abc", 1024]}, "backbone": [], "head": []}, "m.yaml")
        ... # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        yolo_lat.models.checks.ModelError: m.yaml: scales: n is [0.5, 'abc', 1024]; each scale is [depth, ...
    """
    if not isinstance(config, Mapping) or not config:
        raise ModelError(f"{file}: empty model YAML; it needs backbone: and head: lists of {LAYER_FIELDS} layers")
    nc = config.get("nc")
    if nc is not None and (not isinstance(nc, int) or isinstance(nc, bool) or nc < 1):
        raise ModelError(f"{file}: nc: {nc!r} is not a number of classes (a positive integer)")
    scales = config.get("scales")
    if scales is not None:
        if not isinstance(scales, Mapping):
            raise ModelError(f"{file}: scales: expected a mapping such as n: {SCALE_FIELDS}, got {scales!r}")
        for letter, row in scales.items():
            if not isinstance(row, (list, tuple)) or len(row) != 3 or not all(_is_number(v) for v in row):
                raise ModelError(f"{file}: scales: {letter} is {row!r}; each scale is {SCALE_FIELDS}, three numbers")
    for section in ("backbone", "head"):
        layers = config.get(section)
        if not isinstance(layers, list) or (section == "head" and not layers):
            raise ModelError(f"{file}: {section}: expected a list of {LAYER_FIELDS} layers, got {layers!r}")
        for index, layer in enumerate(layers):
            where = f"{file}: {section} layer {index}"
            if not isinstance(layer, (list, tuple)) or len(layer) != 4:
                raise ModelError(f"{where}: expected {LAYER_FIELDS}, got {layer!r}")
            origin, repeats, module, args = layer
            if not isinstance(origin, (int, list)) or isinstance(origin, bool):
                raise ModelError(f"{where}: 'from' must be a layer index or a list of them, got {origin!r}")
            if not isinstance(repeats, int) or isinstance(repeats, bool) or repeats < 1:
                raise ModelError(f"{where}: repeats must be a positive integer, got {repeats!r}")
            _check_module(module, where)
            if not isinstance(args, list):
                raise ModelError(f"{where}: args (fourth field) must be a list, got {args!r}")


def explain_yaml(file: str | Path) -> str:
    """One line saying why ``file`` is not a YAML mapping: the syntax error and where, or the top level's type.

    Example:
        >>> import tempfile
        >>> f = Path(tempfile.mkdtemp()) / "m.yaml"
        >>> _ = f.write_text("backbone: [\\n")
        >>> explain_yaml(f).split(": ", 1)[1]
        "not valid YAML: expected the node content, but found '<stream end>' (line 2, column 1)"
    """
    try:
        parsed = yaml.safe_load(Path(file).read_text(encoding="utf-8", errors="ignore"))
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        return f"{file}: not valid YAML: {err.problem}{where}"
    except yaml.YAMLError as err:
        return f"{file}: not valid YAML: {' '.join(str(err).split())}"
    kind = type(parsed).__name__
    return f"{file}: not a model YAML: its top level is a {kind}, not key: value lines (backbone:, head:)"


def check_model_path(model: str | Path) -> None:
    """Refuse a path that is no model: missing, a plain directory, a ``.txt`` file, ...

    Bare names that do not exist (``yolo26n.pt``) and URLs are left to Ultralytics, which finds or
    downloads them; YAMLs are resolved by :func:`~yolo_lat.models.resolve_model_yaml`. Export
    folders (``best_openvino_model/``, ``best_saved_model/``) are model formats.

    Raises:
        ModelError: a missing path with a folder part, or a path that is neither a checkpoint, a
            YAML nor an exported model.

    Example:
        >>> check_model_path(".")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        yolo_lat.models.checks.ModelError: model=.: a directory, not a model; give a .pt checkpoint, ...
    """
    path = Path(model)
    if path.suffix.lower() in (".yaml", ".yml") or "://" in str(model):
        return  # YAML names resolve elsewhere (resolve_model_yaml); URLs are Ultralytics' to fetch
    if not path.exists():
        if len(path.parts) > 1:  # a bare name such as yolo26n.pt may be Ultralytics' to find or download
            raise ModelError(f"model={model}: no such file")
        return
    model_format = AutoBackend._model_type(str(path))
    if model_format is not None and not (model_format == "pt" and path.is_dir()):
        return
    what = "a directory" if path.is_dir() else "a file of no model format"
    raise ModelError(
        f"model={model}: {what}, not a model; give a .pt checkpoint, a model .yaml or an exported model "
        "(.onnx, .engine, ... or an export folder such as best_openvino_model/)"
    )


def explain_checkpoint(path: str | Path, error: BaseException) -> str:
    """One line saying why ``path`` did not load as an Ultralytics detector checkpoint.

    Called after Ultralytics failed with ``error``: the file is read once more with
    ``torch.load(weights_only=True)`` (no code runs) to tell a corrupted file from a text-model
    checkpoint or a dict of the wrong shape.

    Args:
        path: the ``.pt`` file.
        error: what Ultralytics raised.

    Returns:
        The message, starting with ``path``.

    Example:
        >>> import tempfile
        >>> f = Path(tempfile.mkdtemp()) / "x.pt"
        >>> _ = f.write_bytes(b"not a checkpoint")
        >>> print(explain_checkpoint(f, TypeError("corrupted")).split(": ", 1)[1])  # doctest: +ELLIPSIS
        not a PyTorch checkpoint: the file (16 bytes) is empty, truncated or corrupted; give the .pt that ...
    """
    path = Path(path)
    size = path.stat().st_size
    fix = "give the .pt that yolo-lat train wrote (runs/detect/NAME/weights/best.pt)"
    try:
        record = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # any failure to read is the diagnosis
        if size == 0 or not zipfile.is_zipfile(path) or "Unsupported global" not in str(err):
            return f"{path}: not a PyTorch checkpoint: the file ({size} bytes) is empty, truncated or corrupted; {fix}"
        first = " ".join(str(error).split())[:200]
        return f"{path}: not a checkpoint yolo-lat can load ({type(error).__name__}: {first}); {fix}"
    if isinstance(record, Mapping) and str(record.get("format", "")).startswith(TEXT_FORMAT.split("/")[0]):
        return (
            f"{path}: an ELA text-model checkpoint ({record['format']}), not a detector; use it with "
            f"'yolo-lat text generate model={path}', or {fix}"
        )
    if not isinstance(record, Mapping):
        return f"{path}: holds a {type(record).__name__}, not an Ultralytics checkpoint dict; {fix}"
    keys = ", ".join(map(str, list(record)[:8])) or "none"
    if "model" not in record:
        return f"{path}: no 'model' entry (keys: {keys}), not an Ultralytics checkpoint; {fix}"
    return f"{path}: its 'model' is a {type(record['model']).__name__} (weights only), not a detector model; {fix}"


def check_resumable(checkpoint: Mapping[str, Any] | None, path: str | Path | None) -> None:
    """Refuse ``resume=`` when ``checkpoint`` has nothing left to train.

    A finished run's checkpoint has its optimizer stripped and ``epoch == -1``; one saved at the
    last planned epoch (a run stopped between its final save and the strip) is finished too.

    Args:
        checkpoint: the loaded checkpoint dict (``YOLOLAT(...).ckpt``), or None for a model built
            from a YAML.
        path: the checkpoint's file, for messages.

    Raises:
        ModelError: no checkpoint, or a finished run; the message says how to train further.

    Example:
        >>> finished = {"epoch": -1, "optimizer": None, "train_args": {"epochs": 3, "data": "d.yaml"}}
        >>> check_resumable(finished, "last.pt")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        yolo_lat.models.checks.ModelError: last.pt: this training run is finished (3 epochs), nothing to resume; ...
    """
    if not checkpoint or path is None:
        raise ModelError(
            "resume=True continues an unfinished run: give its checkpoint, e.g. model=runs/detect/train/weights/last.pt"
        )
    args = checkpoint.get("train_args") or {}
    planned = args.get("epochs")
    epoch = checkpoint.get("epoch", -1)
    finished = epoch is None or epoch < 0 or checkpoint.get("optimizer") is None
    if not finished and isinstance(planned, int) and epoch + 1 >= planned:
        finished = True
    if finished:
        runs = f" ({planned} epoch{'s' * (planned != 1)})" if isinstance(planned, int) else ""
        data = f" data={args['data']}" if args.get("data") else ""
        raise ModelError(
            f"{path}: this training run is finished{runs}, nothing to resume; to train further, start a new run "
            f"from its weights without resume: yolo-lat train model={path}{data} epochs=N"
        )
