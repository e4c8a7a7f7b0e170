"""Dataset validation before training or validation: every problem names the file (and line) and says what is wrong.

``validate_dataset(data_yaml)`` reads a YOLO data YAML with the keys, types and root and split path resolution of
Ultralytics 8.4's ``check_det_dataset`` (which it does not call: that stops at the first problem and looks up a
font online), without downloading anything. Then every image and label file of the requested splits, and only
those, goes through Ultralytics' own verification (:mod:`yolo_lat.datasets.verify`): what it would drop is
reported by file and line instead of being dropped quietly. It never raises for a problem in the dataset; it
returns a :class:`DatasetReport`, whose ``raise_if_errors()`` turns fatal problems into one :class:`DatasetError`.

Severity, and why:

- **error** (fatal: ``yolo-lat train``/``val`` refuse to start):
  the YAML is missing, unreadable or not a mapping; a required key is missing (``train``, ``val``, and ``names``
  or ``nc``) or has the wrong type; ``names`` and ``nc`` disagree; the dataset root or a split path does not
  exist (the message lists the expected layout and, when the YAML has a ``download:`` recipe, how to run it); a
  split has no images, or no label file at all; a label file Ultralytics rejects: a malformed row (not numbers,
  wrong column count), a class id that is not an integer in ``0..nc-1``, a box that is not normalised (a value
  outside 0-1 by more than Ultralytics' 0.01 tolerance, e.g. pixel coordinates) or has a negative size, or any
  other reason ``verify_image_label`` gives. Ultralytics silently drops every image whose label file has such a
  problem, so training would go on quietly with the wrong data.
- **warning** (the run goes on): a corrupt, truncated or unreadable image, or one under 10 pixels (Ultralytics
  skips it; we name it, say why and count it); a JPEG that decodes but lacks its end marker (Ultralytics
  rewrites the file in place); a zero-size box; a box reaching outside the image (Ultralytics clips it);
  duplicate label rows (Ultralytics drops the copies).
- **note**: an empty label file, or an image without a label file: a background image with no objects.

Example:
    >>> import tempfile
    >>> from yolo_lat.datasets.checks import validate_dataset
    >>> from yolo_lat.datasets.synth import generate
    >>> data_yaml = generate(tempfile.mkdtemp(), n_train=4, n_val=2, imgsz=64, seed=0, preview=False)
    >>> report = validate_dataset(data_yaml)
    >>> report.ok, report.splits["train"].images, report.splits["val"].images
    (True, 4, 2)
    >>> _ = (data_yaml.parent / "labels" / "val" / "000001.txt").write_text("7 0.5 0.5 0.2 0.2\\n")
    >>> report = validate_dataset(data_yaml, splits=["val"])
    >>> report.ok, report.errors[0].line, report.errors[0].problem
    (False, 1, 'class id 7 out of range: the YAML has 6 classes (ids 0-5)')
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from yolo_lat.datasets import DATASETS_DIR
from yolo_lat.datasets.layout import expected_layout, label_file_for, split_image_files, split_sources
from yolo_lat.datasets.verify import check_pair

__all__ = [  # split_image_files and split_sources are imported from here by other modules
    "DatasetError",
    "DatasetReport",
    "Issue",
    "SplitReport",
    "dataset_root",
    "load_data_yaml",
    "normalise_names",
    "resolve_data_yaml",
    "split_image_files",
    "split_sources",
    "ultralytics_datasets_dir",
    "validate_dataset",
]

SEVERITIES = ("error", "warning", "note")
REQUIRED_KEYS = ("train", "val", "names")


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
        >>> import tempfile
        >>> from yolo_lat.datasets.synth import generate
        >>> data_yaml = generate(tempfile.mkdtemp(), n_train=4, n_val=2, imgsz=64, seed=0, preview=False)
        >>> print(validate_dataset(data_yaml, splits=["val"]).summary())  # doctest: +ELLIPSIS
        dataset .../data.yaml (root ..., 6 classes)
          val: 2 images, 2 label files (0 empty), 0 without labels, 0 corrupt (skipped), 0 with bad labels, ... objects
        result: OK (0 errors, 0 warnings, 0 notes)
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
    """Find a dataset YAML: an existing file, a folder holding ``data.yaml``, or a built-in name.

    A bare name is looked up among yolo-lat's YAMLs (``coco``) first, then among Ultralytics' own (``coco8``)
    with its ``check_file``, which searches the installed package and downloads nothing when told not to.

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
    if len(path.parts) == 1:
        from ultralytics.utils.checks import check_file  # deferred: Ultralytics is heavy

        name = path.name if path.suffix in (".yaml", ".yml") else f"{path.name}.yaml"
        found = check_file(name, download=False, hard=False)
        if found and Path(found).parent.name == "datasets":  # not its model or tracker YAMLs
            return Path(found)
        tried.append(f"Ultralytics' dataset YAMLs ({name})")
    builtins = ", ".join(sorted(p.name for p in DATASETS_DIR.glob("*.yaml")))
    raise DatasetError(
        f"dataset YAML '{data}' not found (tried {', '.join(str(t) for t in tried)}); built-in YAMLs: {builtins}"
    )


