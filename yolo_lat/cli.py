"""The ``yolo-lat`` command: ``yolo-lat MODE [SUBMODE] key=value ...``, a thin layer over the API.

Each mode is a function taking the remaining words; ``--help`` works for every mode. Values are
parsed safely (:mod:`yolo_lat.args`, never ``eval``); a bad key or value is a one-line error and
exit status 2.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

from yolo_lat import __version__
from yolo_lat.args import ArgumentError, closest

USAGE = """usage: yolo-lat MODE [SUBMODE] [key=value ...]
       yolo-lat --version | --help | MODE --help

Exact Linear Attention (ELA) detectors and text models.

modes:
{modes}

examples:
  yolo-lat benchmark attention lengths=256,1024,4096
"""


def _benchmark(argv: list[str]) -> int:
    subs: dict[str, tuple[str, Callable[[list[str]], int]]] = {}

    def attention(args: list[str]) -> int:
        from yolo_lat.bench import attention as bench

        return bench.main(args)

    subs["attention"] = ("ELA vs naive reference vs softmax SDPA over sequence length", attention)
    return _dispatch("benchmark", subs, argv)


MODES: dict[str, tuple[str, Callable[[list[str]], int]]] = {
    "benchmark": ("measure speed and memory (benchmark attention)", _benchmark),
}


def _dispatch(name: str, table: dict[str, tuple[str, Callable[[list[str]], int]]], argv: list[str]) -> int:
    listing = "\n".join(f"  {key:<12} {doc}" for key, (doc, _) in table.items())
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(f"usage: yolo-lat {name} SUBMODE [key=value ...]\n\nsubmodes:\n{listing}")
        return 0
    sub, rest = argv[0], argv[1:]
    if sub not in table:
        raise ArgumentError(f"unknown {name} submode '{sub}'.{closest(sub, table)} Choose from: {', '.join(table)}")
    return table[sub][1](rest)


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    modes = "\n".join(f"  {key:<12} {doc}" for key, (doc, _) in MODES.items())
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE.format(modes=modes))
        return 0
    if argv[0] in ("-V", "--version", "version"):
        print(f"yolo-lat {__version__}")
        return 0
    mode, rest = argv[0], argv[1:]
    if mode not in MODES:
        raise ArgumentError(f"unknown mode '{mode}'.{closest(mode, MODES)} Choose from: {', '.join(MODES)}")
    return MODES[mode][1](rest)


def entrypoint() -> None:
    """Console-script entry point: errors become one line on stderr and exit status 2."""
    try:
        status = main()
    except (ArgumentError, ValueError, FileNotFoundError) as err:
        print(f"yolo-lat: error: {err}", file=sys.stderr)
        status = 2
    except KeyboardInterrupt:
        status = 130
    sys.exit(status)


if __name__ == "__main__":
    entrypoint()
