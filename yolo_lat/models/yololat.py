"""``YOLOLAT``: Ultralytics' ``YOLO`` that builds YOLO-LAT models by name."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import torch
from ultralytics import YOLO
from ultralytics.engine.exporter import export_formats
from ultralytics.nn.tasks import guess_model_task
from ultralytics.utils import DEFAULT_CFG_DICT, RANK

import yolo_lat.nn  # noqa: F401  (importing it registers the YOLO-LAT blocks with Ultralytics)
from yolo_lat.args import closest
from yolo_lat.export import export as export_model
from yolo_lat.export import register_ela_plugin

from .checks import ModelError, check_model_path, check_resumable, explain_checkpoint
from .config import resolve_model_yaml
from .convert import check_pretrained
from .offline import ensure_plot_fonts
from .sizes import check_train_imgsz
from .trainer import YOLOLATDetectionTrainer

__all__ = ["YOLOLAT"]

_Method = TypeVar("_Method", bound=Callable[..., Any])


def _restoring_threads(results: Iterator[Any], threads: int) -> Iterator[Any]:
    try:
        for item in results:
            torch.set_num_threads(threads)
            yield item
    finally:
        torch.set_num_threads(threads)


def keeps_torch_threads(method: _Method) -> _Method:
    """Run ``method`` and restore torch's CPU thread count afterwards (also after each streamed result).

    Ultralytics' device selection sets ``torch.set_num_threads(cpu_count - 1)`` for the whole
    process (1 on a 2-core machine); whatever the caller measures or runs next keeps its own count.

    Args:
        method: the function to wrap; a generator it returns is wrapped too.

    Example:
        >>> lowers = keeps_torch_threads(lambda: torch.set_num_threads(1))
        >>> before = torch.get_num_threads()
        >>> lowers()
        >>> torch.get_num_threads() == before
        True
    """

    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        threads = torch.get_num_threads()
        try:
            result = method(*args, **kwargs)
        finally:
            torch.set_num_threads(threads)
        return _restoring_threads(result, threads) if inspect.isgenerator(result) else result

    return wrapper  # type: ignore[return-value]


class YOLOLAT(YOLO):
    """A ``YOLO`` model that also knows the YOLO-LAT YAMLs and trains them.

    ``YOLOLAT("yolo-lat-n.yaml")`` builds ``cfg/yolo-lat.yaml`` at scale ``n`` (see
    :func:`~yolo_lat.models.resolve_model_yaml` for names); a ``.pt`` checkpoint, an exported
    model or an Ultralytics YAML such as ``yolo26n.yaml`` load exactly as with ``YOLO``.
    ``train``, ``val``, ``predict``, ``export``, ``info`` and ``fuse`` are ``YOLO``'s own, with
    checks first: a ``model`` that is no model (a directory, a corrupted or text-model checkpoint, a
    YAML with an unknown module) and ``train(resume=True)`` on a finished run raise a one-line
    ``ModelError``; ``train`` at an ``imgsz`` too small for the model's loss raises ``ValueError``.
    None of them changes torch's CPU thread count (Ultralytics' device selection would).

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
        check_model_path(model)
        if str(model).endswith(".engine"):
            _register_engine_plugin(model)
        super().__init__(model=model, task=task, verbose=verbose)

    def check_train(self, **kwargs: Any) -> None:
        """Refuse training settings that cannot train, before anything is written (``train`` runs this first).

        Args:
            **kwargs: the ``train`` settings (``resume``, ``imgsz``, ``multi_scale``, ``pretrained`` are looked at).

        Raises:
            ModelError: ``resume=`` on a finished run or on a model that is no training checkpoint
                (:func:`~yolo_lat.models.checks.check_resumable`).
            ValueError: an ``imgsz`` too small for the model's loss
                (:func:`~yolo_lat.models.sizes.check_train_imgsz`).
            ModelError: a ``pretrained=`` file that is missing or no checkpoint
                (:func:`~yolo_lat.models.convert.check_pretrained`).

        Example:
            >>> YOLOLAT("yolo-lat-pico.yaml").check_train(imgsz=32)  # doctest: +ELLIPSIS
            Traceback (most recent call last):
            ...
            ValueError: imgsz=32 is too small to train yolo-lat-pico.yaml: ... use imgsz=64 or more
        """
        resume = kwargs.get("resume")
        if resume is True:
            check_resumable(self.ckpt, self.ckpt_path)
        elif isinstance(resume, (str, Path)) and Path(resume).is_file():
            check_resumable(YOLOLAT(str(resume)).ckpt, resume)
        else:
            imgsz = kwargs.get("imgsz") or self.overrides.get("imgsz") or DEFAULT_CFG_DICT["imgsz"]
            multi_scale = kwargs.get("multi_scale", self.overrides.get("multi_scale", DEFAULT_CFG_DICT["multi_scale"]))
            check_train_imgsz(self.model, imgsz, multi_scale, name=str(self.model_name))
            check_pretrained(kwargs.get("pretrained", self.overrides.get("pretrained")))

    @keeps_torch_threads
    def train(self, trainer: Any = None, **kwargs: Any) -> Any:
        """Train like ``YOLO.train`` after :meth:`check_train`."""
        self.check_train(**kwargs)
        return super().train(trainer=trainer, **kwargs)

    @keeps_torch_threads
    def val(self, validator: Any = None, **kwargs: Any) -> Any:
        """Validate like ``YOLO.val``."""
        return super().val(validator=validator, **kwargs)

    @keeps_torch_threads
    def predict(self, source: Any = None, stream: bool = False, predictor: Any = None, **kwargs: Any) -> Any:
        """Predict like ``YOLO.predict`` (``stream=True`` gives a generator)."""
        return super().predict(source=source, stream=stream, predictor=predictor, **kwargs)

    @keeps_torch_threads
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

    def _load(self, weights: str, task: str | None = None) -> None:
        """Load a checkpoint or exported model as ``Model._load`` does; a ``.pt`` that fails says why in one line.

        Raises:
            ModelError: ``weights`` is a ``.pt`` file that is not a detector checkpoint (corrupted,
                a text-model checkpoint, a bare state dict, ...).
        """
        try:
            super()._load(weights, task=task)
        except Exception as err:
            if Path(weights).suffix.lower() != ".pt" or not Path(weights).is_file():
                raise
            raise ModelError(explain_checkpoint(weights, err)) from err

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
        try:
            self.model = self._smart_load("model")(config, verbose=verbose and RANK == -1)
        except Exception as err:  # the YAML passed the structure checks but its layers do not fit together
            detail = " ".join(f"{type(err).__name__}: {err}".split())[:300]
            raise ModelError(f"{cfg}: cannot build the model from this YAML ({detail})") from err
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
