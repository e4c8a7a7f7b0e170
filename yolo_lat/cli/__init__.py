"""The ``yolo-lat`` command: ``yolo-lat MODE [SUBMODE] key=value ...``, a thin layer over the Python API.

One dispatcher (:func:`main`) walks the command table (:data:`~yolo_lat.cli.commands.COMMANDS`),
one formatter (:func:`usage`) prints the help of any node of it, and one parser (:func:`parse`)
turns a command's ``key=value`` words into its arguments dict, safely (:mod:`yolo_lat.args`, never
``eval``). Model modes (train, val, predict, export, info) take every Ultralytics setting and call
the corresponding :class:`~yolo_lat.YOLOLAT` method (:mod:`yolo_lat.cli.model`), as ``yolo`` does
with ``YOLO``. A bad key or value is a one-line error naming it, with the closest valid key, and
exit status 2 from the console script (:func:`entrypoint`).

Example:
    >>> main(["data", "check", "dat=coco"])
    Traceback (most recent call last):
    ...
    yolo_lat.args.ArgumentError: unknown argument 'dat' for data check. Did you mean 'data'?
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence
from typing import Any

from yolo_lat import __version__
from yolo_lat.args import (
    HELP_WORDS,
    ArgumentError,
    closest,
    format_defaults,
    mode_help,
    parse_overrides,
    split_pairs,
    typed,
    wants_help,
)
from yolo_lat.cli.commands import COMMANDS, Command

__all__ = ["COMMANDS", "MODES", "Command", "entrypoint", "main", "parse", "usage"]

#: The top-level modes by name (``train`` ... ``demo``).
MODES: dict[str, Command] = {command.name: command for command in COMMANDS.children}
VERSION_WORDS = ("-V", "--version", "version")


def load(reference: str) -> Any:
    """The object named by ``"module:attribute"``.

    Handlers and argument tables load on use: their modules import torch or Ultralytics, which
    ``yolo-lat --help`` and argument errors do without.

    Example:
        >>> load("yolo_lat.datasets.cli:CHECK_DEFAULTS")["limit"]
        20
    """
    module, _, attribute = reference.partition(":")
    return getattr(importlib.import_module(module), attribute)


def argument_table(command: Command) -> tuple[dict[str, Any], dict[str, str]]:
    """``(defaults, docs)`` of a leaf with an argument table: ``NAME_DEFAULTS`` and ``NAME_DOCS``."""
    defaults = load(command.arguments)
    docs = load(command.arguments.removesuffix("DEFAULTS") + "DOCS")
    return defaults, docs


def usage(path: Sequence[Command]) -> str:
    """The help of the last node of ``path`` (the root first): usage line, description, its choices.

    Args:
        path: the nodes from :data:`COMMANDS` down to the one to describe.

    Returns:
        The help text: a group lists its subcommands, a leaf its arguments with their defaults.

    Example:
        >>> print(usage([COMMANDS, COMMANDS.child("data")]).splitlines()[0])
        usage: yolo-lat data SUBMODE [key=value ...]   (SUBMODE --help for its arguments)
    """
    command = path[-1]
    prog = " ".join(node.name for node in path)
    about = command.about or command.summary
    if command.children:
        word = "MODE" if len(path) == 1 else "SUBMODE"
        lines = [f"usage: {prog} {word} [key=value ...]   ({word} --help for its arguments)"]
        if len(path) == 1:
            lines[0] = f"usage: {prog} {word} [SUBMODE] [key=value ...]"
            lines.append(f"       {prog} --version | --help | {word} --help")
        lines += ["", about, "", f"{word.lower()}s:"]
        width = max(10, *(len(child.name) for child in command.children))
        lines += [f"  {child.name:<{width}} {child.summary}" for child in command.children]
        if command.examples:
            lines += ["", "examples:", *(f"  {example}" for example in command.examples)]
        return "\n".join(lines)
    if command.ultralytics:
        return mode_help(command.name, f"usage: {prog} model=... [key=value ...]\n\n{about}", command.extra)
    defaults, docs = argument_table(command)
    return f"usage: {prog} [key=value ...]\n\n{about}\n\narguments:\n{format_defaults(defaults, docs)}"


def parse(path: Sequence[Command], argv: list[str]) -> dict[str, Any]:
    """The arguments dict of the leaf at the end of ``path``, from its ``key=value`` words.

    Args:
        path: the nodes from :data:`COMMANDS` down to the leaf.
        argv: the words after the command.

    Returns:
        A model command: the given Ultralytics settings (checked by Ultralytics). Any other: its
        argument table's defaults updated with the given values.

    Raises:
        ArgumentError: an unknown key (with the closest valid one) or a value of the wrong type.

    Example:
        >>> parse([COMMANDS, COMMANDS.child("data"), COMMANDS.child("data").child("check")], ["data=coco"])["data"]
        'coco'
    """
    command = path[-1]
    if command.ultralytics:
        return parse_overrides(command.name, argv, command.extra)
    defaults, _ = argument_table(command)
    return typed(defaults, split_pairs(argv), " ".join(node.name for node in path[1:]))


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``yolo-lat`` with ``argv`` (default: ``sys.argv[1:]``); returns the exit status.

    Walks the command table word by word to a leaf, then parses the rest as ``key=value`` words
    and calls the leaf's handler. ``--help`` (``-h``, ``help``) prints the help of the node reached.

    Raises:
        ArgumentError: an unknown mode or submode, key or value (one-line message).

    Example:
        >>> main(["text", "trian"])  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        yolo_lat.args.ArgumentError: unknown text submode 'trian'. Did you mean 'train'? Choose from: ...
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] and argv[0] in VERSION_WORDS:
        print(f"yolo-lat {__version__}")
        return 0
    path = [COMMANDS]
    while path[-1].children:
        group = path[-1]
        if not argv or argv[0] in HELP_WORDS:
            print(usage(path))
            return 0
        if group.fallback and "=" in argv[0]:
            argv.insert(0, group.fallback)
        word, argv = argv[0], argv[1:]
        found = group.child(word)
        if found is None:
            names = [child.name for child in group.children]
            what = "mode" if group is COMMANDS else f"{group.name} submode"
            raise ArgumentError(f"unknown {what} '{word}'.{closest(word, names)} Choose from: {', '.join(names)}")
        path.append(found)
    if wants_help(argv):
        print(usage(path))
        return 0
    status = load(path[-1].handler)(parse(path, argv))
    return 0 if status is None else int(status)


def entrypoint(argv: Sequence[str] | None = None) -> None:
    """Console-script entry point: runs :func:`main`; errors become one message on stderr and exit status 2.

    Args:
        argv: words after the program name (default: ``sys.argv[1:]``).
    """
    try:
        status = main(argv)
    except (ArgumentError, ValueError, FileNotFoundError) as err:
        print(f"yolo-lat: error: {err}", file=sys.stderr)
        status = 2
    except KeyboardInterrupt:
        status = 130
    sys.exit(status)
