"""Text-model checkpoints: written atomically (temporary name, then rename) and loaded with their tokenizer."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from .config import ELAGPTConfig
from .model import ELAGPT
from .tokenizer import Tokenizer, load_tokenizer

__all__ = ["FORMAT", "find_latest_checkpoint", "load_model", "save_checkpoint"]

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


def load_model(path: str | Path, device: str | torch.device = "cpu") -> tuple[ELAGPT, Tokenizer, dict[str, Any]]:
    """Load a trained model, its tokenizer and the checkpoint record.

    Args:
        path: a checkpoint written by ``yolo-lat text train`` (``last.pt`` or ``best.pt``).
        device: where to put the model.

    Returns:
        ``(model in eval mode, tokenizer, record)``.

    Example:
        >>> model, tokenizer, record = load_model("runs/text/train/last.pt")  # doctest: +SKIP
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    record = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        raise ValueError(f"{path} is not a yolo-lat text checkpoint (format {FORMAT})")
    model = ELAGPT(ELAGPTConfig.from_dict(record["config"]))
    model.load_state_dict(record["model"])
    return model.to(device).eval(), load_tokenizer(record.get("tokenizer", "byte")), record
