"""What the ``yolo-lat benchmark <name>`` handlers share: run with the parsed settings, write JSON atomically.

The dispatcher and help are :mod:`yolo_lat.cli`; each benchmark module holds its argument table
(``DEFAULTS``/``DOCS``), its ``run(settings) -> record`` and its ``command(settings)`` handler.

Example:
    >>> import json, tempfile, pathlib
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "r.json"
    >>> finish({"out": str(out)}, lambda s: {"rows": [1]}, lambda r: f"{len(r['rows'])} row")  # doctest: +ELLIPSIS
    1 row
    results: ...
    0
    >>> json.loads(out.read_text())
    {'rows': [1]}
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any


def write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` through a temporary file renamed into place, so a reader never sees half a file."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    staged = out.with_name(out.name + ".tmp")
    staged.write_text(text)
    staged.replace(out)
    return out


def write_json(path: str | Path, record: dict[str, Any]) -> Path:
    """Write ``record`` as JSON through a temporary file (:func:`write_text`)."""
    return write_text(path, json.dumps(record, indent=2, default=str))


def finish(
    settings: dict[str, Any],
    run: Callable[[dict[str, Any]], dict[str, Any]],
    render: Callable[[dict[str, Any]], str],
) -> int:
    """Run a benchmark with ``settings``, write ``settings["out"]`` as JSON, print the rendered table.

    Args:
        settings: the benchmark's ``DEFAULTS`` with the given values (``out`` among them).
        run: ``settings -> record`` (the JSON-ready result).
        render: ``record -> text`` printed after the run.

    Returns:
        The exit status, 0.
    """
    record = run(settings)
    out = write_json(settings["out"], record)
    print(render(record))
    print(f"results: {out}")
    return 0