def ultralytics_datasets_dir() -> Path:
    """Ultralytics' ``datasets_dir`` setting, where relative dataset roots are looked up and downloads go."""
    from ultralytics.utils import DATASETS_DIR as ULTRALYTICS_DATASETS_DIR  # deferred: Ultralytics is heavy

    return Path(ULTRALYTICS_DATASETS_DIR)


def dataset_root(data: dict[str, Any], yaml_file: Path) -> Path:
    """The dataset root as Ultralytics' ``check_det_dataset`` resolves it.

    ``path`` (or the YAML's folder when ``path`` is absent); a relative ``path`` that does not exist from the
    current directory is taken inside Ultralytics' ``datasets_dir``.

    Args:
        data: Parsed YAML.
        yaml_file: Where the YAML is.

    Returns:
        The root folder (which may not exist).

    Example:
        >>> dataset_root({}, Path("/data/shapes/data.yaml"))
        PosixPath('/data/shapes')
        >>> dataset_root({"path": "coco"}, Path("coco.yaml")) == (ultralytics_datasets_dir() / "coco").resolve()
        True
    """
    root = Path(data.get("path") or yaml_file.parent)
    if not root.exists() and not root.is_absolute():
        root = (ultralytics_datasets_dir() / root).resolve()
    return root


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
    from ultralytics.data.utils import DATASET_KEY_TYPES  # deferred: Ultralytics is heavy

    for key, types in DATASET_KEY_TYPES.items():  # the types check_det_dataset accepts, in its words
        if parsed.get(key) is not None and not isinstance(parsed[key], types):
            expected = " or ".join(t.__name__ for t in types)
            report.add("error", yaml_file, f"'{key}' must be {expected}, not {type(parsed[key]).__name__}")
    if report.errors:
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
        >>> import tempfile
        >>> data_yaml = Path(tempfile.mkdtemp()) / "data.yaml"
        >>> _ = data_yaml.write_text("train: images/train\\nval: images/val\\nnames: [circle, square]\\n")
        >>> data, root = load_data_yaml(data_yaml)
        >>> data["names"], root == data_yaml.parent
        ({0: 'circle', 1: 'square'}, True)
    """
    report = DatasetReport(str(data))
    found = _read_yaml(report, data)
    if found is None:
        report.raise_if_errors()
    parsed, yaml_file = found
    parsed["names"] = report.names
    return parsed, dataset_root(parsed, yaml_file)


def validate_dataset(
    data: str | Path,
    splits: tuple[str, ...] | list[str] = ("train", "val"),
    decode_images: bool = True,
    max_images: int | None = None,
) -> DatasetReport:
    """Check a dataset YAML and the images and labels of the given splits; never raises for dataset problems.

    Only the files of ``splits`` are listed and read (``splits=["val"]`` leaves the train images alone); the YAML
    itself must still have ``train`` and ``val`` keys, as Ultralytics requires of every data YAML.

    Args:
        data: YAML path, dataset folder (holding ``data.yaml``) or built-in name such as ``coco``.
        splits: Splits to check; ``train`` and ``val`` must exist in every YAML, others (``test``) are checked
            when present.
        decode_images: Decode every image fully (slower; finds truncated pixel data).
        max_images: Check at most this many images per split (the first in sorted order); labels of those only.

    Returns:
        A :class:`DatasetReport`; ``report.ok`` is False when there is a fatal problem.

    Example:
        >>> import tempfile
        >>> from yolo_lat.datasets.synth import generate
        >>> root = generate(tempfile.mkdtemp(), n_train=4, n_val=2, imgsz=64, seed=0, preview=False).parent
        >>> report = validate_dataset(root, splits=["val"])
        >>> report.ok, list(report.splits), report.splits["val"].images
        (True, ['val'], 2)
    """
    report = DatasetReport(str(data))
    found = _read_yaml(report, data)
    if found is None:
        return report
    parsed, yaml_file = found
    root = report.root = dataset_root(parsed, yaml_file)
    wanted = [split for split in splits if parsed.get(split)]
    hint = _download_hint(parsed, yaml_file)
    if parsed.get("path") and not root.exists():
        layouts = "\n".join(expected_layout(root, parsed, split) for split in wanted)
        report.add(
            "error",
            yaml_file,
            f"dataset root 'path: {parsed['path']}' does not exist (looked for {root}). Expected:\n{layouts}{hint}",
        )
        return report
    for split in wanted:
        sources = split_sources(root, parsed[split])
        summary = report.splits[split] = SplitReport(split, [str(s) for s in sources])
        missing = [s for s in sources if not s.exists()]
        if missing:
            report.add(
                "error",
                yaml_file,
                f"{split} path {missing[0]} does not exist. Expected:\n{expected_layout(root, parsed, split)}{hint}",
            )
            continue
        try:
            images = split_image_files(root, parsed[split])
        except (OSError, UnicodeDecodeError) as err:
            report.add("error", yaml_file, f"{split}: the image list cannot be read: {err}")
            continue
        images = images[:max_images] if max_images else images
        summary.images = len(images)
        if not images:
            report.add("error", yaml_file, f"{split}: no images (.jpg, .png, ...) in {', '.join(summary.sources)}")
            continue
        _check_split(report, summary, images, len(report.names), decode_images)
        if summary.label_files == 0:
            report.add(
                "error",
                yaml_file,
                f"{split}: none of the {summary.images} images has a label file; expected for example "
                f"{label_file_for(images[0])}",
            )
    return report


def _check_split(report: DatasetReport, summary: SplitReport, images: list[Path], nc: int, decode: bool) -> None:
    """Add the issues and counts of one split's images and label files (:func:`check_pair` on each)."""
    for image in images:
        pair = check_pair(image, nc, decode=decode)
        if pair.image_problem:
            kind, problem = pair.image_problem
            report.add("warning", image, problem)
            if kind == "corrupt":
                summary.corrupt_images += 1
                continue
            summary.damaged_images += 1
        if not pair.label_found:
            summary.missing_labels += 1
            report.add("note", image, f"no label file ({pair.label}): used as a background image")
            continue
        summary.label_files += 1
        if pair.rows == 0 and not pair.problems:
            summary.empty_labels += 1
            report.add("note", pair.label, "empty label file: used as a background image (no objects)")
        for severity, line, text in pair.problems:
            report.add(severity, pair.label, text, line or None)
        if pair.label_errors:
            summary.bad_label_files += 1
        else:
            summary.instances += sum(pair.per_class.values())
            summary.per_class.update(pair.per_class)
