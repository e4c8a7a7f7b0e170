"""Where the images and labels of a YOLO dataset split are, with Ultralytics' own rules.

The label of an image is found with Ultralytics' ``img2label_paths`` and only suffixes in its ``IMG_FORMATS`` count
as images. Two steps have no standalone Ultralytics function and follow its code in 8.4: a split entry is joined to
the dataset root as ``check_det_dataset`` does (which cannot be called for that alone: it stops at the first problem
and looks up a font online), and images are listed as ``BaseDataset.get_img_files`` does (a method of a dataset whose
construction already verifies every label).

Example:
    >>> from yolo_lat.datasets.layout import label_file_for
    >>> label_file_for("/data/shapes/images/val/000001.jpg").as_posix()
    '/data/shapes/labels/val/000001.txt'
"""

from __future__ import annotations

import glob
import os
from pathlib import Path
from typing import Any


def image_suffixes() -> set[str]:
    """Image suffixes Ultralytics reads (``IMG_FORMATS``), lower case without the dot.

    Example:
        >>> {"jpg", "png"} <= image_suffixes()
        True
    """
    from ultralytics.data.utils import IMG_FORMATS  # deferred: Ultralytics is heavy, yolo_lat.datasets works without

    return {s.lower() for s in IMG_FORMATS}


def label_file_for(image_file: str | Path) -> Path:
    """The YOLO label file of an image, by Ultralytics' ``img2label_paths``.

    The last ``/images/`` folder of the path becomes ``/labels/`` and the suffix ``.txt``; without an ``images``
    folder the label is expected next to the image.

    Args:
        image_file: Path of an image (absolute, as Ultralytics resolves split paths).

    Returns:
        Path of its label file (which may not exist).

    Example:
        >>> label_file_for("/data/shapes/images/val/000001.jpg").as_posix()
        '/data/shapes/labels/val/000001.txt'
        >>> label_file_for("/data/flat/000001.jpg").as_posix()
        '/data/flat/000001.txt'
    """
    from ultralytics.data.utils import img2label_paths  # deferred: Ultralytics is heavy

    return Path(img2label_paths([os.fspath(image_file)])[0])


def split_sources(root: Path, value: str | list[str]) -> list[Path]:
    """Resolve a split entry (a folder, a ``.txt`` list of images, or a list of those) against the root.

    As ``check_det_dataset``: each entry is joined to the root and resolved; a single entry ``../x`` that does not
    exist is tried as ``x``.

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
    if not path.exists() and str(value).startswith("../"):
        path = (root / str(value)[3:]).resolve()
    return [path]


def split_image_files(root: Path, value: str | list[str]) -> list[Path]:
    """Image files of a split, sorted, as Ultralytics' dataset lists them.

    A folder is searched recursively (hidden files skipped, as ``glob`` does); a ``.txt`` file lists one image per
    line, where a leading ``./`` means the text file's folder. Only :func:`image_suffixes` count. Nothing outside
    the given sources is read.

    Args:
        root: Dataset root.
        value: The YAML value of the split.

    Returns:
        Sorted image paths.

    Raises:
        FileNotFoundError: A source path does not exist.

    Example:
        >>> import tempfile
        >>> root = Path(tempfile.mkdtemp()).resolve()
        >>> for name in ("images/val/b.png", "images/val/a.jpg", "images/val/sub/c.jpg", "images/val/notes.txt"):
        ...     (root / name).parent.mkdir(parents=True, exist_ok=True)
        ...     (root / name).touch()
        >>> [f.relative_to(root).as_posix() for f in split_image_files(root, "images/val")]
        ['images/val/a.jpg', 'images/val/b.png', 'images/val/sub/c.jpg']
        >>> _ = (root / "val.txt").write_text("./images/val/b.png\\n")
        >>> [f.relative_to(root).as_posix() for f in split_image_files(root, "val.txt")]
        ['images/val/b.png']
    """
    suffixes, files = image_suffixes(), []
    for source in split_sources(root, value):
        if source.is_dir():
            files += glob.glob(os.path.join(glob.escape(str(source)), "**", "*.*"), recursive=True)
        elif source.is_file():
            parent = str(source.parent) + os.sep
            entries = source.read_text(encoding="utf-8-sig").strip().splitlines()
            files += [e.replace("./", parent, 1) if e.startswith("./") else e for e in entries]
        else:
            raise FileNotFoundError(f"{source} does not exist")
    return [Path(f) for f in sorted(f for f in files if f.rpartition(".")[-1].lower() in suffixes)]


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
