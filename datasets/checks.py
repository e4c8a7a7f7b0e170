"""Dataset validation before training or validation: every problem names the file (and line) and says what is wrong.

``validate_dataset(data_yaml)`` reads a YOLO data YAML the way Ultralytics 8.4 does (same root and split path
resolution, same image suffixes, same ``images`` -> ``labels`` mapping) without downloading anything, then checks
every image and label file of the requested splits. It never raises for a problem in the dataset; it returns a
:class:`DatasetReport`, whose ``raise_if_errors()`` turns fatal problems into one :class:`DatasetError`.

Severity, and why:

- **error** (fatal: ``yolo-lat train``/``val`` refuse to start):
  the YAML is missing, unreadable or not a mapping; a required key is missing (``train``, ``val``, and ``names``
  or ``nc``); ``names`` and ``nc`` disagree; the dataset root or a split path does not exist (the message lists
  the expected layout and, when the YAML has a ``download:`` recipe, how to run it); a split has no images, or no
  label file at all; a label row is malformed (not numbers, wrong column count), has a class id that is not an
  integer in ``0..nc-1``, or a box that is not normalised (a value outside 0-1 by more than Ultralytics' 0.01
  tolerance, e.g. pixel coordinates) or has a negative size. Ultralytics silently drops every image whose
  label file has such a row, so training would go on quietly with the wrong data.
- **warning** (the run goes on): a corrupt, truncated or unreadable image, or one under 10 pixels (Ultralytics
  skips it, with a message that can be misleading, e.g. "No module named 'pi_heif'" for a file that is not an
  image; we name it, say why and count it); a JPEG that decodes but lacks its end marker (Ultralytics rewrites
  the file in place); a zero-size box; a box reaching outside the image (Ultralytics clips it); duplicate label
  rows (Ultralytics drops the copies).
- **note**: an empty label file, or an image without a label file: a background image with no objects.

Example:
    >>> from yolo_lat.datasets.checks import validate_dataset
    >>> report = validate_dataset("runs/data/shapes/data.yaml")
    >>> report.ok, report.splits["val"].images
    (True, 100)
"""

from __future__ import annotations

import os
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from yolo_lat.datasets import DATASETS_DIR
from yolo_lat.datasets.coco_json import label_file_for

SEVERITIES = ("error", "warning", "note")
REQUIRED_KEYS = ("train", "val", "names")
_TOLERANCE = 0.01  # Ultralytics accepts normalised coordinates up to 1.01 and down to -0.01
_MIN_IMAGE_SIDE = 10  # Ultralytics' check_image rejects smaller images


class DatasetError(ValueError):
    """A dataset that cannot be used; the message lists every fatal problem with its file."""


@dataclass(frozen=True)
class Issue:
    """One problem found in a dataset.

    Args:
        severity: ``error``, ``warning`` or ``note``.
        file: The file (or YAML) concerned.
        problem: What is wrong, in words.
        line: 1-based line in ``file``, when it is about one line.

    Example:
        >>> str(Issue("error", "labels/val/1.txt", "class id 7 out of range 0-5", line=2))
        'error: labels/val/1.txt:2: class id 7 out of range 0-5'
    """

    severity: str
    file: str
    problem: str
    line: int | None = None

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{self.severity}: {where}: {self.problem}"


@dataclass
class SplitReport:
    """Counts for one split (``train``, ``val``, ...).

    Args:
        name: Split name.
        sources: Resolved paths the YAML gives for the split.
        images: Image files found.
        label_files: Label files found (empty ones included).
        empty_labels: Empty label files (background images).
        missing_labels: Images without a label file (background images).
        corrupt_images: Images Ultralytics will skip because they cannot be read.
        damaged_images: JPEGs without an end marker that Ultralytics rewrites and keeps.
        bad_label_files: Label files with at least one fatal row.
        instances: Boxes in the valid label rows.
        per_class: Boxes per class id.

    Example:
        >>> SplitReport("val").images
        0
    """

    name: str
    sources: list[str] = field(default_factory=list)
    images: int = 0
    label_files: int = 0
    empty_labels: int = 0
    missing_labels: int = 0
    corrupt_images: int = 0
    damaged_images: int = 0
    bad_label_files: int = 0
    instances: int = 0
    per_class: Counter = field(default_factory=Counter)

    def line(self) -> str:
        """One summary line."""
        return (
            f"{self.name}: {self.images} images, {self.label_files} label files ({self.empty_labels} empty), "
            f"{self.missing_labels} without labels, {self.corrupt_images} corrupt (skipped), "
            f"{self.bad_label_files} with bad labels, {self.instances} objects"
        )


