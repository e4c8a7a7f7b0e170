"""Text-model checkpoints: written atomically (temporary name, then rename) and loaded with their tokenizer.

Loading checks what it reads: a missing file, a folder, bytes ``torch.load`` cannot read, a
detector's (or any other) checkpoint, or weights that do not fit their config each raise one line
naming the file.
"""

from __future__ import annotations

import os
import pickletools
import zipfile
from pathlib import Path
from typing import Any

import torch

from .config import ELAGPTConfig
from .model import ELAGPT
from .tokenizer import Tokenizer, load_tokenizer

__all__ = ["FORMAT", "find_latest_checkpoint", "load_model", "load_weights", "read_checkpoint", "save_checkpoint"]

FORMAT = "yolo-lat-text/1"


def save_checkpoint(record: dict[str, Any], path: str | Path) -> Path:
    """Save ``record`` with ``torch.save`` to a temporary file, then rename it over ``path``.

    A crash while writing leaves the previous checkpoint intact, never a half-written one.

    Args:
        record: the checkpoint dict (``config``, ``model`` state dict, ``step``, ...).
        path: destination file.

    Returns:
        The destination path.

    Example:
        >>> save_checkpoint({"format": FORMAT}, "runs/text/example/last.pt")  # doctest: +SKIP
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        torch.save(record, tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def find_latest_checkpoint(project: str | Path = "runs/text", filename: str = "last.pt") -> Path:
    """The most recently written ``filename`` in any run folder under ``project``.

    Raises:
        FileNotFoundError: there is none.
    """
    candidates = sorted(Path(project).glob(f"*/{filename}"), key=lambda p: p.stat().st_mtime)
    if not candidates:
        raise FileNotFoundError(f"no {filename} under {project}/; train one with 'yolo-lat text train'")
    return candidates[-1]


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """The record of a text checkpoint (``torch.load`` with ``weights_only=True``), checked for its format.

    Args:
        path: a ``last.pt`` or ``best.pt`` written by ``yolo-lat text train``.

    Returns:
        The checkpoint dict (``format``, ``config``, ``model``, ``settings``, ...).

    Raises:
        FileNotFoundError: no such file.
        ValueError: a folder, a file ``torch.load`` cannot read (damaged, not a checkpoint), or a
            checkpoint of another kind (an Ultralytics detector's, a bare state dict); one line
            naming the file.

    Example:
        >>> read_checkpoint("runs/text/train/last.pt")["step"]  # doctest: +SKIP
        200
    """
    path = Path(path)
    if path.is_dir():
        inside = [name for name in ("last.pt", "best.pt") if (path / name).is_file()]
        hint = f"; give {path / inside[0]}" if inside else "; give its last.pt or best.pt"
        raise ValueError(f"{path} is a directory, not a checkpoint file{hint}")
    if not path.exists():
        raise FileNotFoundError(f"checkpoint not found: {path}; train one with 'yolo-lat text train'")
    try:
        record = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch.load fails in many ways on bytes that are not a text checkpoint
        classes = _pickled_classes(path)
        if classes:  # a readable pickle holding objects weights_only refuses to build
            raise ValueError(f"{path} is not a yolo-lat text checkpoint: {_foreign(path, classes)}") from None
        if isinstance(err, OSError):
            reason = f"cannot be read: {err.strerror or err}"
        elif zipfile.is_zipfile(path):
            reason = " ".join(str(err).split()).split(". ")[0][:160] or type(err).__name__
        else:
            reason = "not a zip archive as torch.save writes"
        raise ValueError(f"{path} is damaged or not a checkpoint ({reason}); give a last.pt or best.pt") from None
    if not isinstance(record, dict):
        raise ValueError(f"{path} is not a yolo-lat text checkpoint: it holds a {type(record).__name__}, not a dict")
    if record.get("format") != FORMAT:
        found = f"its format is {record['format']!r}" if "format" in record else "it has no 'format' entry"
        keys = ", ".join(sorted(map(str, record))[:6]) or "none"
        kind = ", an Ultralytics checkpoint" if "train_args" in record else ""
        raise ValueError(
            f"{path} is not a yolo-lat text checkpoint ({FORMAT}): {found} (keys: {keys}{kind}); "
            "give a last.pt or best.pt from 'yolo-lat text train'"
        )
    return record


def _foreign(path: Path, classes: list[str]) -> str:
    """Why ``weights_only`` refused ``path``: the classes its pickle names (:func:`_pickled_classes`)."""
    detector = next((name for name in classes if name.startswith("ultralytics.")), None)
    if detector:
        return (
            f"it is an Ultralytics model checkpoint ({detector}); use it with 'yolo-lat predict model={path}', "
            "or give a last.pt from 'yolo-lat text train'"
        )
    named = ", ".join(classes[:3])
    return f"it holds Python objects ({named}) that a text checkpoint never has; give one from 'yolo-lat text train'"


def _pickled_classes(path: Path) -> list[str]:
    """``module.Class`` names a ``torch.save`` archive's pickle refers to, read with ``pickletools``."""
    try:
        with zipfile.ZipFile(path) as archive:
            name = next(n for n in archive.namelist() if n.endswith("data.pkl"))
            data = archive.read(name)
        strings: list[str] = []
        classes: list[str] = []
        for opcode, arg, _ in pickletools.genops(data):
            if opcode.name in ("GLOBAL", "INST"):
                classes.append(str(arg).replace(" ", "."))
            elif opcode.name == "STACK_GLOBAL" and len(strings) >= 2:
                classes.append(f"{strings[-2]}.{strings[-1]}")
            elif isinstance(arg, str):
                strings.append(arg)
    except Exception:  # not a zip archive or a pickle it cannot walk: no names to report
        return []
    skipped = ("collections.", "torch.", "builtins.", "_codecs.")
    return list(dict.fromkeys(name for name in classes if not name.startswith(skipped)))


def load_model(path: str | Path, device: str | torch.device = "cpu") -> tuple[ELAGPT, Tokenizer, dict[str, Any]]:
    """Load a trained model, its tokenizer and the checkpoint record.

    Args:
        path: a checkpoint written by ``yolo-lat text train`` (``last.pt`` or ``best.pt``).
        device: where to put the model.

    Returns:
        ``(model in eval mode, tokenizer, record)``.

    Raises:
        FileNotFoundError: no such file.
        ValueError: anything :func:`read_checkpoint` refuses, an invalid config, weights that do not
            fit the config or are not finite; one line naming the file.

    Example:
        >>> model, tokenizer, record = load_model("runs/text/train/last.pt")  # doctest: +SKIP
    """
    path = Path(path)
    record = read_checkpoint(path)
    try:
        config = ELAGPTConfig.from_dict(record["config"])
    except (KeyError, TypeError, ValueError) as err:
        reason = "no config" if isinstance(err, KeyError) else " ".join(str(err).split())
        raise ValueError(f"{path}: damaged text checkpoint, its config is invalid ({reason})") from None
    model = ELAGPT(config)
    load_weights(model, record, path)
    return model.to(device).eval(), load_tokenizer(record.get("tokenizer", "byte")), record


def load_weights(model: ELAGPT, record: dict[str, Any], path: str | Path) -> None:
    """Load ``record["model"]`` into ``model`` once it is known to be a finite state dict of the model's shapes.

    Args:
        model: a model built from the record's config.
        record: a checkpoint record (:func:`read_checkpoint`).
        path: the checkpoint file, named in messages.

    Raises:
        ValueError: missing, unexpected or reshaped weights, or NaN/infinite ones; one line naming ``path``.
    """
    weights, expected = record.get("model"), model.state_dict()
    if not isinstance(weights, dict):
        raise ValueError(f"{path}: damaged text checkpoint, it has no model weights")
    missing = [key for key in expected if key not in weights]
    unexpected = [key for key in weights if key not in expected]
    reshaped = [
        key
        for key in expected
        if key in weights and (not isinstance(weights[key], torch.Tensor) or weights[key].shape != expected[key].shape)
    ]
    if missing or unexpected or reshaped:
        first = (missing + unexpected + reshaped)[0]
        raise ValueError(
            f"{path}: damaged text checkpoint, its weights do not fit its config ({len(missing)} missing, "
            f"{len(unexpected)} unexpected, {len(reshaped)} of another shape; first: {first})"
        )
    floats = {key: value for key, value in weights.items() if value.is_floating_point()}
    bad = next((key for key, value in floats.items() if not value.isfinite().all()), None)
    if bad is not None:
        raise ValueError(
            f"{path}: its weights hold NaN or infinity ({bad}); the run diverged or the file is damaged, "
            "retrain with a lower lr"
        )
    model.load_state_dict(weights)
