"""Every run-time mode of yolo-lat, in one place: read with :func:`get`, set with :func:`configure` or
for a block with :func:`override`.

=================  ==========================================================  ==========================
setting            meaning                                                     default from
=================  ==========================================================  ==========================
``kernels``        ``auto``: fused GPU kernels for CUDA tensors where they      ``YOLO_LAT_KERNELS``
                   apply; ``torch``: always the PyTorch path; ``triton``:
                   fused kernels required on CUDA (an error if they cannot
                   load)
``direct_launch``  launch compiled Triton kernels through yolo-lat's own        ``YOLO_LAT_DIRECT_LAUNCH``
                   launcher (``False``: through Triton's binding)               (``0`` turns it off)
``interpreter``    run the Triton kernels in Triton's interpreter (numpy on     ``TRITON_INTERPRET``
                   the CPU; for tests). Fixed once ``yolo_lat.cuda_ops`` is
                   imported, because Triton decides it when a kernel is defined
``ela_op``         how ``torch.onnx.export`` writes ELA: ``standard`` ONNX ops   ``standard``
                   or one ``custom`` ``yolo_lat::ELA`` node
``fixed_shapes``   the text MoE mixes every expert on every token (no            ``False``
                   data-dependent shapes), as a captured or compiled decode
                   step needs
=================  ==========================================================  ==========================

The environment variables are read once, here, when this module is first imported; after that
only this module's functions change a setting. Settings are process-wide, like ``torch.backends``
flags: :func:`override` changes them for every thread until its block ends. Reading one is a
module-global lookup, cheap enough for a decode step and transparent to ``torch.compile``.

Example:
    >>> from yolo_lat import settings
    >>> settings.get().kernels
    'auto'
    >>> with settings.override(kernels="torch"):
    ...     settings.get().kernels
    'torch'
    >>> settings.get().kernels
    'auto'
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["CHOICES", "Settings", "configure", "get", "override"]

#: Allowed values of the settings that are not booleans.
CHOICES: dict[str, tuple[str, ...]] = {"kernels": ("auto", "torch", "triton"), "ela_op": ("standard", "custom")}
_ENVIRONMENT = {
    "kernels": "YOLO_LAT_KERNELS",
    "direct_launch": "YOLO_LAT_DIRECT_LAUNCH",
    "interpreter": "TRITON_INTERPRET",
}
#: The module whose import fixes ``interpreter`` (Triton picks the interpreter when a kernel is defined).
_KERNEL_MODULE = "yolo_lat.cuda_ops"


@dataclasses.dataclass(frozen=True)
class Settings:
    """One snapshot of the settings (see the module docstring for each field)."""

    kernels: str = "auto"
    direct_launch: bool = True
    interpreter: bool = False
    ela_op: str = "standard"
    fixed_shapes: bool = False


_FIELDS = tuple(field.name for field in dataclasses.fields(Settings))


def _from_environment(environ: dict[str, str]) -> Settings:
    """The defaults: :class:`Settings` with the environment variables of the table applied."""
    values: dict[str, Any] = {}
    raw = environ.get(_ENVIRONMENT["kernels"], "").strip().lower()
    if raw:
        if raw not in CHOICES["kernels"]:
            raise ValueError(f"YOLO_LAT_KERNELS must be one of {', '.join(CHOICES['kernels'])}; got {raw!r}")
        values["kernels"] = raw
    values["direct_launch"] = environ.get(_ENVIRONMENT["direct_launch"], "1").strip() != "0"
    values["interpreter"] = environ.get(_ENVIRONMENT["interpreter"], "0").strip() == "1"
    return Settings(**values)


def _checked(current: Settings, changes: dict[str, Any]) -> Settings:
    for name, value in changes.items():
        if name not in _FIELDS:
            match = difflib.get_close_matches(name, _FIELDS, n=1, cutoff=0.5)
            hint = f" Did you mean '{match[0]}'?" if match else ""
            raise ValueError(f"unknown yolo-lat setting {name!r}.{hint} Settings: {', '.join(_FIELDS)}")
        if name in CHOICES:
            if value not in CHOICES[name]:
                raise ValueError(f"{name} must be one of {', '.join(CHOICES[name])}; got {value!r}")
        elif not isinstance(value, bool):
            raise ValueError(f"{name} must be True or False; got {value!r}")
    updated = dataclasses.replace(current, **changes)
    frozen = getattr(sys.modules.get(_KERNEL_MODULE), "INTERPRETED", None)
    if frozen is not None and updated.interpreter != bool(frozen):
        raise ValueError(
            f"interpreter={updated.interpreter} but {_KERNEL_MODULE} was imported with interpreter={bool(frozen)}; "
            "set it before the kernels are imported (first thing in the process)"
        )
    return updated


_current = _from_environment(dict(os.environ))


def get() -> Settings:
    """The settings in force.

    Example:
        >>> get().ela_op
        'standard'
    """
    return _current


def configure(**changes: Any) -> Settings:
    """Change settings for the rest of the process; returns the settings that were in force before.

    Raises:
        ValueError: an unknown setting (with the closest name), a value outside its choices, or
            ``interpreter`` changed after ``yolo_lat.cuda_ops`` was imported.

    Example:
        >>> previous = configure(kernels="torch")
        >>> get().kernels, previous.kernels
        ('torch', 'auto')
        >>> _ = configure(kernels=previous.kernels)
    """
    global _current
    previous, _current = _current, _checked(_current, changes)
    return previous


@contextmanager
def override(**changes: Any) -> Iterator[Settings]:
    """Change settings inside a ``with`` block (process-wide), then restore them; yields the new settings.

    Example:
        >>> with override(ela_op="custom") as inside:
        ...     inside.ela_op
        'custom'
    """
    global _current
    previous = configure(**changes)
    try:
        yield _current
    finally:
        _current = previous