@dataclass
class DatasetReport:
    """What :func:`validate_dataset` found.

    Args:
        data_yaml: The YAML checked (as given when it could not be found).
        root: Resolved dataset root, when the YAML got that far.
        names: Class names by id.
        splits: Per-split counts.
        issues: Every problem, in the order found.

    Example:
        >>> report = validate_dataset("runs/data/shapes/data.yaml")
        >>> print(report.summary())  # doctest: +ELLIPSIS
        dataset runs/data/shapes/data.yaml ...
    """

    data_yaml: str
    root: Path | None = None
    names: dict[int, str] = field(default_factory=dict)
    splits: dict[str, SplitReport] = field(default_factory=dict)
    issues: list[Issue] = field(default_factory=list)

    def add(self, severity: str, file: str | Path, problem: str, line: int | None = None) -> None:
        """Record one issue."""
        self.issues.append(Issue(severity, str(file), problem, line))

    def of(self, severity: str) -> list[Issue]:
        """Issues of one severity."""
        return [i for i in self.issues if i.severity == severity]

    @property
    def errors(self) -> list[Issue]:
        """Fatal issues."""
        return self.of("error")

    @property
    def warnings(self) -> list[Issue]:
        """Issues that let the run go on (skipped or repaired files)."""
        return self.of("warning")

    @property
    def notes(self) -> list[Issue]:
        """Informational issues (background images)."""
        return self.of("note")

    @property
    def ok(self) -> bool:
        """True when there is no error."""
        return not self.errors

    def summary(self, limit: int = 20) -> str:
        """Readable report: split counts, then issues by severity (at most ``limit`` each, notes at most 5).

        Args:
            limit: Most errors and warnings listed; the rest are counted.

        Returns:
            Multi-line text.
        """
        head = f"dataset {self.data_yaml}"
        if self.root is not None:
            head += f" (root {self.root}, {len(self.names)} classes)"
        lines = [head, *(f"  {split.line()}" for split in self.splits.values())]
        for severity, cap in (("error", limit), ("warning", limit), ("note", min(limit, 5))):
            items = self.of(severity)
            if items:
                lines.append(f"{severity}s ({len(items)}):")
                lines += [f"  {item}" for item in items[:cap]]
                if len(items) > cap:
                    lines.append(f"  ... and {len(items) - cap} more {severity}s")
        counts = ", ".join(f"{len(self.of(s))} {s}s" for s in SEVERITIES)
        verdict = "OK" if self.ok else "NOT USABLE: fix the errors above"
        lines.append(f"result: {verdict} ({counts})")
        return "\n".join(lines)

    def raise_if_errors(self, limit: int = 20) -> DatasetReport:
        """Raise :class:`DatasetError` with the summary when there is an error; return ``self`` otherwise."""
        if not self.ok:
            raise DatasetError(self.summary(limit))
        return self


def resolve_data_yaml(data: str | Path) -> Path:
    """Find a dataset YAML: an existing file, a folder holding ``data.yaml``, or a built-in name (``coco``).

    Args:
        data: Path or built-in name (with or without ``.yaml``).

    Returns:
        The YAML file.

    Raises:
        DatasetError: Nothing found; the message lists the places tried and the built-in YAMLs.

    Example:
        >>> resolve_data_yaml("coco").name
        'coco.yaml'
    """
    path = Path(data)
    if path.is_file():
        return path
    if path.is_dir():
        for name in ("data.yaml", "data.yml"):
            if (path / name).is_file():
                return path / name
        raise DatasetError(f"dataset folder {path} has no data.yaml")
    tried = [path]
    for candidate in (DATASETS_DIR / path.name, DATASETS_DIR / f"{path.name}.yaml"):
        tried.append(candidate)
        if candidate.is_file():
            return candidate
    builtins = ", ".join(sorted(p.name for p in DATASETS_DIR.glob("*.yaml")))
    raise DatasetError(
        f"dataset YAML '{data}' not found (tried {', '.join(str(t) for t in tried)}); built-in YAMLs: {builtins}"
    )


