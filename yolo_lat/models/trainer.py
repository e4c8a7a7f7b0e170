"""Training hook: the detection trainer that builds models from YOLO-LAT names.

Ultralytics' trainer rebuilds the model from ``args.model`` (a name such as ``yolo-lat-n.yaml``)
in the main process and, for multi-GPU runs, in every DDP worker, which unpickles this class by
module path; importing this module imports :mod:`yolo_lat.nn`, which registers the blocks.

It also makes every checkpoint write atomic (a run killed at any moment never leaves a
half-written ``last.pt``/``best.pt``/``epochN.pt`` under its final name, so ``resume=True`` always
finds a loadable one) and keeps the AMP check and plot fonts offline
(:mod:`yolo_lat.models.offline`).
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from torch import nn
from ultralytics.engine import trainer as ultralytics_trainer
from ultralytics.models.yolo.detect import DetectionTrainer
from ultralytics.nn.tasks import DetectionModel
from ultralytics.utils import LOGGER

import yolo_lat.nn  # noqa: F401  (importing it registers the YOLO-LAT blocks with Ultralytics)

from .config import resolve_model_yaml
from .convert import transfer_report
from .offline import offline_training_checks

_STAGING = ".partial"  # checkpoints are written into wdir/.partial/ and renamed into wdir

__all__ = ["YOLOLATDetectionTrainer"]


class YOLOLATDetectionTrainer(DetectionTrainer):
    """``DetectionTrainer`` whose :meth:`get_model` understands YOLO-LAT model names.

    Example:
        >>> from yolo_lat import YOLOLAT
        >>> YOLOLAT("yolo-lat-n.yaml").task_map["detect"]["trainer"].__name__
        'YOLOLATDetectionTrainer'
    """

    def get_model(
        self, cfg: str | Path | dict[str, Any] | None = None, weights: nn.Module | None = None, verbose: bool = True
    ) -> DetectionModel:
        """Build a detection model from a name, path or dict; optionally load ``weights`` into it.

        Args:
            cfg: model name (``yolo-lat-n.yaml``), path, or an already loaded model dict.
            weights: a model whose matching parameters are copied in; what was loaded and what was not
                is logged (:func:`~yolo_lat.models.convert.transfer_report`), e.g. ``pretrained: loaded
                691/691 tensors from yolo12n.pt``.
            verbose: print the layer table and the transfer report.

        Returns:
            The ``DetectionModel`` with ``nc`` and input channels of the dataset.
        """
        if isinstance(cfg, (str, Path)):
            cfg = resolve_model_yaml(cfg)
        model = super().get_model(cfg=cfg, weights=weights, verbose=verbose)
        if weights is not None and verbose:
            from_pretrained = isinstance(self.args.pretrained, (str, Path)) and not getattr(self, "resume", False)
            label = "pretrained" if from_pretrained else "weights"
            for line in transfer_report(model, weights).lines(label):
                LOGGER.info(line)
        return model

    def _setup_train(self) -> None:
        """Ultralytics' setup, with the AMP check done locally (no yolo26n.pt download)."""
        with offline_training_checks():
            super()._setup_train()

    def save_model(self) -> bool:
        """Ultralytics' checkpointing, written to a staging folder and renamed into place.

        ``os.replace`` within one folder is atomic: at any instant ``last.pt`` is either the
        previous complete checkpoint or the new complete one.
        """
        final_wdir, final_last, final_best = self.wdir, self.last, self.best
        staging = final_wdir / _STAGING
        self.wdir, self.last, self.best = staging, staging / final_last.name, staging / final_best.name
        try:
            saved = super().save_model()
        finally:
            self.wdir, self.last, self.best = final_wdir, final_last, final_best
        _publish(staging, final_wdir)
        return saved

    def final_eval(self) -> Any:
        """Ultralytics' final evaluation, with the optimizer stripped into a staged copy first."""
        with _atomic_strip_optimizer():
            return super().final_eval()


def _publish(staging: Path, destination: Path) -> None:
    """Move every file of ``staging`` into ``destination`` (atomic renames), then drop ``staging``."""
    if not staging.is_dir():
        return
    for file in staging.iterdir():
        os.replace(file, destination / file.name)
    with contextlib.suppress(OSError):
        staging.rmdir()


@contextlib.contextmanager
def _atomic_strip_optimizer() -> Iterator[None]:
    """Make Ultralytics' end-of-training ``strip_optimizer`` write a staged file and rename it.

    Ultralytics' own log line would name the staged file, which no longer exists afterwards; it is
    replaced by one that names the final file (warnings still show).
    """
    original = ultralytics_trainer.strip_optimizer

    def strip_atomically(f: str | Path = "best.pt", s: str = "", updates: dict[str, Any] | None = None):
        target = Path(s or f)
        staged = target.with_name(f".{target.name}{_STAGING}")
        level = LOGGER.level
        try:
            LOGGER.setLevel(max(level, logging.WARNING))
            try:
                result = original(f, s=str(staged), updates=updates)
            finally:
                LOGGER.setLevel(level)
            if staged.exists():
                os.replace(staged, target)
                saved_as = f", saved as {target}" if s else ""
                LOGGER.info(f"Optimizer stripped from {f}{saved_as} ({target.stat().st_size / 1e6:.1f} MB)")
            return result
        finally:
            staged.unlink(missing_ok=True)

    ultralytics_trainer.strip_optimizer = strip_atomically
    try:
        yield
    finally:
        ultralytics_trainer.strip_optimizer = original
