"""What every ``yolo-lat benchmark <name>`` entry point shares: help, argument parsing, atomic JSON."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from yolo_lat.args import format_defaults, split_pairs, typed

HELP_WORDS = ("-h", "--help", "help")


def wants_help(argv: list[str], name: str, doc: str, defaults: dict[str, Any], docs: dict[str, str]) -> bool:
    """Print the usage of ``yolo-lat benchmark <name>`` and return True when ``argv`` asks for help."""
    if not any(word in HELP_WORDS for word in argv):
        return False
    summary = (doc or "").strip().splitlines()[0] if doc else ""
    print(f"usage: yolo-lat benchmark {name} [key=value ...]\n\n{summary}\n\narguments:")
    print(format_defaults(defaults, docs))
    return True


def write_json(path: str | Path, record: dict[str, Any]) -> Path:
    """Write ``record`` as JSON through a temporary file, so a reader never sees half a file."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    staged = out.with_name(out.name + ".tmp")
    staged.write_text(json.dumps(record, indent=2, default=str))
    staged.replace(out)
    return out


def run_benchmark(
    name: str,
    doc: str | None,
    defaults: dict[str, Any],
    docs: dict[str, str],
    run: Callable[[dict[str, Any]], dict[str, Any]],
    render: Callable[[dict[str, Any]], str],
    argv: list[str] | None,
) -> int:
    """Parse ``argv``, run, write ``settings["out"]`` as JSON, print the rendered table."""
    argv = sys.argv[1:] if argv is None else argv
    if wants_help(argv, name, doc or "", defaults, docs):
        return 0
    settings = typed(defaults, split_pairs(argv), f"benchmark {name}")
    record = run(settings)
    out = write_json(settings["out"], record)
    print(render(record))
    print(f"results: {out}")
    return 0


def script_entry(main: Callable[[], int]) -> None:
    """``python -m yolo_lat.bench.<name>``: argument errors become one line and exit status 2."""
    try:
        sys.exit(main())
    except ValueError as err:  # ArgumentError included
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