def ultralytics_datasets_dir() -> Path:
    """Ultralytics' ``datasets_dir`` setting, where relative dataset roots are looked up and downloads go."""
    from ultralytics.utils import DATASETS_DIR as ULTRALYTICS_DATASETS_DIR

    return Path(ULTRALYTICS_DATASETS_DIR)


def dataset_root(data: dict[str, Any], yaml_file: Path) -> Path:
    """The dataset root as Ultralytics resolves it.

    ``path`` (or the YAML's folder when ``path`` is absent); a relative ``path`` that does not exist from the
    current directory is taken inside Ultralytics' ``datasets_dir``.

    Args:
        data: Parsed YAML.
        yaml_file: Where the YAML is.

    Returns:
        The root folder (which may not exist).

    Example:
        >>> dataset_root({"path": "coco"}, Path("coco.yaml"))  # doctest: +SKIP
        PosixPath('/home/me/datasets/coco')
    """
    root = Path(data.get("path") or yaml_file.parent)
    if not root.exists() and not root.is_absolute():
        root = (ultralytics_datasets_dir() / root).resolve()
    return root


def split_sources(root: Path, value: str | list[str]) -> list[Path]:
    """Resolve a split entry (a folder, a ``.txt`` list of images, or a list of those) against the root.

    Args:
        root: Dataset root.
        value: The YAML value of ``train``/``val``/``test``.

    Returns:
        Absolute paths, in YAML order.

    Example:
        >>> split_sources(Path("/data/coco"), "val2017.txt")
        [PosixPath('/data/coco/val2017.txt')]
    """
    if isinstance(value, (list, tuple)):
        return [(root / str(v)).resolve() for v in value]
    path = (root / str(value)).resolve()
    if not path.exists() and str(value).startswith("../"):  # Ultralytics' fallback for "../images/x"
        path = (root / str(value)[3:]).resolve()
    return [path]


def _image_suffixes() -> set[str]:
    from ultralytics.data.utils import IMG_FORMATS

    return {s.lower() for s in IMG_FORMATS}


def split_image_files(root: Path, value: str | list[str]) -> list[Path]:
    """Image files of a split, sorted, as Ultralytics lists them.

    A folder is searched recursively; a ``.txt`` file lists one image per line (``./x`` is relative to the text
    file's folder). Only known image suffixes count.

    Args:
        root: Dataset root.
        value: The YAML value of the split.

    Returns:
        Sorted image paths.

    Raises:
        FileNotFoundError: A source path does not exist.

    Example:
        >>> len(split_image_files(Path("runs/data/shapes"), "images/val"))
        100
    """
    suffixes, files = _image_suffixes(), []
    for source in split_sources(root, value):
        if source.is_dir():
            files += [p for p in source.rglob("*.*") if p.is_file()]
        elif source.is_file():
            for raw in source.read_text(encoding="utf-8-sig").splitlines():
                entry = raw.strip()
                if entry:
                    files.append(source.parent / entry[2:] if entry.startswith("./") else Path(entry))
        else:
            raise FileNotFoundError(f"{source} does not exist")
    return sorted((f for f in files if f.suffix[1:].lower() in suffixes), key=str)


def expected_layout(root: Path, data: dict[str, Any], split: str) -> str:
    """Text describing where a split's images and labels should be.

    Args:
        root: Dataset root.
        data: Parsed YAML.
        split: Split name.

    Returns:
        Indented lines.

    Example:
        >>> print(expected_layout(Path("/data/shapes"), {"val": "images/val"}, "val"))
          /data/shapes/images/val/  (image files: .jpg, .png, ...)
          /data/shapes/labels/val/  (one .txt per image: class cx cy w h, all 0-1)
    """
    lines = []
    for source in split_sources(root, data[split]):
        if source.suffix == ".txt":
            folder = root / "images" / source.stem
            lines.append(f"  {source}  (text file, one image path per line; ./ means next to this file)")
        else:
            folder = source
            lines.append(f"  {source}/  (image files: .jpg, .png, ...)")
        lines.append(f"  {label_file_for(folder / 'x.jpg').parent}/  (one .txt per image: class cx cy w h, all 0-1)")
        if source.suffix == ".txt":
            lines.append(f"  {folder}/  (the images the list points to)")
    return "\n".join(lines)


