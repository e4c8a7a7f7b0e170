"""Per-file checks of a YOLO split: Ultralytics' own verification decides, the report names the file and line.

Every image goes through Ultralytics' ``check_image`` and every image with a label file through its
``verify_image_label``, the functions its datasets run before training: what they reject is what Ultralytics
would drop, and their messages are reused. Two things are added:

- the label file is also read row by row, so a problem names its line (Ultralytics gives one message per file,
  for the first failed rule, and drops the image with all its labels);
- nothing is modified: ``check_image`` rewrites a JPEG that lacks its end-of-image marker in place, so such a
  file is verified as a temporary copy.

With ``decode``, images are also decoded in full (``check_image`` reads headers only), which finds truncated
pixel data.

Example:
    >>> import tempfile
    >>> from yolo_lat.datasets.synth import generate
    >>> from yolo_lat.datasets.verify import check_pair
    >>> root = generate(tempfile.mkdtemp(), n_train=1, n_val=1, imgsz=64, seed=0, preview=False).parent
    >>> _ = (root / "labels" / "val" / "000001.txt").write_text("0 0.5 0.5 0.2 0.2\\n0 0.5 0.5 0.2 0.2\\n")
    >>> check_pair(root / "images" / "val" / "000001.jpg", nc=6).problems
    [('warning', 2, 'duplicate of line 1: Ultralytics drops the copy')]
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from yolo_lat.datasets.layout import label_file_for

TOLERANCE = 0.01  # Ultralytics accepts normalised coordinates from -0.01 up to 1.01
_DROPPED = "ignoring corrupt image/label: "  # how verify_image_label's message introduces the reason


@dataclass
class PairCheck:
    """What :func:`check_pair` found for one image and its label file.

    Args:
        image: The image.
        label: Its label file (which may not exist).
        image_problem: None, or ``(kind, text)`` with ``kind`` ``corrupt`` (Ultralytics skips the image) or
            ``damaged`` (Ultralytics repairs and keeps it).
        label_found: The label file exists.
        rows: Object rows in the label file.
        problems: Label problems as ``(severity, line, text)``; line 0 means the whole file.
        per_class: Boxes per class id, as Ultralytics keeps them (duplicates removed); empty when the file has an
            error.

    Example:
        >>> PairCheck(Path("a.jpg"), Path("a.txt")).rows
        0
    """

    image: Path
    label: Path
    image_problem: tuple[str, str] | None = None
    label_found: bool = False
    rows: int = 0
    problems: list[tuple[str, int, str]] = field(default_factory=list)
    per_class: Counter = field(default_factory=Counter)

    @property
    def label_errors(self) -> bool:
        """True when a label problem is fatal."""
        return any(severity == "error" for severity, _, _ in self.problems)


@contextlib.contextmanager
def _unmodified(file: Path) -> Iterator[Path]:
    """A path that Ultralytics' ``check_image`` may verify without changing ``file``.

    ``check_image`` rewrites a JPEG (it starts with FF D8) that does not end with FF D9; such a file is given as a
    temporary copy, any other file as itself.
    """
    with open(file, "rb") as handle:
        start = handle.read(2)
        handle.seek(-min(2, file.stat().st_size), 2)
        end = handle.read()
    if start != b"\xff\xd8" or end == b"\xff\xd9":
        yield file
        return
    with tempfile.TemporaryDirectory() as folder:
        copy = Path(folder) / file.name
        shutil.copyfile(file, copy)
        yield copy


def _named_cause(err: BaseException) -> BaseException:
    """The ``UnidentifiedImageError`` behind ``err`` if there is one, else ``err``.

    Ultralytics' PIL patch answers a file PIL cannot identify by loading the HEIF plugin and trying again; when
    that fails it raises about the plugin, with PIL's error as the context.
    """
    cause: BaseException | None = err
    while cause is not None:
        if isinstance(cause, UnidentifiedImageError):
            return cause
        cause = cause.__context__
    return err


def check_image_file(file: Path, decode: bool = True) -> tuple[str, str] | None:
    """Check one image with Ultralytics' ``check_image`` (without letting it modify the file).

    Args:
        file: Image path.
        decode: Also decode all pixels (finds truncated files that the header check misses).

    Returns:
        None when fine, else ``(kind, problem)`` with ``kind`` ``corrupt`` (Ultralytics skips the image) or
        ``damaged`` (Ultralytics repairs and keeps it).

    Example:
        >>> import tempfile
        >>> folder = Path(tempfile.mkdtemp())
        >>> Image.new("RGB", (64, 48)).save(folder / "fine.jpg")
        >>> check_image_file(folder / "fine.jpg") is None
        True
        >>> _ = (folder / "broken.jpg").write_bytes(b"not an image")
        >>> check_image_file(folder / "broken.jpg")[0]
        'corrupt'
    """
    from ultralytics.data.utils import check_image  # deferred: Ultralytics is heavy, yolo_lat.datasets works without

    if not file.is_file():
        return "corrupt", "listed image does not exist: skipped"
    with _unmodified(file) as view:
        try:
            restored, _ = check_image(str(view))
        except AssertionError as err:  # Ultralytics' own rules: at least 10 pixels a side, a known format
            return "corrupt", f"corrupt image, skipped: {err}"
        except Exception as err:  # PIL raises many types for unreadable files
            if view != file:
                return "corrupt", f"corrupt image, skipped: truncated JPEG ({err})"
            cause = _named_cause(err)
            return "corrupt", f"corrupt image, skipped: cannot be read ({type(cause).__name__}: {cause})"
    if restored:
        return "damaged", "JPEG does not end with an end-of-image marker: Ultralytics re-saves it (file rewritten)"
    if decode:
        try:
            with Image.open(file) as im:
                im.load()
        except Exception as err:
            return "corrupt", f"corrupt image, skipped: pixel data cannot be decoded ({type(err).__name__}: {err})"
    return None


def label_row_problems(file: Path, nc: int) -> tuple[list[tuple[str, int, str]], int]:
    """Read a YOLO label file row by row and name each problem with its line.

    Args:
        file: The ``.txt`` file (must exist).
        nc: Number of classes.

    Returns:
        ``(problems, rows)``: problems as ``(severity, line, text)`` (line 0: the whole file) and the number of
        object rows.

    Example:
        >>> import tempfile
        >>> label = Path(tempfile.mkdtemp()) / "000001.txt"
        >>> _ = label.write_text("0 0.5 0.5 0.2 0.2\\n7 0.5 0.5 0.2 0.2\\n1 80 60 20 20\\n")
        >>> problems, rows = label_row_problems(label, nc=6)
        >>> rows, [line for _, line, _ in problems]
        (3, [2, 3])
        >>> problems[0]
        ('error', 2, 'class id 7 out of range: the YAML has 6 classes (ids 0-5)')
    """
    problems: list[tuple[str, int, str]] = []
    seen: dict[tuple[float, ...], int] = {}
    rows = 0
    try:
        text = file.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as err:
        return [("error", 0, f"label file cannot be read: {err}")], 0
    for number, raw in enumerate(text.splitlines(), start=1):
        words = raw.split()
        if not words:
            continue
        rows += 1
        try:
            values = [float(w) for w in words]
        except ValueError:
            bad = next(w for w in words if not _is_number(w))
            problems.append(("error", number, f"'{bad}' is not a number (expected: class cx cy w h)"))
            continue
        row = tuple(np.asarray(values, dtype=np.float32).tolist())  # Ultralytics compares rows as float32
        if row in seen:
            problems.append(("warning", number, f"duplicate of line {seen[row]}: Ultralytics drops the copy"))
            continue
        seen[row] = number
        problems += [(severity, number, text) for severity, text in _row_problems(values, nc)]
    return problems, rows


def _is_number(word: str) -> bool:
    try:
        float(word)
    except ValueError:
        return False
    return True


def _row_problems(values: list[float], nc: int) -> list[tuple[str, str]]:
    """Problems of one parsed label row: ``(severity, text)`` pairs."""
    if len(values) != 5 and (len(values) < 7 or len(values) % 2 == 0):
        return [("error", f"{len(values)} values; expected 5 (class cx cy w h) or a polygon (class x1 y1 x2 y2 ...)")]
    out = []
    cls = values[0]
    if cls != int(cls):
        out.append(("error", f"class id {cls:g} is not an integer"))
    elif not 0 <= cls < nc:
        out.append(("error", f"class id {int(cls)} out of range: the YAML has {nc} classes (ids 0-{nc - 1})"))
    coords = values[1:]
    outside = [v for v in coords if v < -TOLERANCE or v > 1 + TOLERANCE]
    if outside:
        hint = " (pixel coordinates?)" if max(coords) > 2 else ""
        shown = ", ".join(f"{v:g}" for v in outside[:4])
        out.append(("error", f"box not normalised: {shown} outside 0-1{hint}; coordinates are fractions of the image"))
        return out
    if len(values) == 5:
        cx, cy, w, h = coords
        if w < 0 or h < 0:
            out.append(("error", f"negative box size w={w:g} h={h:g}"))
        elif w == 0 or h == 0:
            out.append(("warning", f"zero-size box w={w:g} h={h:g}: it cannot be matched by any prediction"))
        elif min(cx - w / 2, cy - h / 2) < -TOLERANCE or max(cx + w / 2, cy + h / 2) > 1 + TOLERANCE:
            out.append(("warning", "box reaches outside the image: Ultralytics clips it"))
    return out


def check_pair(image: Path, nc: int, decode: bool = True) -> PairCheck:
    """Check an image and its label file: Ultralytics' verdict, with every label problem at its line.

    The image is checked with :func:`check_image_file`; unless Ultralytics would skip it, the label file is read
    with :func:`label_row_problems` and verified with Ultralytics' ``verify_image_label``. When Ultralytics drops
    the pair for a reason no row explains (e.g. a file mixing box and polygon rows), its message becomes a
    whole-file error.

    Args:
        image: Image path; its label is :func:`~yolo_lat.datasets.layout.label_file_for` it.
        nc: Number of classes.
        decode: Decode every pixel of the image too.

    Returns:
        A :class:`PairCheck`.

    Example:
        >>> import tempfile
        >>> from yolo_lat.datasets.synth import generate
        >>> root = generate(tempfile.mkdtemp(), n_train=1, n_val=1, imgsz=64, seed=0, preview=False).parent
        >>> found = check_pair(root / "images" / "val" / "000001.jpg", nc=6)
        >>> found.label_found, found.problems, found.rows == sum(found.per_class.values()) > 0
        (True, [], True)
    """
    from ultralytics.data.utils import verify_image_label  # deferred: Ultralytics is heavy

    found = PairCheck(image, label_file_for(image))
    found.image_problem = check_image_file(image, decode=decode)
    if found.image_problem and found.image_problem[0] == "corrupt":
        return found
    found.label_found = found.label.is_file()
    if not found.label_found:
        return found
    found.problems, found.rows = label_row_problems(found.label, nc)
    with _unmodified(image) as view:
        verdict = verify_image_label((str(view), str(found.label), "", False, nc, 0, 0, False))
    dropped, message, boxes = verdict[8], verdict[9], verdict[1]
    if dropped and not found.label_errors:
        reason = message.partition(_DROPPED)[2] or message
        found.problems.append(("error", 0, f"Ultralytics drops this image and its labels: {reason}"))
    elif not dropped and not found.label_errors:
        found.per_class = Counter(int(c) for c in boxes[:, 0])
    return found
