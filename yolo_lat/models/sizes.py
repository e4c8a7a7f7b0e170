"""The smallest training image size a detector can use: its loss must find enough anchor points.

Ultralytics' detection losses assign every object its ``topk`` best anchor points (10 for the
one-to-many head) with ``torch.topk`` over all anchor points of the image, so an image must have at
least ``topk`` of them: ``sum((size / stride) ** 2)`` over the model's output strides. Training
rounds ``imgsz`` up to a multiple of ``gs = max(32, largest stride)`` (and ``multi_scale`` draws
sizes down to ``imgsz * (1 - multi_scale)``); a model with few, coarse outputs, such as
yolo-lat-pico (one output at stride 16: 4 points at 32), needs a larger floor than the three-scale
models (21 points at 32).

Example:
    >>> from yolo_lat.models import YOLOLAT
    >>> [smallest_train_imgsz(YOLOLAT(name).model) for name in ("yolo-lat-pico.yaml", "yolo-lat-n.yaml")]
    [64, 32]
"""

from __future__ import annotations

import math
from typing import Any

from torch import nn
from ultralytics.nn.tasks import DetectionModel

__all__ = ["anchor_points", "assigner_topk", "check_train_imgsz", "smallest_train_imgsz"]


def assigner_topk(criterion: Any) -> int:
    """The largest ``topk`` of the label assigners in a loss (0 when it has none).

    Looks at ``criterion.assigner`` and, for end-to-end losses, at their ``one2many``/``one2one`` parts.
    """
    parts = [criterion, *(getattr(criterion, name, None) for name in ("one2many", "one2one"))]
    return max((int(getattr(getattr(part, "assigner", None), "topk", 0) or 0) for part in parts), default=0)


def anchor_points(strides: list[float], size: int) -> int:
    """Anchor points of a ``size`` x ``size`` image over outputs at ``strides``.

    Example:
        >>> anchor_points([8, 16, 32], 32), anchor_points([16], 32)
        (21, 4)
    """
    return sum(math.ceil(size / s) ** 2 for s in strides)


def _grid(model: nn.Module) -> tuple[list[float], int]:
    strides = [float(s) for s in model.stride.flatten().tolist()]
    return strides, max(int(max(strides)), 32)


def _train_sizes(imgsz: Any, gs: int, multi_scale: float) -> tuple[int, int]:
    """``(training size, smallest size multi_scale draws)`` as Ultralytics' trainer computes them."""
    size = max(int(v) for v in imgsz) if isinstance(imgsz, (list, tuple)) else int(imgsz)
    size = max(math.ceil(size / gs) * gs, gs)
    low = max(gs, int(size * (1.0 - multi_scale))) // gs * gs if multi_scale > 0 else size
    return size, low


def smallest_train_imgsz(model: nn.Module, multi_scale: float = 0.0) -> int | None:
    """The smallest ``imgsz`` at which ``model`` (a detection model) trains.

    Args:
        model: an Ultralytics ``DetectionModel``.
        multi_scale: the ``multi_scale=`` setting (the floor then holds for the smallest drawn size).

    Returns:
        A multiple of the model's grid size (``max(32, largest stride)``), or None when no size
        does (``multi_scale`` so large that it always draws the grid size).
    """
    strides, gs = _grid(model)
    need = assigner_topk(model.init_criterion())
    for size in range(gs, 256 * gs + 1, gs):
        if anchor_points(strides, _train_sizes(size, gs, multi_scale)[1]) >= need:
            return size
    return None


def check_train_imgsz(model: nn.Module, imgsz: Any, multi_scale: float = 0.0, name: str = "the model") -> None:
    """Refuse an ``imgsz`` too small for ``model``'s loss before training starts.

    Args:
        model: the model about to be trained (other than a ``DetectionModel``: nothing is checked).
        imgsz: the ``imgsz=`` setting (an int or ``[h, w]``).
        multi_scale: the ``multi_scale=`` setting.
        name: the model in messages (its YAML or checkpoint).

    Raises:
        ValueError: one line with the anchor points at that size and the smallest size that trains.

    Example:
        >>> from yolo_lat.models import YOLOLAT
        >>> check_train_imgsz(YOLOLAT("yolo-lat-pico.yaml").model, 32, name="yolo-lat-pico.yaml")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: imgsz=32 is too small to train yolo-lat-pico.yaml: at 32 its outputs (stride 16) have 4 ...
    """
    if not isinstance(model, DetectionModel):
        return
    strides, gs = _grid(model)
    need = assigner_topk(model.init_criterion())
    size, low = _train_sizes(imgsz, gs, float(multi_scale or 0.0))
    points = anchor_points(strides, low)
    if points >= need:
        return
    given = f"imgsz={imgsz}" + (f" with multi_scale={multi_scale} (down to {low})" if low != size else "")
    shown = ", ".join(f"{s:g}" for s in strides)
    smallest = smallest_train_imgsz(model, float(multi_scale or 0.0))
    fix = f"use imgsz={smallest} or more" if smallest else "use a smaller multi_scale"
    raise ValueError(
        f"{given} is too small to train {name}: at {low} its outputs (stride {shown}) have {points} anchor points "
        f"and its loss assigns each object the best {need}; {fix}"
    )