def _download_hint(data: dict[str, Any], yaml_file: Path) -> str:
    if not data.get("download"):
        return ""
    return (
        f"\nThis YAML has a download recipe: with internet access run `yolo-lat data download data={yaml_file}` "
        f"(or put the files at the paths above by hand). Offline, nothing is downloaded."
    )


def normalise_names(data: dict[str, Any]) -> dict[int, str]:
    """Class names as ``{id: name}`` from ``names`` (list or mapping) and/or ``nc``.

    Raises:
        ValueError: ``names`` is malformed, ids are not ``0..n-1``, or ``names`` and ``nc`` disagree.

    Example:
        >>> normalise_names({"names": ["circle", "square"]})
        {0: 'circle', 1: 'square'}
    """
    names, nc = data.get("names"), data.get("nc")
    if names is None:
        if not isinstance(nc, int) or isinstance(nc, bool) or nc < 1:
            raise ValueError(f"'nc: {nc}' must be a positive integer")
        return {i: f"class_{i}" for i in range(nc)}
    if isinstance(names, (list, tuple)):
        mapping = dict(enumerate(names))
    elif isinstance(names, dict):
        try:
            mapping = {int(k): v for k, v in names.items()}
        except (TypeError, ValueError):
            raise ValueError(f"'names' keys must be class ids 0..n-1, got {list(names)[:5]}") from None
    else:
        raise ValueError(f"'names' must be a list or a mapping of class id to name, not {type(names).__name__}")
    if not mapping:
        raise ValueError("'names' is empty")
    if sorted(mapping) != list(range(len(mapping))):
        raise ValueError(f"'names' ids must be 0..{len(mapping) - 1} without gaps, got {sorted(mapping)[:10]}")
    if nc is not None and nc != len(mapping):
        raise ValueError(f"'names' has {len(mapping)} classes but 'nc: {nc}'")
    return {k: str(mapping[k]) for k in sorted(mapping)}


