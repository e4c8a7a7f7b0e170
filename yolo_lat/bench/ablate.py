"""Attention ablation: mAP of a trained detector with each attention block's contribution removed in turn.

``yolo-lat benchmark ablate model=runs/benchmark/accuracy/yolo-lat-n-s0/weights/best.pt data=synth``

An attention block is a layer of the model (a row of its YAML, ``model.model[i]``) that holds
attention modules: YOLO-LAT's :class:`~yolo_lat.nn.ELAAttention2d` (in ``ELABlock``, used by
``A2C2fELA``, ``C2fELA`` and ``C2PSAELA``) and Ultralytics' ``AAttn`` (YOLO12's area attention in
``A2C2f``/``ABlock``) and ``Attention`` (the PSA attention of ``C2PSA``/``PSABlock`` in YOLO11 and
YOLO26). Removing one means: every attention module of that layer returns zeros (a forward hook
replaces its output, which includes its positional convolution and output projection), so the
residual around it, ``x = x + attn(x)`` in ``ELABlock``, ``ABlock`` and ``PSABlock``, passes ``x``
through unchanged while the MLP after it still runs; nothing is retrained. The model is validated
as is, then with each layer's attention removed in turn, then with all of it removed, on the same
data, split, ``imgsz`` and ``batch``. The hooks are removed after each evaluation, and each
evaluation checks that its hooks ran.

Outputs: ``<project>/<name>.json`` and ``<name>.md`` (layer index, module type, attention
parameters, mAP50-95, its change from the full model, mAP50), the table printed at the end.
"""

from __future__ import annotations

import contextlib
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn
from ultralytics.nn.modules.block import AAttn, Attention

from yolo_lat.args import ArgumentError
from yolo_lat.bench.accuracy_report import ablation_markdown as markdown
from yolo_lat.bench.models import _versions
from yolo_lat.bench.runner import write_json, write_text
from yolo_lat.cli.model import prepare_data
from yolo_lat.models import YOLOLAT
from yolo_lat.nn import ELAAttention2d

DEFAULTS: dict[str, Any] = {
    "model": "",
    "data": "",
    "imgsz": 0,
    "batch": 16,
    "split": "val",
    "device": "cpu",
    "project": "runs/benchmark",
    "name": "ablate",
}
DOCS = {
    "model": "trained checkpoint (.pt) of a detector with attention (yolo-lat, yolo12-ela, YOLO12, YOLO11/26)",
    "data": "dataset YAML or synth (default: the dataset the checkpoint was trained on)",
    "imgsz": "validation image size (0: the checkpoint's training size)",
    "batch": "validation batch size",
    "split": "dataset split to validate on",
    "device": "cpu or a CUDA index such as 0",
    "project": "output folder",
    "name": "run name (files: <project>/<name>.json and .md)",
}

#: Module types whose output an ablation replaces by zeros.
ATTENTION_TYPES: tuple[type[nn.Module], ...] = (ELAAttention2d, AAttn, Attention)


def attention_layers(model: nn.Module) -> list[tuple[int, nn.Module, list[nn.Module]]]:
    """The layers of a detection model that hold attention modules, with those modules.

    Args:
        model: an Ultralytics ``DetectionModel`` (its layers are ``model.model``, one per YAML row).

    Returns:
        ``(index, layer, modules)`` for every layer holding at least one of :data:`ATTENTION_TYPES`;
        a module inside another one found is not listed again.

    Example:
        >>> from yolo_lat import YOLOLAT
        >>> [(i, type(layer).__name__, len(m)) for i, layer, m in attention_layers(YOLOLAT("yolo12n.yaml").model)]
        [(6, 'A2C2f', 4), (8, 'A2C2f', 4)]
    """
    found = []
    for index, layer in enumerate(model.model):
        modules: list[nn.Module] = []
        inside: set[int] = set()
        for module in layer.modules():
            if isinstance(module, ATTENTION_TYPES) and id(module) not in inside:
                modules.append(module)
                inside.update(id(m) for m in module.modules())
        if modules:
            found.append((index, layer, modules))
    return found


