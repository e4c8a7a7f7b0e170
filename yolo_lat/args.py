"""Command-line arguments: safe ``key=value`` parsing (never ``eval``), did-you-mean errors, help text.

Two kinds of argument tables are parsed here. yolo-lat's own tables (a ``DEFAULTS`` dict and a
``DOCS`` dict per command) are checked with :func:`typed`: each value must match the type of its
default. Model commands (train, val, predict, export, info) take every Ultralytics setting
(:func:`parse_overrides`): every key Ultralytics accepts (its ``DEFAULT_CFG_DICT``, plus the
deprecated aliases it still maps, such as ``half``/``int8``), with types and ranges checked by
Ultralytics' own ``check_cfg``; their help (:func:`mode_help`) is read from Ultralytics' installed
``default.yaml`` (its section headers and comments). Every error is one line
(:class:`ArgumentError`).

Example:
    >>> typed({"n": 400, "seed": 0}, split_pairs(["n=64"]), "data synth")
    {'n': 64, 'seed': 0}
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache
from typing import Any

#: Words that ask for help wherever they appear among a command's arguments.
HELP_WORDS = ("-h", "--help", "help")

#: Keys Ultralytics maps onto current ones itself (see ``ultralytics.cfg``); accepted as given.
DEPRECATED_ALIASES = ("half", "int8", "boxes", "hide_labels", "hide_conf", "line_thickness", "end2end")

#: Which sections of Ultralytics' default.yaml each model command's ``--help`` shows.
MODE_SECTIONS = {
    "train": ("Train settings", "Hyperparameters"),
    "val": ("Val/Test settings",),
    "predict": ("Predict settings", "Visualize settings"),
    "export": ("Export settings",),
    "info": (),
}

#: Ultralytics settings that stay strings whatever they look like ("1.yaml", "0" for a webcam source).
TEXT_SETTINGS = ("model", "data", "source", "project", "name", "cfg", "tracker")

_LINE = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*):\s*([^#]*?)\s*(?:#\s*(.*))?$")
_SECTION = re.compile(r"^#\s*(.+?)\s*-{3,}\s*$")


class ArgumentError(ValueError):
    """A command-line argument that is unknown or has a bad value; its message is one line."""


def parse_value(text: str) -> Any:
    """Turn a command-line string into bool, None, int, float, a list (comma-separated) or str.

    Example:
        >>> parse_value("640"), parse_value("0.5"), parse_value("True"), parse_value("1,2")
        (640, 0.5, True, [1, 2])
    """
    lowered = text.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("none", "null"):
        return None
    if "," in text and not text.strip().startswith(("[", "(")):
        return [parse_value(part) for part in text.split(",") if part.strip()]
    for convert in (int, float):
        try:
            return convert(text)
        except ValueError:
            pass
    return text


def split_pairs(args: Iterable[str]) -> dict[str, str]:
    """Split ``key=value`` words into a dict of raw strings; a word without ``=`` is an error.

    Example:
        >>> split_pairs(["imgsz=640", "--save-json=True"])
        {'imgsz': '640', 'save_json': 'True'}
    """
    pairs: dict[str, str] = {}
    for word in args:
        key, sep, value = word.partition("=")
        key = key.strip().lstrip("-").replace("-", "_")
        if not sep or not key:
            raise ArgumentError(f"expected key=value, got {word!r}")
        pairs[key] = value
    return pairs


def wants_help(argv: Sequence[str]) -> bool:
    """True when one of ``argv`` is ``-h``, ``--help`` or ``help``.

    Example:
        >>> wants_help(["n=3", "--help"]), wants_help(["name=help"])
        (True, False)
    """
    return any(word in HELP_WORDS for word in argv)


def closest(name: str, choices: Iterable[str]) -> str:
    """`` Did you mean 'x'?`` for the closest valid name, or an empty string.

    Example:
        >>> closest("trian", ["train", "val"])
        " Did you mean 'train'?"
    """
    match = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.5)
    return f" Did you mean '{match[0]}'?" if match else ""


def check_keys(given: Mapping[str, Any], valid: Iterable[str], where: str) -> None:
    """Raise :class:`ArgumentError` naming the first unknown key and the closest valid one."""
    valid = list(valid)
    for key in given:
        if key not in valid:
            raise ArgumentError(f"unknown argument '{key}' for {where}.{closest(key, valid)}")


def as_list(value: Any) -> list:
    """A scalar or list argument as a list (``640`` -> ``[640]``)."""
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return list(value)
    return [value]


def typed(defaults: Mapping[str, Any], given: Mapping[str, str], where: str) -> dict[str, Any]:
    """Parse raw strings and check each against the type of its default value.

    Lists of numbers accept a single number; a default of ``None`` accepts anything.

    Args:
        defaults: the command's argument table (``name -> default``).
        given: raw ``key -> string`` pairs (:func:`split_pairs`).
        where: the command in messages (``data synth``).

    Returns:
        ``defaults`` updated with the parsed values.

    Raises:
        ArgumentError: an unknown key (with the closest valid one) or a value of the wrong type.
    """
    check_keys(given, defaults, where)
    out = dict(defaults)
    for key, raw in given.items():
        value = parse_value(raw)
        default = defaults[key]
        if isinstance(default, bool):
            if not isinstance(value, bool):
                raise ArgumentError(f"{key}={raw!r}: expected True or False")
        elif isinstance(default, int) and not isinstance(default, bool):
            if not isinstance(value, int) or isinstance(value, bool):
                raise ArgumentError(f"{key}={raw!r}: expected an integer")
        elif isinstance(default, float):
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                raise ArgumentError(f"{key}={raw!r}: expected a number")
            value = float(value)
        elif isinstance(default, (list, tuple)):
            value = as_list(value)
        elif isinstance(default, str) and not isinstance(value, str):
            value = raw
        out[key] = value
    return out


def format_defaults(defaults: Mapping[str, Any], docs: Mapping[str, str] | None = None) -> str:
    """Help text: one ``key=default  description`` line per argument.

    Example:
        >>> print(format_defaults({"n": 400, "splits": ["train", "val"]}, {"n": "training images"}))
          n=400             training images
          splits=train,val
    """
    docs = docs or {}

    def show(value: Any) -> str:
        if isinstance(value, (list, tuple)):
            return ",".join(str(v) for v in value)
        return str(value)

    width = max((len(k) + len(show(v)) + 1 for k, v in defaults.items()), default=0)
    return "\n".join(f"  {(k + '=' + show(v)).ljust(width)}  {docs.get(k, '')}".rstrip() for k, v in defaults.items())


def join_words(words: Sequence[str]) -> str:
    """``a, b or c``."""
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1]


@lru_cache(maxsize=1)
def ultralytics_settings() -> dict[str, tuple[str, str, str]]:
    """``key -> (section, default text, comment)`` read from Ultralytics' installed default.yaml."""
    from ultralytics.cfg import DEFAULT_CFG_PATH  # deferred: Ultralytics is heavy, only model commands need it

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


