"""Weights from Ultralytics checkpoints: YOLO12 to yolo12-ela conversion, and what a ``pretrained=`` transfer loaded.

* :func:`convert_yolo12` writes a YOLO12 checkpoint's weights into a ``yolo12-ela-<scale>`` model
  (``A2C2f`` area attention becomes ``A2C2fELA``: same sub-module names and shapes, so every tensor
  carries over) and saves it as an Ultralytics checkpoint that validates, predicts and exports as any other.
* :func:`transfer_report` compares a model after Ultralytics loaded a checkpoint into it with that
  checkpoint: which tensors hold the checkpoint's values, which the model has that the checkpoint
  lacks or has at another shape, which checkpoint tensors went unused; its :meth:`TransferReport.lines`
  are what the trainer logs.
* :func:`check_pretrained` refuses a ``pretrained=`` that is no usable checkpoint before training starts.

Example:
    >>> from ultralytics.nn.tasks import DetectionModel
    >>> from yolo_lat.models import resolve_model_yaml
    >>> source = DetectionModel(resolve_model_yaml("yolo-lat-pico.yaml"), verbose=False)  # nc=80, as for COCO
    >>> model = DetectionModel({**resolve_model_yaml("yolo-lat-pico.yaml"), "nc": 3}, verbose=False)
    >>> model.load(source, verbose=False)
    >>> print("\\n".join(transfer_report(model, source, "coco.pt").lines()))  # doctest: +NORMALIZE_WHITESPACE
    pretrained: loaded 196/200 tensors from coco.pt (not loaded: 4 with another shape)
    pretrained: in both, another shape, not loaded (4): layer 8 Detect (4, e.g. cv3.0.2.weight: 3x128x1x1 here,
        80x128x1x1 in the checkpoint)
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from ultralytics.nn.tasks import DetectionModel, guess_model_scale, load_checkpoint
from ultralytics.utils import YAML, is_online
from ultralytics.utils.downloads import GITHUB_ASSETS_NAMES

from yolo_lat.cfg import CFG_DIR

from .checks import ModelError, explain_checkpoint
from .config import resolve_model_yaml

__all__ = ["TransferReport", "check_pretrained", "convert_yolo12", "transfer_report"]

#: Layer groups listed per line of a :class:`TransferReport` before the rest is counted.
MAX_GROUPS = 10
_ELA_YAML = CFG_DIR / "yolo12-ela.yaml"
_STAGING = ".partial"


def _shape(tensor: torch.Tensor) -> str:
    return "x".join(map(str, tensor.shape)) or "scalar"


@dataclass(frozen=True)
class TransferReport:
    """What loading a checkpoint into a model did, tensor by tensor (state-dict names).

    Every model tensor is either ``loaded`` (it holds the checkpoint's tensor of that name), ``missing``
    (the checkpoint has no tensor of that name) or ``differs`` (the checkpoint's tensor of that name
    was not loaded: another shape, e.g. the class layers of a checkpoint with another class count).
    ``unused`` are checkpoint tensors whose name the model does not have. A ``differs`` entry of equal
    shapes means the model kept its own values (the checkpoint was not loaded there at all).

    Attributes:
        source: the checkpoint's file, for messages.
        loaded: names of the model tensors that hold the checkpoint's values.
        missing: names in the model, not in the checkpoint.
        differs: ``(name, model shape, checkpoint shape)`` for names in both that were not loaded.
        unused: names in the checkpoint, not in the model.
        total: number of model tensors.
        layers: model layer index -> module class name, for the model's tensors.
        source_layers: the same for the checkpoint's model.
    """

    source: str
    loaded: tuple[str, ...]
    missing: tuple[str, ...]
    differs: tuple[tuple[str, str, str], ...]
    unused: tuple[str, ...]
    total: int
    layers: Mapping[str, str]
    source_layers: Mapping[str, str]

    @property
    def complete(self) -> bool:
        """Every model tensor was loaded from the checkpoint."""
        return len(self.loaded) == self.total

    def lines(self, label: str = "pretrained") -> list[str]:
        """The log lines: the count, then one line per kind of tensor that was not loaded or not used.

        Args:
            label: the first word of every line (``pretrained`` for ``pretrained=``, ``weights`` for ``model=X.pt``).

        Returns:
            ``["pretrained: loaded 691/691 tensors from yolo12n.pt"]`` when everything loaded; otherwise
            also lines such as ``pretrained: in the model, not in the checkpoint (40): layer 10
            C2PSAELA (40)``, grouped by layer index and module.
        """
        reshaped = [entry for entry in self.differs if entry[1] != entry[2]]
        kept = [entry for entry in self.differs if entry[1] == entry[2]]
        head = f"{label}: loaded {len(self.loaded)}/{self.total} tensors from {self.source}"
        gaps = [f"{len(self.missing)} not in the checkpoint"] if self.missing else []
        gaps += [f"{len(reshaped)} with another shape"] if reshaped else []
        gaps += [f"{len(kept)} of the same shape"] if kept else []
        lines = [head + (f" (not loaded: {', '.join(gaps)})" if gaps else "")]
        if self.missing:
            groups = _groups(self.missing, self.layers)
            lines.append(f"{label}: in the model, not in the checkpoint ({len(self.missing)}): {groups}")
        if reshaped:
            examples = {}
            for name, here, there in reshaped:
                examples.setdefault(_layer(name)[0], f"e.g. {_layer(name)[1]}: {here} here, {there} in the checkpoint")
            groups = _groups([name for name, _, _ in reshaped], self.layers, examples)
            lines.append(f"{label}: in both, another shape, not loaded ({len(reshaped)}): {groups}")
        if kept:
            groups = _groups([name for name, _, _ in kept], self.layers)
            lines.append(f"{label}: in both, same shape, not loaded ({len(kept)}): {groups}")
        if self.unused:
            groups = _groups(self.unused, self.source_layers)
            lines.append(f"{label}: in the checkpoint, not used ({len(self.unused)}): {groups}")
        return lines


def _layer(name: str) -> tuple[str, str]:
    """``("23", "cv3.0.2.weight")`` for ``model.23.cv3.0.2.weight``; ``("", name)`` outside ``model.<i>``."""
    parts = name.split(".")
    if len(parts) > 2 and parts[0] == "model" and parts[1].isdigit():
        return parts[1], ".".join(parts[2:])
    return "", name


def _layer_types(model: torch.nn.Module) -> dict[str, str]:
    layers = getattr(model, "model", None)
    if not isinstance(layers, torch.nn.Sequential):
        return {}
    return {str(i): type(module).__name__ for i, module in enumerate(layers)}


def _groups(names: Iterable[str], types: Mapping[str, str], notes: Mapping[str, str] | None = None) -> str:
    """``layer 9 SPPF (4), layer 10 C2PSA (36)``: tensors counted per layer, in layer order, at most MAX_GROUPS."""
    counts: dict[str, int] = {}
    for name in names:
        index = _layer(name)[0]
        counts[index] = counts.get(index, 0) + 1
    ordered = sorted(counts, key=lambda index: (not index.isdigit(), int(index) if index.isdigit() else 0, index))
    parts = []
    for index in ordered[:MAX_GROUPS]:
        where = f"layer {index} {types.get(index, '?')}" if index else "outside the layers"
        note = f", {notes[index]}" if notes and index in notes else ""
        parts.append(f"{where} ({counts[index]}{note})")
    more = len(ordered) - MAX_GROUPS
    return ", ".join(parts) + (f", and {more} more layers" if more > 0 else "")


def transfer_report(model: torch.nn.Module, source: Any, name: str | Path | None = None) -> TransferReport:
    """Compare ``model`` after a checkpoint was loaded into it with that checkpoint, tensor by tensor.

    A model tensor counts as loaded when the checkpoint has a tensor of the same name, shape and
    values (what Ultralytics' ``DetectionModel.load`` copies: names and shapes that match, and the
    class branch's hidden layers when only the class count differs).

    Args:
        model: the model the weights were loaded into.
        source: the checkpoint's model, or a checkpoint dict (its ``ema``, else its ``model``).
        name: the checkpoint's file for messages (default: the model's ``pt_path``).

    Returns:
        The :class:`TransferReport`.

    Example:
        >>> from ultralytics.nn.tasks import DetectionModel
        >>> from yolo_lat.models import resolve_model_yaml
        >>> a = DetectionModel(resolve_model_yaml("yolo-lat-pico.yaml"), verbose=False)
        >>> b = DetectionModel(resolve_model_yaml("yolo-lat-pico.yaml"), verbose=False)
        >>> transfer_report(a, b, "b.pt").complete  # two random initialisations share only the BatchNorm stats
        False
        >>> a.load(b, verbose=False)
        >>> transfer_report(a, b, "b.pt").lines("weights")
        ['weights: loaded 200/200 tensors from b.pt']
    """
    if isinstance(source, Mapping):
        source = source.get("ema") or source["model"]
    theirs = {key: value.detach().float().cpu() for key, value in source.state_dict().items()}
    ours = model.state_dict()
    loaded, missing, differs = [], [], []
    for key, value in ours.items():
        other = theirs.get(key)
        if other is None:
            missing.append(key)
        elif value.shape == other.shape and torch.equal(value.detach().float().cpu(), other):
            loaded.append(key)
        else:
            differs.append((key, _shape(value), _shape(other)))
    return TransferReport(
        source=str(name or getattr(source, "pt_path", None) or "the checkpoint"),
        loaded=tuple(loaded),
        missing=tuple(missing),
        differs=tuple(differs),
        unused=tuple(key for key in theirs if key not in ours),
        total=len(ours),
        layers=_layer_types(model),
        source_layers=_layer_types(source),
    )


def _local_file(path: str | Path, argument: str) -> None:
    """Refuse a checkpoint path that is no file, unless Ultralytics can download it (a hub name, online).

    Raises:
        ModelError: a missing file (named with the argument), a directory, or not a ``.pt`` file.
    """
    file = Path(path)
    if file.is_dir():
        raise ModelError(f"{argument}={path}: a directory, not a .pt checkpoint")
    if not file.exists():
        if file.name == str(path) and file.name in GITHUB_ASSETS_NAMES and is_online():
            return  # an Ultralytics hub name: its loader downloads it
        offline = " (YOLO_OFFLINE is set: nothing is downloaded)" if os.environ.get("YOLO_OFFLINE") else ""
        raise ModelError(f"{argument}={path}: no such file{offline}; give a .pt checkpoint such as best.pt")
    if file.suffix.lower() != ".pt":
        raise ModelError(f"{argument}={path}: not a .pt checkpoint (a {file.suffix or 'suffix-less'} file)")


def _load(path: str | Path, argument: str) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Ultralytics' ``load_checkpoint``, with a missing or unreadable file as one :class:`ModelError` line."""
    _local_file(path, argument)
    try:
        return load_checkpoint(path)
    except Exception as err:  # any failure to load is explained from the file itself
        if not Path(path).is_file():
            raise ModelError(f"{argument}={path}: could not be loaded ({type(err).__name__}: {err})") from err
        raise ModelError(f"{argument}={explain_checkpoint(path, err)}") from err


def check_pretrained(pretrained: Any) -> None:
    """Refuse a ``pretrained=`` value that is no usable checkpoint, before a training run writes anything.

    ``True``/``False`` (Ultralytics' switch) pass. A path must be a ``.pt`` checkpoint that loads; a
    missing file is an error unless it is an Ultralytics hub name and the machine is online (then
    Ultralytics downloads it).

    Args:
        pretrained: the ``pretrained=`` setting.

    Raises:
        ModelError: naming ``pretrained=`` and the file: missing, a directory, not ``.pt``, or not a
            detector checkpoint (:func:`~yolo_lat.models.checks.explain_checkpoint`).

    Example:
        >>> check_pretrained(True)
        >>> check_pretrained("missing/yolo12n.pt")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        yolo_lat.models.checks.ModelError: pretrained=missing/yolo12n.pt: no such file...
    """
    if isinstance(pretrained, (str, Path)):
        _local_file(pretrained, "pretrained")
        if Path(pretrained).is_file():
            _load(pretrained, "pretrained")


def _rows(config: Mapping[str, Any]) -> list[list[Any]]:
    return [list(row) for row in [*config.get("backbone", []), *config.get("head", [])]]


def _as_ela(row: list[Any]) -> list[Any]:
    """A YOLO12 layer row as yolo12-ela writes it: ``A2C2f`` with attention (``a2=True``) becomes ``A2C2fELA``."""
    origin, repeats, module, args = row
    if module == "A2C2f" and len(args) > 1 and args[1] is True:
        module = "A2C2fELA"
    if module == "Detect":
        args = []  # the class count is the checkpoint's, whatever the YAML wrote
    return [origin, repeats, module, list(args)]


def _check_yolo12(model: torch.nn.Module, src: Path) -> list[int]:
    """Refuse a model that is not stock YOLO12; returns the indices of its attention (``A2C2f``, ``a2=True``) layers."""
    config = getattr(model, "yaml", None)
    if not isinstance(model, DetectionModel) or not isinstance(config, Mapping):
        raise ModelError(f"{src}: holds a {type(model).__name__}, not a YOLO12 detection model")
    rows = _rows(config)
    modules = [row[2] for row in rows]
    yaml_file = config.get("yaml_file") or "a model without yaml_file"
    if "A2C2fELA" in modules:
        raise ModelError(f"{src}: already a yolo12-ela checkpoint ({yaml_file}: A2C2fELA layers); nothing to convert")
    if "A2C2f" not in modules:
        kinds = ", ".join(dict.fromkeys(str(m) for m in modules if m not in ("Conv", "Concat", "nn.Upsample")))
        raise ModelError(
            f"{src}: not a YOLO12 checkpoint: its model is {yaml_file} ({kinds}), without YOLO12's A2C2f "
            "area-attention layers; convert takes a YOLO12 checkpoint such as yolo12n.pt"
        )
    expected = _rows(YAML.load(_ELA_YAML))
    if len(rows) != len(expected):
        raise ModelError(
            f"{src}: {yaml_file} has {len(rows)} layers, YOLO12 has {len(expected)}; "
            "only the stock YOLO12 layout converts"
        )
    for index, (row, want) in enumerate(zip(rows, expected)):
        if _as_ela(row) != _as_ela(want):
            raise ModelError(
                f"{src}: {yaml_file} layer {index} is {row}, YOLO12 has {want}; only the stock YOLO12 layout converts"
            )
    return [index for index, row in enumerate(rows) if _as_ela(row)[2] == "A2C2fELA"]


def _scale(model: DetectionModel, src: Path) -> str:
    """The checkpoint's YOLO12 scale: its YAML's ``scale``, else the file name's, else the YAML's first scale."""
    config = model.yaml
    scales = list(config.get("scales") or {})
    for scale in (config.get("scale"), guess_model_scale(config.get("yaml_file") or ""), guess_model_scale(src.name)):
        if scale:
            return scale
    if scales:
        return scales[0]  # Ultralytics builds a YAML without a scale at its first one
    raise ModelError(f"{src}: cannot tell the YOLO12 scale (no scale in its YAML or file name)")


def convert_yolo12(src: str | Path, dst: str | Path | None = None, log: Callable[[str], None] | None = None) -> Path:
    """Convert a YOLO12 checkpoint into a yolo12-ela checkpoint: every tensor carried over, area attention -> ELA.

    The scale comes from the checkpoint's YAML (``scale``), else its file name (``yolo12s.pt``); the
    model is ``yolo12-ela-<scale>.yaml`` with the checkpoint's class count and names, and takes its
    state dict strictly. The file keeps the checkpoint's structure (``model``, ``train_args``, ...;
    no optimizer or EMA, so it is a finished checkpoint; half precision, as Ultralytics stores models) and
    is written to a staging name, then renamed.

    Args:
        src: the YOLO12 ``.pt`` checkpoint (a training run's ``best.pt`` or ``yolo12n.pt``).
        dst: output file (default ``<src stem>-ela.pt`` next to ``src``).
        log: called with one summary line (e.g. ``print``); None is silent.

    Returns:
        The written checkpoint.

    Raises:
        ModelError: ``src`` missing, not a checkpoint, not stock YOLO12 (e.g. YOLO26, yolo-lat, already
            yolo12-ela), tensors that do not fit the scale, or ``dst`` equal to ``src``.

    Example:
        >>> from yolo_lat.models.convert import convert_yolo12
        >>> convert_yolo12("runs/detect/train/weights/best.pt", "best-ela.pt", log=print)  # doctest: +SKIP
        converted runs/detect/train/weights/best.pt (YOLO12 n, 3 classes) -> best-ela.pt: 691/691 tensors, ...
        PosixPath('best-ela.pt')
    """
    src = Path(src)
    dst = Path(dst) if dst else src.with_name(f"{src.stem}-ela.pt")
    if dst.exists() and src.exists() and dst.resolve() == src.resolve():
        raise ModelError(f"out={dst}: is the input checkpoint; give another output file")
    model, ckpt = _load(src, "model")
    attention = _check_yolo12(model, src)
    scale = _scale(model, src)
    config = {**resolve_model_yaml(f"yolo12-ela-{scale}.yaml"), "nc": model.yaml["nc"]}
    ela = DetectionModel(config, ch=model.yaml.get("channels", 3), verbose=False)
    theirs, ours = model.state_dict(), ela.state_dict()
    wrong = [key for key in ours if key not in theirs or theirs[key].shape != ours[key].shape]
    wrong += [key for key in theirs if key not in ours]
    if wrong:
        raise ModelError(
            f"{src}: its tensors do not fit yolo12-ela-{scale} ({len(wrong)} of {len(ours)} differ, first "
            f"{wrong[0]}); is the scale '{scale}' right, and is the checkpoint unfused?"
        )
    ela.load_state_dict(theirs, strict=True)
    ela.names, ela.args, ela.task = dict(model.names), dict(model.args), "detect"
    ela = ela.half().eval()  # as Ultralytics stores every checkpoint's model
    for parameter in ela.parameters():
        parameter.requires_grad_(False)
    record = {key: value for key, value in ckpt.items() if key not in ("model", "ema", "optimizer", "updates")}
    record.update(
        date=datetime.datetime.now().isoformat(),
        epoch=-1,
        model=ela,
        ema=None,
        updates=None,
        optimizer=None,
        converted_from=str(src),
    )
    dst.parent.mkdir(parents=True, exist_ok=True)
    staging = dst.with_name(f".{dst.name}{_STAGING}")
    try:
        torch.save(record, staging)
        os.replace(staging, dst)
    finally:
        staging.unlink(missing_ok=True)
    if log is not None:
        layers = ", ".join(map(str, attention))
        log(
            f"converted {src} (YOLO12 {scale}, {model.yaml['nc']} classes) -> {dst}: {len(ours)}/{len(ours)} "
            f"tensors, area attention -> ELA in layers {layers} (A2C2f -> A2C2fELA)"
        )
    return dst