class _Zeroing:
    """Forward hooks that replace the outputs of some modules by zeros, counting their calls."""

    def __init__(self) -> None:
        self.calls = 0

    def __deepcopy__(self, memo: dict) -> _Zeroing:
        return self  # a copy of the hooked model (Ultralytics' validator may make one) shares the count

    def __call__(self, module: nn.Module, inputs: tuple[Any, ...], output: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return torch.zeros_like(output)


@contextlib.contextmanager
def removed(modules: Sequence[nn.Module]) -> Iterator[_Zeroing]:
    """Within the block, each of ``modules`` outputs zeros; its hooks are removed on exit.

    Yields:
        The hook, whose ``calls`` counts the zeroed forward calls.

    Example:
        >>> layer = nn.Linear(2, 2)
        >>> with removed([layer]) as hook:
        ...     zeros = layer(torch.ones(1, 2))
        >>> zeros.abs().sum().item(), hook.calls, len(layer._forward_hooks)
        (0.0, 1, 0)
    """
    hook = _Zeroing()
    handles = [module.register_forward_hook(hook) for module in modules]
    try:
        yield hook
    finally:
        for handle in handles:
            handle.remove()


def _load(settings: dict[str, Any]) -> YOLOLAT:
    model = str(settings["model"])
    if not model:
        raise ArgumentError("model: give a trained checkpoint, e.g. model=runs/detect/train/weights/best.pt")
    path = Path(model)
    if not path.is_file():
        raise ArgumentError(f"model={model}: no such file")
    if path.suffix.lower() != ".pt":
        raise ArgumentError(f"model={model}: expected a trained .pt checkpoint (an ablation needs trained weights)")
    return YOLOLAT(model)


def _data(settings: dict[str, Any], yolo: YOLOLAT) -> str:
    data = str(settings["data"] or (yolo.ckpt.get("train_args") or {}).get("data") or "")
    if not data:
        raise ArgumentError(f"data: {settings['model']} names no training dataset; give data=...")
    try:
        return str(prepare_data(data, "val", [settings["split"]]))
    except (FileNotFoundError, ValueError) as err:
        given = "" if settings["data"] else " (the checkpoint's training data; give data= to use another)"
        raise ArgumentError(f"data={data}{given}: {err}") from None


def _evaluate(yolo: YOLOLAT, data: str, settings: dict[str, Any], imgsz: int) -> tuple[float, float]:
    with tempfile.TemporaryDirectory(prefix="yolo_lat_ablate_") as scratch:  # Ultralytics' val folder
        metrics = yolo.val(
            data=data,
            imgsz=imgsz,
            batch=settings["batch"],
            split=settings["split"],
            device=str(settings["device"]),
            plots=False,
            verbose=False,
            project=scratch,
            name="val",
            exist_ok=True,
        )
    return float(metrics.box.map), float(metrics.box.map50)


def _ablated(yolo: YOLOLAT, modules: list[nn.Module], data: str, settings: dict[str, Any], imgsz: int):
    with removed(modules) as hook:
        scores = _evaluate(yolo, data, settings, imgsz)
    if hook.calls == 0:
        raise RuntimeError("the zeroing hooks never ran: the validator did not run the hooked model")
    return scores


def _params(modules: list[nn.Module]) -> int:
    return sum(p.numel() for m in modules for p in m.parameters())


def run(settings: dict[str, Any]) -> dict[str, Any]:
    """Validate the model as is, per attention layer removed, and with all removed; returns the JSON record."""
    yolo = _load(settings)
    layers = attention_layers(yolo.model)
    if not layers:
        names = ", ".join(t.__name__ for t in ATTENTION_TYPES)
        raise ArgumentError(
            f"model={settings['model']}: no attention layers ({names}) in this model; nothing to ablate"
        )
    data = _data(settings, yolo)
    imgsz = int(settings["imgsz"] or yolo.overrides.get("imgsz") or 640)
    every = [m for *_, mods in layers for m in mods]
    # parameters are counted before the first validation, which fuses Conv + BatchNorm in place
    parameters = sum(p.numel() for p in yolo.model.parameters())
    plan = [("none", "-", "nothing", [], _params(every))]
    plan += [(i, type(layer).__name__, f"{len(m)} x {type(m[0]).__name__}", m, _params(m)) for i, layer, m in layers]
    plan.append(("all", "-", f"all ({len(every)} modules)", every, _params(every)))
    rows = []
    for layer, module, what, mods, params in plan:
        score, score50 = _ablated(yolo, mods, data, settings, imgsz) if mods else _evaluate(yolo, data, settings, imgsz)
        full = rows[0]["map50_95"] if rows else score
        rows.append(
            {"layer": layer, "module": module, "removed": what, "attention_params": params,
             "map50_95": score, "delta": score - full, "map50": score50}
        )  # fmt: skip
    changed = [f"{k}={v}" for k, v in settings.items() if v != DEFAULTS[k]]
    return {
        "benchmark": "ablate",
        "command": " ".join(["yolo-lat benchmark ablate", *changed]),
        "settings": dict(settings),
        "model_yaml": str(getattr(yolo.model, "yaml", {}).get("yaml_file", "")),
        "parameters": parameters,
        "data_yaml": data,
        "imgsz": imgsz,
        "method": (
            "each listed attention module's output replaced by zeros with a forward hook (the residual "
            "x + attn(x) around it passes x through; nothing retrained); validated on the "
            f"{settings['split']} split at imgsz {imgsz}, batch {settings['batch']}"
        ),
        "environment": _versions(torch.device("cpu")),
        "created": time.strftime("%Y-%m-%d %H:%M:%S"),
        "rows": rows,
    }


def command(settings: dict[str, Any]) -> int:
    """Handler of ``yolo-lat benchmark ablate``: run, write ``<project>/<name>.json`` and ``.md``, print the table."""
    record = run(settings)
    out, name = Path(settings["project"]), settings["name"]
    written = [write_json(out / f"{name}.json", record), write_text(out / f"{name}.md", markdown(record) + "\n")]
    print(markdown(record))
    for path in written:
        print(f"wrote {path}")
    return 0


__all__ = ["ATTENTION_TYPES", "DEFAULTS", "DOCS", "attention_layers", "command", "markdown", "removed", "run"]
