"""The one registration shim: teach Ultralytics' YAML parser the YOLO-LAT blocks.

``ultralytics.nn.tasks.parse_model`` looks module names up in its module's globals and gives
channel scaling (``c1`` prepended, ``c2`` scaled by width and capped by ``max_channels``) and
repeat handling (``n`` scaled by depth and passed as the third argument) only to classes listed in
two sets built *inside* the function; YOLO12's ``A2C2f`` also gets extra arguments at scales l/x,
keyed on class identity. None of that is reachable from outside, so :func:`install` (which
``import yolo_lat.nn`` runs)

1. adds the YOLO-LAT blocks to the globals of ``ultralytics.nn.tasks``;
2. re-compiles ``parse_model`` from the installed package's own source with an ``ast`` edit that
   puts the blocks into ``base_modules`` / ``repeat_modules``, treats :class:`A2C2fELA` like
   ``A2C2f`` (extra l/x arguments), and builds the current (non-legacy) Detect head for models
   that use YOLO-LAT blocks, as ``C3k2``/``A2C2f`` do;
3. installs the result as ``ultralytics.nn.tasks.parse_model`` (its callers look it up there);
4. registers the blocks for ``torch.load(weights_only=True)``, which Ultralytics uses under
   ``ULTRALYTICS_SAFE_LOAD=1``.

Nothing of Ultralytics' source is stored in this repository and no installed file is edited. Any
Ultralytics release whose parser has the shape these edits expect works; if the shape changes,
:class:`ShimError` says so at import, naming the installed version and the tested range, instead of
a model silently built with wrong channels. ``TESTED_RANGE`` is the range ``pyproject.toml``
allows: the releases this was run against.
"""

from __future__ import annotations

import ast
import inspect
import textwrap

import torch

from .attention2d import ELAAttention2d
from .blocks import YAML_BLOCKS, A2C2fELA, ELABlock

__all__ = ["TESTED_RANGE", "ShimError", "install", "is_installed"]

#: The Ultralytics releases the edits were run against (``pyproject.toml`` allows this range; CI
#: tests the release that ``constraints.txt`` pins).
TESTED_RANGE = ">=8.4.0,<8.5"
#: Blocks whose third argument is the (depth-scaled) repeat count.
REPEAT_BLOCKS = tuple(block for block in YAML_BLOCKS if block.__name__ != "SeparableConv")
_MARK = "__yolo_lat_shim__"


class ShimError(RuntimeError):
    """Ultralytics' ``parse_model`` no longer has the shape the shim edits."""


def is_installed() -> bool:
    """Whether ``ultralytics.nn.tasks.parse_model`` is the shimmed version.

    Example:
        >>> from yolo_lat.nn.shim import is_installed  # importing yolo_lat.nn installs the shim
        >>> is_installed()
        True
    """
    from ultralytics.nn import tasks

    return bool(getattr(tasks.parse_model, _MARK, False))


def install() -> None:
    """Register the YOLO-LAT blocks with Ultralytics (idempotent; runs on ``import yolo_lat.nn``).

    Raises:
        ShimError: ``parse_model``'s source is unavailable or not shaped as expected, or a block
            name is already taken by another object in ``ultralytics.nn.tasks``.

    Example:
        >>> from yolo_lat.nn.shim import install
        >>> install()  # safe to call again
    """
    from ultralytics.nn import tasks

    torch.serialization.add_safe_globals([*YAML_BLOCKS, ELABlock, ELAAttention2d])
    if is_installed():
        return
    for block in YAML_BLOCKS:
        existing = tasks.__dict__.get(block.__name__)
        if existing is not None and existing is not block:
            raise ShimError(
                f"ultralytics.nn.tasks already defines {block.__name__!r}; cannot register the YOLO-LAT block"
            )
        setattr(tasks, block.__name__, block)
    original = tasks.parse_model
    patched = _compile_patched(original, tasks.__dict__)
    setattr(patched, _MARK, True)
    patched.__wrapped__ = original
    tasks.parse_model = patched


def _compile_patched(original, namespace: dict):
    try:
        source = textwrap.dedent(inspect.getsource(original))
    except (OSError, TypeError) as err:
        raise ShimError(f"cannot read the source of ultralytics.nn.tasks.parse_model: {err}") from err
    tree = ast.parse(source)
    function = tree.body[0] if len(tree.body) == 1 else None
    if not isinstance(function, ast.FunctionDef) or function.name != "parse_model" or function.decorator_list:
        raise ShimError("ultralytics.nn.tasks.parse_model is no longer a plain function")
    editor = _ParseModelEditor()
    editor.visit(function)
    editor.check()
    ast.fix_missing_locations(tree)
    ast.increment_lineno(tree, original.__code__.co_firstlineno - 1)  # tracebacks point at the real lines
    scope: dict = {}
    exec(compile(tree, original.__code__.co_filename, "exec"), namespace, scope)
    patched = scope["parse_model"]
    patched.__doc__ = original.__doc__
    return patched


def _names(blocks) -> list[ast.expr]:
    return [ast.Name(id=block.__name__, ctx=ast.Load()) for block in blocks]


class _ParseModelEditor(ast.NodeTransformer):
    """Applies the edits (sets, A2C2f twin, non-legacy head); :meth:`check` fails unless each applied once."""

    def __init__(self) -> None:
        self.applied = {"base_modules": 0, "repeat_modules": 0, "A2C2f special case": 0}

    def visit_Assign(self, node: ast.Assign) -> ast.Assign:
        target = node.targets[0] if len(node.targets) == 1 else None
        name = target.id if isinstance(target, ast.Name) else None
        if name in ("base_modules", "repeat_modules"):
            call = node.value
            if not (
                isinstance(call, ast.Call)
                and isinstance(call.func, ast.Name)
                and call.func.id == "frozenset"
                and len(call.args) == 1
                and isinstance(call.args[0], ast.Set)
            ):
                raise ShimError(f"parse_model: {name} is no longer a frozenset of a set literal")
            call.args[0].elts.extend(_names(YAML_BLOCKS if name == "base_modules" else REPEAT_BLOCKS))
            self.applied[name] += 1
        return node

    def visit_If(self, node: ast.If) -> ast.If | list[ast.stmt]:
        self.generic_visit(node)
        test = node.test
        if (
            isinstance(test, ast.Compare)
            and isinstance(test.left, ast.Name)
            and test.left.id == "m"
            and len(test.ops) == 1
            and isinstance(test.ops[0], ast.Is)
            and isinstance(test.comparators[0], ast.Name)
            and test.comparators[0].id == "A2C2f"
        ):
            twin = ast.Compare(left=ast.Name(id="m", ctx=ast.Load()), ops=[ast.Is()], comparators=_names([A2C2fELA]))
            node.test = ast.BoolOp(op=ast.Or(), values=[test, twin])
            modern_head = ast.parse(
                f"if m in {{{', '.join(block.__name__ for block in YAML_BLOCKS)}}}:\n    legacy = False"
            ).body[0]
            self.applied["A2C2f special case"] += 1
            return [node, modern_head]
        return node

    def check(self) -> None:
        wrong = {edit: count for edit, count in self.applied.items() if count != 1}
        if wrong:
            import ultralytics

            raise ShimError(
                f"ultralytics {ultralytics.__version__}: parse_model no longer has the expected shape "
                f"(edit -> times found: {wrong}); yolo-lat was tested with ultralytics{TESTED_RANGE}"
            )
