"""Model names to model dicts: ``yolo-lat-n.yaml`` means ``cfg/yolo-lat.yaml`` at scale ``n``.

Ultralytics reads the scale letter from names such as ``yolo26n.yaml`` (a pattern that needs
digits before the letter) and looks names up in its own package; YOLO-LAT names carry the scale as
a ``-<scale>`` suffix and live in :data:`yolo_lat.cfg.CFG_DIR`. Resolution order for ``name``:

1. an existing file at ``name`` (a user YAML; a ``-<scale>`` suffix in its stem picks the scale
   if its ``scales`` table has that letter);
2. ``<stem without -<scale>><suffix>`` next to ``name``, then in ``CFG_DIR``, at that scale;
3. ``name`` in ``CFG_DIR``;
4. otherwise Ultralytics' own loader (so ``yolo26n.yaml`` and ``yolo12s.yaml`` work as usual).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from ultralytics.nn.tasks import guess_model_scale, yaml_model_load
from ultralytics.utils import YAML

from yolo_lat.cfg import CFG_DIR

from .checks import ModelError, check_model_config, explain_yaml

__all__ = ["resolve_model_yaml"]

_SCALED_STEM = re.compile(r"^(?P<base>.+)-(?P<scale>[nslmx])$")


def resolve_model_yaml(model: str | Path) -> dict[str, Any]:
    """Load a model YAML by YOLO-LAT name, Ultralytics name or path, with its scale set.

    Args:
        model: e.g. ``"yolo-lat-n.yaml"``, ``"yolo12-ela-s.yaml"``, ``"yolo-lat-pico.yaml"``,
            ``"path/to/mine-m.yaml"`` or ``"yolo26n.yaml"``.

    Returns:
        The model dict, with ``scale`` (``""`` when none applies) and ``yaml_file`` (``model`` as given).

    Raises:
        ValueError: ``model`` is not a ``.yaml``/``.yml`` name, or names a scale its YAML lacks.
        ModelError: the YAML is not valid YAML or not a model (:func:`~yolo_lat.models.checks.check_model_config`).
        FileNotFoundError: no YAML of that name exists here or in Ultralytics.

    Example:
        >>> from yolo_lat.models import resolve_model_yaml
        >>> d = resolve_model_yaml("yolo-lat-s.yaml")
        >>> d["scale"], d["yaml_file"]
        ('s', 'yolo-lat-s.yaml')
    """
    path = Path(model)
    if path.suffix.lower() not in (".yaml", ".yml"):
        raise ValueError(f"expected a model .yaml name or path, got {str(model)!r}")
    match = _SCALED_STEM.match(path.stem)
    scale = match["scale"] if match else ""
    if path.is_file():
        found = path
    else:
        candidates = []
        if match:
            base = path.with_name(match["base"] + path.suffix)
            candidates += [base, CFG_DIR / base.name]
        candidates.append(CFG_DIR / path.name)
        found = next((candidate for candidate in candidates if candidate.is_file()), None)
        if found is None:
            config = yaml_model_load(path)  # Ultralytics' own names; raises FileNotFoundError if unknown
            check_model_config(config, config.get("yaml_file", path))
            return config
        if found.name == path.name:
            scale = ""  # the name itself exists: its suffix is part of the name, not a scale
    try:
        config = YAML.load(found)
    except ValueError:  # a YAML syntax error or a top level that is not a mapping
        raise ModelError(explain_yaml(found)) from None
    check_model_config(config, found)
    scales = config.get("scales") or {}
    if scale and scale not in scales:
        if found != path:
            raise ValueError(
                f"{path.name}: {found.name} has no scale {scale!r} (scales: {', '.join(scales) or 'none'})"
            )
        scale = ""
    config["scale"] = scale or (guess_model_scale(path) if scales else "")
    config["yaml_file"] = str(model)
    return config
