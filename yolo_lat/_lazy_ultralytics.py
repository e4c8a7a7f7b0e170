"""Register the YOLO-LAT blocks with Ultralytics the moment Ultralytics is imported, not before.

``import yolo_lat`` must make Ultralytics model YAMLs able to name the YOLO-LAT blocks, but the ELA
core and the text models need no Ultralytics (importing it costs time, and it may not be
installed, e.g. on a GPU box running only the kernels). So: if ``ultralytics`` is already imported,
the shim is installed at once; otherwise a one-shot import hook installs it right after the
``ultralytics`` package finishes importing (which imports ``ultralytics.nn.tasks``), before any
model can be built.
"""

from __future__ import annotations

import importlib.abc
import sys
from collections.abc import Callable

__all__ = ["install_when_imported"]


def _install_shim() -> None:
    # ``yolo_lat.nn`` and the shim import Ultralytics for their own classes, so this can run in the
    # middle of their import, before the blocks or ``shim.install`` exist. Then it waits: the end of
    # ``yolo_lat/nn/__init__.py`` calls :func:`install_when_imported` again, and
    # ``yolo_lat/models/__init__.py`` installs the shim itself once the shim module is complete.
    layers, partial_shim = sys.modules.get("yolo_lat.nn"), sys.modules.get("yolo_lat.models.shim")
    if layers is not None and not hasattr(layers, "YAML_BLOCKS"):
        return
    if partial_shim is not None and not hasattr(partial_shim, "install"):
        return
    from yolo_lat.models import shim  # importing yolo_lat.models installs the shim

    shim.install()


class _CallbackLoader(importlib.abc.Loader):
    """Wraps a module's loader: execute the module, then run ``callback``."""

    def __init__(self, loader: importlib.abc.Loader, callback: Callable[[], None]):
        self._loader, self._callback = loader, callback

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module) -> None:
        self._loader.exec_module(module)
        self._callback()

    def __getattr__(self, name: str):  # resource readers and the like: the wrapped loader's
        return getattr(self._loader, name)


class _AfterImport(importlib.abc.MetaPathFinder):
    """One-shot finder: the spec of ``name`` from the other finders, with its loader wrapped."""

    def __init__(self, name: str, callback: Callable[[], None]):
        self.name, self.callback = name, callback

    def find_spec(self, fullname, path, target=None):
        if fullname != self.name:
            return None
        sys.meta_path.remove(self)
        for finder in sys.meta_path:
            find = getattr(finder, "find_spec", None)
            spec = find(fullname, path, target) if find else None
            if spec is not None:
                break
        else:
            return None
        if spec.loader is not None and hasattr(spec.loader, "exec_module"):
            spec.loader = _CallbackLoader(spec.loader, self.callback)
        return spec


def install_when_imported(callback: Callable[[], None] = _install_shim) -> None:
    """Run ``callback`` now if Ultralytics is imported, else right after it is (idempotent)."""
    if "ultralytics" in sys.modules:
        callback()
        return
    if not any(isinstance(f, _AfterImport) and f.name == "ultralytics" for f in sys.meta_path):
        sys.meta_path.insert(0, _AfterImport("ultralytics", callback))
