"""``YOLOLAT``: Ultralytics' ``YOLO`` that builds YOLO-LAT models by name."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ultralytics import YOLO
from ultralytics.engine.exporter import export_formats
from ultralytics.nn.tasks import guess_model_task
from ultralytics.utils import DEFAULT_CFG_DICT, RANK

import yolo_lat.nn  # noqa: F401  (importing it registers the YOLO-LAT blocks with Ultralytics)
from yolo_lat.args import closest
from yolo_lat.export import export as export_model
from yolo_lat.export import register_ela_plugin

from .config import resolve_model_yaml
from .offline import ensure_plot_fonts
from .trainer import YOLOLATDetectionTrainer

__all__ = ["YOLOLAT"]


class YOLOLAT(YOLO):
    """A ``YOLO`` model that also knows the YOLO-LAT YAMLs and trains them.

    ``YOLOLAT("yolo-lat-n.yaml")`` builds ``cfg/yolo-lat.yaml`` at scale ``n`` (see
    :func:`~yolo_lat.models.resolve_model_yaml` for names); a ``.pt`` checkpoint, an exported
    model or an Ultralytics YAML such as ``yolo26n.yaml`` load exactly as with ``YOLO``.
    ``train``, ``val``, ``predict``, ``export``, ``info`` and ``fuse`` are ``YOLO``'s own.

    Args:
        model: model name, YAML path or checkpoint.
        task: task override (YOLO-LAT models are detectors: ``"detect"``).
        verbose: print the model summary on load.

    Example:
        >>> from yolo_lat import YOLOLAT
        >>> model = YOLOLAT("yolo-lat-n.yaml")
        >>> model.model.yaml["scale"], model.task
        ('n', 'detect')
    """

    def __init__(self, model: str | Path = "yolo-lat-n.yaml", task: str | None = None, verbose: bool = False) -> None:
        ensure_plot_fonts()
        if str(model).endswith(".engine"):
            _register_engine_plugin(model)
        super().__init__(model=model, task=task, verbose=verbose)

    def export(self, **kwargs: Any) -> str:
        """Export like ``YOLO.export``; ``format=onnx`` and ``format=engine`` go through :mod:`yolo_lat.export`.

        Those two formats accept ``ela_op="standard"|"custom"`` (ELA as standard ONNX ops, or one
        ``yolo_lat::ELA`` node per attention with a model-local function and a TensorRT plugin),
        ``half``, ``int8`` (engine, with ``data=`` for calibration), ``dynamic``, ``imgsz``, ``batch``,
        ``simplify``, ``opset``, ``workspace``, ``plugin="aot"|"jit"`` (engine: how the ELA plugin
        runs), and write their file atomically. Other formats are
        Ultralytics' own.

        Example:
            >>> YOLOLAT("yolo-lat-n.yaml").export(format="onnx", imgsz=320, ela_op="custom")  # doctest: +SKIP
            'yolo-lat-n.onnx'
        """
        fmt = str(kwargs.get("format", "torchscript")).lower()
        formats = [f for f in export_formats()["Argument"] if f != "-"]
        if fmt not in formats:
            raise ValueError(f"unknown export format '{fmt}'.{closest(fmt, formats)} Choose from: {', '.join(formats)}")
        if fmt in ("onnx", "engine"):
            return export_model(self, **kwargs)
        if "ela_op" in kwargs:
            raise ValueError(f"ela_op applies to format=onnx and format=engine, not format={fmt}")
        return super().export(**kwargs)

    def _new(self, cfg: str, task: str | None = None, verbose: bool = False) -> None:
        """Build a fresh model from a YAML name (the ``Model._new`` steps, with YOLO-LAT name resolution).

        Args:
            cfg: model name or path, e.g. ``"yolo-lat-s.yaml"``.
            task: task, guessed from the YAML's head when ``None``.
            verbose: print the layer table.
        """
        config = resolve_model_yaml(cfg)
        self.cfg = cfg
        self.task = task or guess_model_task(config)
        self.model = self._smart_load("model")(config, verbose=verbose and RANK == -1)
        # the trainer rebuilds the model from overrides["model"], resolved again by YOLOLATDetectionTrainer
        self.overrides["model"] = self.cfg
        self.overrides["task"] = self.task
        self.model.args = {**DEFAULT_CFG_DICT, **self.overrides}  # lets export work from a YAML build
        self.model.task = self.task
        self.model_name = cfg

    @property
    def task_map(self) -> dict[str, dict[str, Any]]:
        """``YOLO``'s task map with the detection trainer replaced by :class:`YOLOLATDetectionTrainer`."""
        mapping = dict(super().task_map)
        mapping["detect"] = {**mapping["detect"], "trainer": YOLOLATDetectionTrainer}
        return mapping


def _register_engine_plugin(engine: str | Path) -> None:
    """Register the ``yolo_lat::ELA`` TensorRT plugin before an engine that needs it is deserialised."""
    from ultralytics.nn.backends.base import BaseBackend

    if Path(engine).is_file() and BaseBackend.engine_header(engine)[1].get("ela_op") == "custom":
        register_ela_plugin()
