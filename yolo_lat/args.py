"""Safe ``key=value`` parsing for the command line (no ``eval``), with did-you-mean errors."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any


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
    """Split ``key=value`` words into a dict of raw strings; a word without ``=`` is an error."""
    pairs: dict[str, str] = {}
    for word in args:
        key, sep, value = word.partition("=")
        key = key.strip().lstrip("-").replace("-", "_")
        if not sep or not key:
            raise ArgumentError(f"expected key=value, got {word!r}")
        pairs[key] = value
    return pairs


def closest(name: str, choices: Iterable[str]) -> str:
    """`` Did you mean 'x'?`` for the closest valid name, or an empty string."""
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
    """Help text: one ``key=default  description`` line per argument."""
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