def parse_overrides(mode: str, argv: list[str], extra: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Parse ``key=value`` words for a model command into checked Ultralytics overrides.

    Args:
        mode: ``train``, ``val``, ``predict``, ``export`` or ``info`` (used in messages).
        argv: the words after the mode.
        extra: yolo-lat keys this mode accepts beyond Ultralytics' (``name -> help``); their values
            are parsed but not checked by Ultralytics.

    Returns:
        ``key -> value`` for the given keys only.

    Raises:
        ArgumentError: an unknown key (with the closest valid one) or a value of the wrong type.

    Example:
        >>> parse_overrides("train", ["imgsz=640,480", "data=1.yaml"])  # doctest: +SKIP
        {'imgsz': [640, 480], 'data': '1.yaml'}
    """
    from ultralytics.cfg import DEFAULT_CFG_DICT, check_cfg  # deferred: Ultralytics is heavy

    extra = extra or {}
    keys = [*DEFAULT_CFG_DICT, *DEPRECATED_ALIASES, *extra]
    overrides: dict[str, Any] = {}
    for key, raw in split_pairs(argv).items():
        if key not in keys:
            raise ArgumentError(f"unknown argument '{key}' for 'yolo-lat {mode}'.{closest(key, keys)}")
        value = parse_value(raw)
        if key in TEXT_SETTINGS and value is not None:
            value = raw
        overrides[key] = value
    checked = {k: v for k, v in overrides.items() if k not in extra and k not in DEPRECATED_ALIASES}
    try:
        check_cfg(dict(checked), hard=True)
    except (TypeError, ValueError) as err:
        raise ArgumentError(" ".join(str(err).split())) from None
    return overrides


def mode_help(mode: str, usage: str, extra: Mapping[str, str] | None = None) -> str:
    """Help for one model command: usage, yolo-lat's own keys, then the relevant Ultralytics settings."""
    lines = [usage, ""]
    if extra:
        lines.append("yolo-lat arguments:")
        lines += [f"  {key:<16} {doc}" for key, doc in extra.items()]
        lines.append("")
    settings = ultralytics_settings()
    for section in MODE_SECTIONS.get(mode, ()):
        lines.append(f"Ultralytics {section.lower()} (default shown after =):")
        lines += [f"  {(key + '=' + default):<24} {comment}" for key, (where, default, comment) in settings.items()
                  if where == section]  # fmt: skip
        lines.append("")
    lines.append("Every other Ultralytics setting is accepted too (see https://docs.ultralytics.com/usage/cfg).")
    return "\n".join(lines)