def _read_yaml(report: DatasetReport, data: str | Path) -> tuple[dict[str, Any], Path] | None:
    """Find and parse the YAML and check its keys; records errors in ``report`` and returns None on failure."""
    try:
        yaml_file = resolve_data_yaml(data)
    except DatasetError as err:
        report.add("error", data, str(err))
        return None
    report.data_yaml = str(yaml_file)
    try:
        parsed = yaml.safe_load(yaml_file.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        report.add(
            "error", yaml_file, f"not valid YAML: {getattr(err, 'problem', err)}", mark.line + 1 if mark else None
        )
        return None
    except (OSError, UnicodeDecodeError) as err:
        report.add("error", yaml_file, f"cannot be read: {err}")
        return None
    if not isinstance(parsed, dict):
        report.add("error", yaml_file, f"must be a mapping with keys {', '.join(REQUIRED_KEYS)}")
        return None
    if "val" not in parsed and "validation" in parsed:  # Ultralytics renames this key too
        parsed["val"] = parsed.pop("validation")
        report.add("note", yaml_file, "key 'validation:' read as 'val:'")
    for key in ("train", "val"):
        if not parsed.get(key):
            report.add("error", yaml_file, f"missing key '{key}:' (required: train, val, and names or nc)")
    if parsed.get("names") is None and "nc" not in parsed:
        report.add("error", yaml_file, "missing key 'names:' (or 'nc:'): the class names, e.g. names: [cat, dog]")
    else:
        try:
            report.names = normalise_names(parsed)
        except ValueError as err:
            report.add("error", yaml_file, str(err))
    if report.errors:
        return None
    return parsed, yaml_file


def load_data_yaml(data: str | Path) -> tuple[dict[str, Any], Path]:
    """Parse a dataset YAML, check its keys and resolve its root (no file listing, no downloads).

    Args:
        data: YAML path, dataset folder or built-in name.

    Returns:
        ``(data, root)``: the parsed YAML with ``names`` as ``{id: name}``, and the resolved root.

    Raises:
        DatasetError: The YAML cannot be found or read, or a required key is missing.

    Example:
        >>> data, root = load_data_yaml("runs/data/shapes/data.yaml")
        >>> data["names"][0]
        'circle'
    """
    report = DatasetReport(str(data))
    found = _read_yaml(report, data)
    if found is None:
        report.raise_if_errors()
    parsed, yaml_file = found
    parsed["names"] = report.names
    return parsed, dataset_root(parsed, yaml_file)


def _pil_open():
    """PIL's own ``Image.open``.

    Importing Ultralytics replaces ``PIL.Image.open`` with a wrapper that, for a file PIL cannot identify, runs
    ``check_requirements("pi-heif")`` (a ``pip install`` when online) and then fails with "No module named
    'pi_heif'", which hides the real problem. Ultralytics keeps the original as ``patches._image_open``.
    """
    from PIL import Image

    return getattr(sys.modules.get("ultralytics.utils.patches"), "_image_open", Image.open)


def check_image_file(file: Path, decode: bool = True) -> tuple[str, str] | None:
    """Check one image the way Ultralytics will read it.

    Args:
        file: Image path.
        decode: Also decode all pixels (finds truncated files that the header check misses).

    Returns:
        None when fine, else ``(kind, problem)`` with ``kind`` ``corrupt`` (Ultralytics skips the image) or
        ``damaged`` (Ultralytics repairs and keeps it).

    Example:
        >>> check_image_file(Path("bus.jpg")) is None
        True
    """
    open_image = _pil_open()
    try:
        with open_image(file) as im:
            im.verify()
            width, height, fmt = im.size[0], im.size[1], (im.format or "").lower()
    except Exception as err:  # PIL raises many types for unreadable files
        return "corrupt", f"corrupt image, skipped: cannot be read ({type(err).__name__}: {err})"
    if min(width, height) < _MIN_IMAGE_SIDE:
        return "corrupt", f"image is {width}x{height} pixels, under the {_MIN_IMAGE_SIDE}-pixel minimum: skipped"
    if fmt not in _image_suffixes() | {"jpeg2000"}:
        return "corrupt", f"unsupported image format {fmt!r}: skipped"
    if fmt in ("jpeg", "jpg"):
        with open(file, "rb") as handle:
            handle.seek(-2, os.SEEK_END)
            ends_well = handle.read() == b"\xff\xd9"
        if not ends_well:  # Ultralytics decodes such a file and re-saves it; a decode failure means it is skipped
            try:
                with open_image(file) as im:
                    im.load()
            except Exception as err:
                return "corrupt", f"corrupt image, skipped: truncated JPEG ({err})"
            return "damaged", "JPEG does not end with an end-of-image marker: Ultralytics re-saves it (file rewritten)"
    if decode:
        try:
            with open_image(file) as im:
                im.load()
        except Exception as err:
            return "corrupt", f"corrupt image, skipped: pixel data cannot be decoded ({type(err).__name__}: {err})"
    return None


def check_label_file(file: Path, nc: int) -> tuple[list[tuple[str, int, str]], int, Counter]:
    """Check one YOLO label file row by row.

    Args:
        file: The ``.txt`` file (must exist).
        nc: Number of classes.

    Returns:
        ``(problems, rows, per_class)``: problems as ``(severity, line, text)``, the number of object rows, and
        boxes per class of the rows without errors.

    Example:
        >>> check_label_file(Path("labels/val/000001.txt"), nc=6)[0]
        []
    """
    problems: list[tuple[str, int, str]] = []
    per_class: Counter = Counter()
    seen: dict[tuple[str, ...], int] = {}
    rows = 0
    try:
        text = file.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as err:
        return [("error", 0, f"label file cannot be read: {err}")], 0, per_class
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
        row = tuple(words)
        if row in seen:
            problems.append(("warning", number, f"duplicate of line {seen[row]}: Ultralytics drops the copy"))
            continue
        seen[row] = number
        row_problems = _row_problems(values, nc)
        problems += [(severity, number, text) for severity, text in row_problems]
        if not any(severity == "error" for severity, _ in row_problems):
            per_class[int(values[0])] += 1
    return problems, rows, per_class


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
    outside = [v for v in coords if v < -_TOLERANCE or v > 1 + _TOLERANCE]
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
        elif min(cx - w / 2, cy - h / 2) < -_TOLERANCE or max(cx + w / 2, cy + h / 2) > 1 + _TOLERANCE:
            out.append(("warning", "box reaches outside the image: Ultralytics clips it"))
    return out


def validate_dataset(
    data: str | Path,
    splits: tuple[str, ...] | list[str] = ("train", "val"),
    decode_images: bool = True,
    max_images: int | None = None,
) -> DatasetReport:
    """Check a dataset YAML and the images and labels of its splits; never raises for dataset problems.

    Args:
        data: YAML path, dataset folder (holding ``data.yaml``) or built-in name such as ``coco``.
        splits: Splits to check; ``train`` and ``val`` must exist in every YAML, others (``test``) are checked
            when present.
        decode_images: Decode every image fully (slower; finds truncated pixel data).
        max_images: Check at most this many images per split (the first in sorted order); labels of those only.

    Returns:
        A :class:`DatasetReport`; ``report.ok`` is False when there is a fatal problem.

    Example:
        >>> report = validate_dataset("runs/data/shapes")
        >>> report.ok, [str(i) for i in report.errors]
        (True, [])
    """
    report = DatasetReport(str(data))
    found = _read_yaml(report, data)
    if found is None:
        return report
    parsed, yaml_file = found
    root = report.root = dataset_root(parsed, yaml_file)
    nc = len(report.names)
    hint = _download_hint(parsed, yaml_file)
    if parsed.get("path") and not root.exists():
        layouts = "\n".join(expected_layout(root, parsed, s) for s in ("train", "val"))
        report.add(
            "error",
            yaml_file,
            f"dataset root 'path: {parsed['path']}' does not exist (looked for {root}). Expected:\n{layouts}{hint}",
        )
        return report
    for split in splits:
        if not parsed.get(split):
            continue
        summary = report.splits[split] = SplitReport(split, [str(s) for s in split_sources(root, parsed[split])])
        missing = [s for s in split_sources(root, parsed[split]) if not s.exists()]
        if missing:
            report.add(
                "error",
                yaml_file,
                f"{split} path {missing[0]} does not exist. Expected:\n{expected_layout(root, parsed, split)}{hint}",
            )
            continue
        images = split_image_files(root, parsed[split])
        if max_images:
            images = images[:max_images]
        summary.images = len(images)
        if not images:
            report.add("error", yaml_file, f"{split}: no images (.jpg, .png, ...) in {', '.join(summary.sources)}")
            continue
        _check_split(report, summary, images, nc, decode_images)
        if summary.label_files == 0:
            report.add(
                "error",
                yaml_file,
                f"{split}: none of the {summary.images} images has a label file; expected for example "
                f"{label_file_for(images[0])}",
            )
    return report


def _check_split(report: DatasetReport, summary: SplitReport, images: list[Path], nc: int, decode: bool) -> None:
    """Check every image and label file of one split, adding issues and counts."""
    for image in images:
        if not image.is_file():
            summary.corrupt_images += 1
            report.add("warning", image, "listed image does not exist: skipped")
            continue
        image_problem = check_image_file(image, decode=decode)
        if image_problem:
            kind, problem = image_problem
            report.add("warning", image, problem)
            if kind == "corrupt":
                summary.corrupt_images += 1
                continue
            summary.damaged_images += 1
        label = label_file_for(image)
        if not label.is_file():
            summary.missing_labels += 1
            report.add("note", image, f"no label file ({label}): used as a background image")
            continue
        summary.label_files += 1
        problems, rows, per_class = check_label_file(label, nc)
        if rows == 0:
            summary.empty_labels += 1
            report.add("note", label, "empty label file: used as a background image (no objects)")
        for severity, line, text in problems:
            report.add(severity, label, text, line or None)
        if any(severity == "error" for severity, _, _ in problems):
            summary.bad_label_files += 1
        else:
            summary.instances += sum(per_class.values())
            summary.per_class.update(per_class)
