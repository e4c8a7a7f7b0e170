"""Checks of the text models' arguments: numeric ranges (non-finite values included), devices, text files.

Every ``yolo-lat text`` command and the Python functions behind it (:func:`~yolo_lat.text.train.train`,
:func:`~yolo_lat.text.generate.generate`, :func:`~yolo_lat.text.generate.pick_next_token`) check
their arguments here, so a bad value is one ``ValueError`` naming the argument and what it accepts
(the command line prints it as ``yolo-lat: error: ...``, exit status 2).

Example:
    >>> check_values({"steps": 200, "lr": 3e-3}, {"steps": Limit(int, 1), "lr": Limit(float, 0, closed=False)})
    >>> Limit(float, 0, closed=False).check("lr", float("nan"))
    Traceback (most recent call last):
    ...
    ValueError: lr=nan: expected a finite number > 0
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

__all__ = ["SEED", "Limit", "available_devices", "check_device", "check_values", "read_text_file"]


@dataclass(frozen=True)
class Limit:
    """The values a numeric argument accepts: integers or finite reals, between optional bounds.

    Args:
        kind: ``int`` (bools refused) or ``float`` (ints accepted; NaN and infinities refused).
        low: smallest allowed value, or None.
        high: largest allowed value, or None.
        closed: whether ``low`` itself is allowed (``False``: strictly greater).
        closed_high: whether ``high`` itself is allowed.

    Example:
        >>> Limit(float, 0, 1, closed=False, closed_high=False).describe()
        'a number in (0, 1)'
    """

    kind: type
    low: float | None = None
    high: float | None = None
    closed: bool = True
    closed_high: bool = True

    def describe(self) -> str:
        """What the argument accepts, in words (``an integer >= 1``)."""
        noun = "an integer" if self.kind is int else "a number" if self.high is not None else "a finite number"
        low, high = (self._show(bound) for bound in (self.low, self.high))
        if self.low is not None and self.high is not None:
            left, right = "[" if self.closed else "(", "]" if self.closed_high else ")"
            return f"{noun} in {left}{low}, {high}{right}"
        if self.low is not None:
            return f"{noun} {'>=' if self.closed else '>'} {low}"
        if self.high is not None:
            return f"{noun} {'<=' if self.closed_high else '<'} {high}"
        return noun

    def _show(self, bound: float | None) -> str:
        return str(bound) if self.kind is int or bound is None else f"{bound:g}"

    def allows(self, value: Any) -> bool:
        """Whether ``value`` is of the right kind and inside the bounds."""
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        if self.kind is int and not isinstance(value, int):
            return False
        if not math.isfinite(value):
            return False
        if self.low is not None and not (value >= self.low if self.closed else value > self.low):
            return False
        return self.high is None or (value <= self.high if self.closed_high else value < self.high)

    def check(self, name: str, value: Any) -> None:
        """Raise ``ValueError`` (``name=value: expected ...``) unless ``value`` is allowed."""
        if not self.allows(value):
            raise ValueError(f"{name}={value!r}: expected {self.describe()}")


#: Seeds ``torch.manual_seed`` takes (its documented unsigned 64-bit range).
SEED = Limit(int, 0, 2**64 - 1)


def check_values(values: Mapping[str, Any], limits: Mapping[str, Limit]) -> None:
    """Check every argument of ``values`` that ``limits`` names; the first bad one raises ``ValueError``.

    Args:
        values: ``name -> value`` (a command's parsed arguments or a function's settings).
        limits: ``name -> Limit``.

    Example:
        >>> check_values({"batch": 0}, {"batch": Limit(int, 1)})
        Traceback (most recent call last):
        ...
        ValueError: batch=0: expected an integer >= 1
    """
    for name, limit in limits.items():
        if name in values:
            limit.check(name, values[name])


def available_devices() -> list[str]:
    """The devices this machine can run a text model on: ``cpu``, each ``cuda:N``, ``mps`` when present.

    Example:
        >>> available_devices()[0]
        'cpu'
    """
    names = ["cpu"]
    if torch.cuda.is_available():
        names += [f"cuda:{index}" for index in range(torch.cuda.device_count())]
    if torch.backends.mps.is_available():
        names.append("mps")
    return names


def check_device(value: str | torch.device, name: str = "device") -> torch.device:
    """The ``torch.device`` named by ``value``, if this machine has it; else one-line ``ValueError``.

    Args:
        value: ``cpu``, ``cuda``, ``cuda:N`` or ``mps`` (a ``torch.device`` passes through the same checks).
        name: the argument named in the message.

    Example:
        >>> check_device("cpu")
        device(type='cpu')
        >>> check_device("gpu")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: device='gpu': not a device; expected cpu or cuda[:N] (available here: cpu...)
    """
    available = available_devices()
    hint = f"available here: {', '.join(available)}"
    try:
        device = torch.device(value)
    except (RuntimeError, TypeError, ValueError):
        raise ValueError(f"{name}={str(value)!r}: not a device; expected cpu or cuda[:N] ({hint})") from None
    if device.type == "cpu":
        return device
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"{name}={str(value)!r}: CUDA is not available on this machine; use {name}=cpu ({hint})")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(f"{name}={str(value)!r}: there is no CUDA device {device.index} ({hint})")
        return device
    if device.type == "mps" and "mps" in available:
        return device
    raise ValueError(f"{name}={str(value)!r}: {device.type} is not supported; expected cpu or cuda[:N] ({hint})")


def read_text_file(path: str | Path, name: str = "data") -> str:
    """The UTF-8 text of ``path``; a missing file, a folder or other bytes raise one line naming ``name``.

    Raises:
        FileNotFoundError: no such file.
        ValueError: a directory, an unreadable file, or text that is not UTF-8.

    Example:
        >>> read_text_file("no/such.txt")
        Traceback (most recent call last):
        ...
        FileNotFoundError: data=no/such.txt: no such file; give a UTF-8 text file (empty: the embedded corpus)
    """
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{name}={path}: is a directory; give a UTF-8 text file")
    if not path.exists():
        raise FileNotFoundError(f"{name}={path}: no such file; give a UTF-8 text file (empty: the embedded corpus)")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        where = f"{err.reason} at byte {err.start}"
        raise ValueError(f"{name}={path}: not UTF-8 text ({where}); convert it to UTF-8") from None
    except OSError as err:
        raise ValueError(f"{name}={path}: cannot be read ({err.strerror or err})") from None
