"""Import ``yolo_lat`` from this checkout without running ``yolo_lat/__init__.py``.

The GPU machine has PyTorch and Triton but neither Ultralytics nor an installed ``yolo-lat``;
``yolo_lat/__init__.py`` imports the Ultralytics integration, and ``cuda_ops/`` is mapped to
``yolo_lat.cuda_ops`` only by the installed package. A bare package module whose search path
is ``[<checkout>/yolo_lat, <checkout>]`` gives ``yolo_lat.ela`` (first entry) and
``yolo_lat.cuda_ops`` (second entry) straight from the source tree, with nothing installed.
"""

from __future__ import annotations

import sys
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def use_checkout() -> None:
    """Make ``import yolo_lat.ela`` / ``yolo_lat.cuda_ops`` load this checkout (idempotent)."""
    current = sys.modules.get("yolo_lat")
    if current is not None and getattr(current, "__checkout__", False):
        return
    for name in [n for n in sys.modules if n == "yolo_lat" or n.startswith("yolo_lat.")]:
        del sys.modules[name]
    package = types.ModuleType("yolo_lat", "yolo_lat loaded from the checkout, without its __init__")
    package.__path__ = [str(ROOT / "yolo_lat"), str(ROOT)]
    package.__checkout__ = True
    sys.modules["yolo_lat"] = package
