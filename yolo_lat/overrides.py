"""Ultralytics settings on the yolo-lat command line: validation, did-you-mean errors, per-mode help.

Every key Ultralytics accepts (its ``DEFAULT_CFG_DICT``, plus the deprecated aliases it still maps,
such as ``half``/``int8``) is accepted; types and ranges are checked by Ultralytics' own
``check_cfg``; errors become one-line :class:`~yolo_lat.args.ArgumentError`. The help text for each
mode is read from Ultralytics' installed ``default.yaml`` (its section headers and comments).
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

from yolo_lat.args import ArgumentError, closest, parse_value, split_pairs

#: Keys Ultralytics maps onto current ones itself (see ``ultralytics.cfg``); accepted as given.
DEPRECATED_ALIASES = ("half", "int8", "boxes", "hide_labels", "hide_conf", "line_thickness", "end2end")

#: Which sections of Ultralytics' default.yaml each mode's ``--help`` shows.
MODE_SECTIONS = {
    "train": ("Train settings", "Hyperparameters"),
    "val": ("Val/Test settings",),
    "predict": ("Predict settings", "Visualize settings"),
    "export": ("Export settings",),
    "info": (),
}

_LINE = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*):\s*([^#]*?)\s*(?:#\s*(.*))?$")
_SECTION = re.compile(r"^#\s*(.+?)\s*-{3,}\s*$")


@lru_cache(maxsize=1)
def ultralytics_settings() -> dict[str, tuple[str, str, str]]:
    """``key -> (section, default text, comment)`` read from Ultralytics' installed default.yaml."""
    from ultralytics.cfg import DEFAULT_CFG_PATH

    settings: dict[str, tuple[str, str, str]] = {}
    section = ""
    for line in DEFAULT_CFG_PATH.read_text(encoding="utf-8").splitlines():
        header = _SECTION.match(line)
        if header:
            section = header.group(1)
            continue
        match = _LINE.match(line)
        if match:
            key, default, comment = match.groups()
            settings[key] = (section, default, comment or "")
    return settings


def valid_keys(extra: dict[str, str] | None = None) -> list[str]:
    """Keys accepted on the command line: Ultralytics' settings, aliases, ``model`` and ``extra``."""
    from ultralytics.cfg import DEFAULT_CFG_DICT

    return [*DEFAULT_CFG_DICT, *DEPRECATED_ALIASES, *(extra or {})]


def parse_overrides(mode: str, argv: list[str], extra: dict[str, str] | None = None) -> dict[str, Any]:
    """Parse ``key=value`` words for a model mode into checked Ultralytics overrides.

    Args:
        mode: ``train``, ``val``, ``predict``, ``export`` or ``info`` (used in messages).
        argv: the words after the mode.
        extra: yolo-lat keys this mode accepts beyond Ultralytics' (``name -> help``); their values
            are parsed but not checked by Ultralytics.

    Raises:
        ArgumentError: an unknown key (with the closest valid one) or a value of the wrong type.
    """
    from ultralytics.cfg import check_cfg

    extra = extra or {}
    keys = valid_keys(extra)
    overrides: dict[str, Any] = {}
    for key, raw in split_pairs(argv).items():
        if key not in keys:
            raise ArgumentError(f"unknown argument '{key}' for 'yolo-lat {mode}'.{closest(key, keys)}")
        value = parse_value(raw)
        if key in ("model", "data", "source", "project", "name", "cfg", "tracker") and value is not None:
            value = raw  # paths and names stay strings ("1.yaml", "0" for a webcam source)
        overrides[key] = value
    checked = {k: v for k, v in overrides.items() if k not in extra and k not in DEPRECATED_ALIASES}
    try:
        check_cfg(dict(checked), hard=True)
    except (TypeError, ValueError) as err:
        raise ArgumentError(" ".join(str(err).split())) from None
    return overrides


def mode_help(mode: str, usage: str, extra: dict[str, str] | None = None) -> str:
    """Help for one mode: usage, yolo-lat's own keys, then the relevant Ultralytics settings."""
    lines = [usage, ""]
    if extra:
        lines.append("yolo-lat arguments:")
        lines += [f"  {key:<16} {doc}" for key, doc in extra.items()]
        lines.append("")
    sections = MODE_SECTIONS.get(mode, ())
    settings = ultralytics_settings()
    for section in sections:
        lines.append(f"Ultralytics {section.lower()} (default shown after =):")
        for key, (where, default, comment) in settings.items():
            if where == section:
                lines.append(f"  {(key + '=' + default):<24} {comment}")
        lines.append("")
    lines.append("Every other Ultralytics setting is accepted too (see https://docs.ultralytics.com/usage/cfg).")
    return "\n".join(lines)
