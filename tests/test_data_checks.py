"""Dataset validation: each bad case gives a message naming the file and the problem, with the right severity.

Also pins what Ultralytics 8.4 itself does with the same bad files (it skips, it does not crash).
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from yolo_lat.args import ArgumentError
from yolo_lat.datasets import checks
from yolo_lat.datasets import cli as data_cli
from yolo_lat.datasets.checks import DatasetError, load_data_yaml, resolve_data_yaml, validate_dataset
from yolo_lat.datasets.download import download_dataset
from yolo_lat.datasets.synth import generate


@pytest.fixture
def dataset(tmp_path) -> Path:
    """A clean 4 + 4 image dataset; every image has at least one object (no clutter, no empty images)."""
    return generate(tmp_path / "ds", n_train=4, n_val=4, imgsz=64, seed=1, empty_fraction=0, clutter=0, preview=False)


def _edit_yaml(data_yaml: Path, **changes) -> Path:
    data = yaml.safe_load(data_yaml.read_text())
    for key, value in changes.items():
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
    data_yaml.write_text(yaml.safe_dump(data))
    return data_yaml


def _messages(report, severity: str) -> list[str]:
    return [str(issue) for issue in report.of(severity)]


def test_clean_dataset_passes_with_counts(dataset):
    report = validate_dataset(dataset)
    assert report.ok and not report.warnings and not report.notes, report.summary()
    rows = sum(len(p.read_text().splitlines()) for p in (dataset.parent / "labels" / "val").glob("*.txt"))
    val = report.splits["val"]
    assert (val.images, val.label_files, val.empty_labels, val.corrupt_images) == (4, 4, 0, 0)
    assert val.instances == rows == sum(val.per_class.values()) and rows >= 4
    assert report.names[0] == "circle" and report.root == dataset.parent
    assert "result: OK (0 errors, 0 warnings, 0 notes)" in report.summary()
    # a dataset folder resolves to its data.yaml; a built-in name to the shipped YAML
    assert resolve_data_yaml(dataset.parent) == dataset
    assert resolve_data_yaml("coco").name == "coco.yaml"


@pytest.mark.parametrize(
    ("remove", "expected"),
    [
        ("names", "missing key 'names:' (or 'nc:'): the class names, e.g. names: [cat, dog]"),
        ("val", "missing key 'val:' (required: train, val, and names or nc)"),
        ("train", "missing key 'train:' (required: train, val, and names or nc)"),
    ],
)
def test_missing_key_names_the_key_and_file(dataset, remove, expected, capsys):
    _edit_yaml(dataset, **{remove: None})
    report = validate_dataset(dataset)
    assert _messages(report, "error") == [f"error: {dataset}: {expected}"]
    assert data_cli.main(["check", f"data={dataset}"]) == 2
    printed = capsys.readouterr().out
    assert f"error: {dataset}: {expected}" in printed and "NOT USABLE" in printed
    with pytest.raises(DatasetError, match="missing key"):
        load_data_yaml(dataset)


def test_names_nc_mismatch_and_bad_yaml(dataset, tmp_path):
    _edit_yaml(dataset, nc=3)
    report = validate_dataset(dataset)
    assert _messages(report, "error") == [f"error: {dataset}: 'names' has 6 classes but 'nc: 3'"]
    broken = tmp_path / "broken.yaml"
    broken.write_text("path: x\ntrain: [a\n")
    report = validate_dataset(broken)
    assert not report.ok and report.errors[0].file == str(broken) and "not valid YAML" in report.errors[0].problem
    assert report.errors[0].line == 3  # the YAML parser points past the unclosed list
    report = validate_dataset(tmp_path / "nowhere.yaml")
    assert not report.ok and "dataset YAML" in report.errors[0].problem and "not found" in report.errors[0].problem


def test_missing_split_path_lists_expected_layout(dataset):
    _edit_yaml(dataset, val="images/validation")
    report = validate_dataset(dataset)
    (error,) = report.errors
    root = dataset.parent
    assert error.file == str(dataset)
    assert f"val path {root / 'images' / 'validation'} does not exist" in error.problem
    assert f"{root / 'labels' / 'validation'}/  (one .txt per image: class cx cy w h, all 0-1)" in error.problem
    assert report.splits["train"].images == 4  # the other split is still checked
    _edit_yaml(dataset, path=str(root / "moved"))
    (error,) = validate_dataset(dataset).errors
    assert f"dataset root 'path: {root / 'moved'}' does not exist" in error.problem


def test_coco_yaml_offline_gives_expected_paths_and_download_hint(monkeypatch, tmp_path):
    monkeypatch.setattr(checks, "ultralytics_datasets_dir", lambda: tmp_path / "datasets")
    report = validate_dataset("coco")
    (error,) = report.errors
    assert error.file.endswith("coco.yaml") and report.names[79] == "toothbrush"
    root = tmp_path / "datasets" / "coco"
    for expected in (root / "val2017.txt", root / "images" / "val2017", root / "labels" / "train2017"):
        assert str(expected) in error.problem
    assert "yolo-lat data download data=" in error.problem
    monkeypatch.setenv("YOLO_OFFLINE", "1")
    with pytest.raises(DatasetError, match="YOLO_OFFLINE is set, so nothing is downloaded"):
        download_dataset("coco")
    assert not root.exists()


def test_download_runs_a_python_recipe(dataset, monkeypatch):
    root = dataset.parent
    recipe = (
        "import shutil\n"
        "from pathlib import Path\n"
        "root = Path(yaml['path'])\n"
        "shutil.copytree(root / 'images' / 'val', root / 'images' / 'fetched')\n"
        "shutil.copytree(root / 'labels' / 'val', root / 'labels' / 'fetched')\n"
    )
    _edit_yaml(dataset, val="images/fetched", download=recipe)
    assert not validate_dataset(dataset).ok
    monkeypatch.delenv("YOLO_OFFLINE", raising=False)
    assert download_dataset(dataset) == root
    assert validate_dataset(dataset).ok
    _edit_yaml(dataset, val="images/other", download=None)
    with pytest.raises(DatasetError, match="no 'download:' recipe"):
        download_dataset(dataset)


def test_corrupt_and_truncated_images_are_skipped_and_counted(dataset):
    val = dataset.parent / "images" / "val"
    (val / "000002.jpg").write_bytes(b"this is not a jpeg")
    data = (val / "000003.jpg").read_bytes()
    (val / "000003.jpg").write_bytes(data[: len(data) // 2])  # cut in half
    (val / "000004.jpg").write_bytes((val / "000004.jpg").read_bytes() + b"trailing bytes")  # decodes fine
    report = validate_dataset(dataset)
    assert report.ok  # warnings only: the run goes on without the bad images
    warnings = _messages(report, "warning")
    assert len(warnings) == 3
    assert warnings[0].startswith(f"warning: {val / '000002.jpg'}: corrupt image, skipped: cannot be read")
    assert "UnidentifiedImageError: cannot identify image file" in warnings[0]  # not Ultralytics' pi_heif error
    assert warnings[1].startswith(f"warning: {val / '000003.jpg'}: corrupt image, skipped: truncated JPEG (image file")
    rewritten = "JPEG does not end with an end-of-image marker: Ultralytics re-saves it (file rewritten)"
    assert warnings[2] == f"warning: {val / '000004.jpg'}: {rewritten}"
    split = report.splits["val"]
    assert (split.images, split.corrupt_images, split.damaged_images, split.label_files) == (4, 2, 1, 2)
    assert "2 corrupt (skipped)" in report.summary()


def test_bad_label_rows_name_file_line_and_problem(dataset):
    labels = dataset.parent / "labels" / "val"
    first = labels / "000001.txt"
    good = first.read_text().splitlines()[0]
    first.write_text(f"{good}\n9 0.5 0.5 0.1 0.1\n")  # class out of range
    second = labels / "000002.txt"
    second.write_text("0 120 80 30 30\n1 0.5 0.5\n2.5 0.5 0.5 0.1 0.1\n3 0.5 0.5 -0.2 0.1\n")
    (labels / "000003.txt").write_text(f"{good}\n{good}\n4 0.98 0.5 0.1 0.1\n5 0.5 0.5 0 0.1\n")
    (labels / "000004.txt").write_text("")
    report = validate_dataset(dataset)
    assert not report.ok
    assert _messages(report, "error") == [
        f"error: {first}:2: class id 9 out of range: the YAML has 6 classes (ids 0-5)",
        f"error: {second}:1: box not normalised: 120, 80, 30, 30 outside 0-1 (pixel coordinates?); "
        "coordinates are fractions of the image",
        f"error: {second}:2: 3 values; expected 5 (class cx cy w h) or a polygon (class x1 y1 x2 y2 ...)",
        f"error: {second}:3: class id 2.5 is not an integer",
        f"error: {second}:4: box not normalised: -0.2 outside 0-1; coordinates are fractions of the image",
    ]
    assert _messages(report, "warning") == [
        f"warning: {labels / '000003.txt'}:2: duplicate of line 1: Ultralytics drops the copy",
        f"warning: {labels / '000003.txt'}:3: box reaches outside the image: Ultralytics clips it",
        f"warning: {labels / '000003.txt'}:4: zero-size box w=0 h=0.1: it cannot be matched by any prediction",
    ]
    assert _messages(report, "note") == [
        f"note: {labels / '000004.txt'}: empty label file: used as a background image (no objects)"
    ]
    split = report.splits["val"]
    assert (split.bad_label_files, split.empty_labels, split.label_files) == (2, 1, 4)
    with pytest.raises(DatasetError, match="class id 9 out of range"):
        report.raise_if_errors()


def test_empty_label_file_is_a_note_not_an_error(dataset):
    empty = dataset.parent / "labels" / "train" / "000001.txt"
    empty.write_text("")
    (dataset.parent / "labels" / "train" / "000002.txt").unlink()
    report = validate_dataset(dataset)
    assert report.ok and not report.warnings
    assert _messages(report, "note") == [
        f"note: {empty}: empty label file: used as a background image (no objects)",
        f"note: {dataset.parent / 'images' / 'train' / '000002.jpg'}: no label file "
        f"({dataset.parent / 'labels' / 'train' / '000002.txt'}): used as a background image",
    ]
    assert (report.splits["train"].empty_labels, report.splits["train"].missing_labels) == (1, 1)


def test_no_label_folder_at_all_is_fatal(dataset):
    import shutil

    shutil.rmtree(dataset.parent / "labels" / "val")
    report = validate_dataset(dataset)
    assert not report.ok
    assert report.errors[0].problem.startswith("val: none of the 4 images has a label file; expected for example")


def test_check_cli_arguments(dataset, capsys):
    assert data_cli.main(["check", "--help"]) == 0
    assert "max_images=0" in capsys.readouterr().out
    with pytest.raises(ArgumentError, match="data= is required"):
        data_cli.main(["check"])
    with pytest.raises(ArgumentError, match=r"unknown argument 'dat'.*'data'"):
        data_cli.main(["check", f"dat={dataset}"])
    assert data_cli.main(["check", f"data={dataset}", "splits=val", "max_images=2", "decode=False"]) == 0
    printed = capsys.readouterr().out
    assert "val: 2 images" in printed and "train:" not in printed


@pytest.mark.slow
def test_check_subprocess_exit_status_and_message(dataset):
    (dataset.parent / "labels" / "val" / "000001.txt").write_text("7 0.5 0.5 0.2 0.2\n")
    env = {**os.environ, "YOLO_OFFLINE": "1"}
    run = subprocess.run(
        [sys.executable, "-m", "yolo_lat.datasets.cli", "check", f"data={dataset}"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert run.returncode == 2, run.stderr
    assert f"{dataset.parent / 'labels' / 'val' / '000001.txt'}:1: class id 7 out of range" in run.stdout


def test_ultralytics_skips_corrupt_images_and_bad_labels_without_crashing(dataset):
    """What Ultralytics 8.4.190 itself does with the bad cases (the facts our severities are built on)."""
    from ultralytics.data.dataset import YOLODataset

    root = dataset.parent
    (root / "images" / "val" / "000002.jpg").write_bytes(b"garbage")
    (root / "labels" / "val" / "000003.txt").write_text("9 0.5 0.5 0.2 0.2\n")  # class out of range
    (root / "labels" / "val" / "000004.txt").write_text("0 30 30 10 10\n")  # pixel coordinates
    train = root / "images" / "train"
    (train / "000001.jpg").write_bytes((train / "000001.jpg").read_bytes()[:-300])  # truncated
    (train / "000002.jpg").write_bytes((train / "000002.jpg").read_bytes() + b"junk")  # no end marker, decodes
    data = {"names": dict(enumerate("abcdef")), "nc": 6, "channels": 3}
    built = YOLODataset(img_path=str(root / "images" / "val"), data=data, imgsz=64, augment=False, batch_size=2)
    assert [Path(f).name for f in built.im_files] == ["000001.jpg"]  # three of four images dropped whole
    built = YOLODataset(img_path=str(train), data=data, imgsz=64, augment=False, batch_size=2)
    assert [Path(f).name for f in built.im_files] == ["000002.jpg", "000003.jpg", "000004.jpg"]  # truncated: dropped
    assert (train / "000002.jpg").read_bytes()[-2:] == b"\xff\xd9"  # the other one was rewritten in place


def test_val_only_check_leaves_the_train_split_alone(dataset):
    """``splits=["val"]`` (what ``yolo-lat val`` checks) neither lists nor reads a train image or label."""
    root = dataset.parent
    (root / "labels" / "train" / "000001.txt").write_text("9 0.5 0.5 0.2 0.2\n")  # fatal if it were read
    (root / "images" / "train" / "000002.jpg").write_bytes(b"garbage")
    full = validate_dataset(dataset)
    assert not full.ok and any("class id 9" in i.problem for i in full.errors)
    report = validate_dataset(dataset, splits=["val"])
    assert report.ok and list(report.splits) == ["val"] and report.splits["val"].images == 4
    assert not [i for i in report.issues if "train" in i.file or "train" in i.problem]
    import shutil

    shutil.rmtree(root / "images" / "train")  # no train images at all: a val-only check does not notice
    assert validate_dataset(dataset, splits=["val"]).ok
    (error,) = validate_dataset(dataset, splits=["train"]).errors
    assert f"train path {root / 'images' / 'train'} does not exist" in error.problem
    assert "images/val" not in error.problem  # the expected layout shown is that of the split checked
    _edit_yaml(dataset, path=str(root / "moved"))
    (error,) = validate_dataset(dataset, splits=["val"]).errors
    assert str(root / "moved" / "images" / "val") in error.problem and "train" not in error.problem


def test_ultralytics_verdict_is_reported_when_no_row_explains_it(dataset):
    """A label file Ultralytics' verify_image_label rejects as a whole (box and polygon rows mixed): its message."""
    label = dataset.parent / "labels" / "val" / "000001.txt"
    label.write_text("0 0.5 0.5 0.2 0.2\n1 0.1 0.1 0.3 0.1 0.3 0.3 0.1 0.3\n")  # each row valid on its own
    report = validate_dataset(dataset, splits=["val"])
    assert _messages(report, "error") == [
        f"error: {label}: Ultralytics drops this image and its labels: labels mix segment and detection rows"
    ]
    assert report.splits["val"].bad_label_files == 1
    # rows equal as numbers are duplicates for Ultralytics, however they are written
    label.write_text("0 0.5 0.5 0.2 0.2\n0 0.50 0.5000 0.2 0.2\n")
    report = validate_dataset(dataset, splits=["val"])
    assert report.ok and _messages(report, "warning") == [
        f"warning: {label}:2: duplicate of line 1: Ultralytics drops the copy"
    ]
    assert report.splits["val"].per_class[0] >= 1


def test_checking_never_modifies_images_and_reuses_ultralytics_image_messages(dataset):
    from PIL import Image

    val = dataset.parent / "images" / "val"
    damaged = (val / "000001.jpg").read_bytes() + b"trailing bytes"  # Ultralytics would rewrite this file
    (val / "000001.jpg").write_bytes(damaged)
    Image.new("RGB", (8, 12)).save(val / "000002.png")  # under Ultralytics' 10-pixel minimum
    report = validate_dataset(dataset, splits=["val"])
    assert (val / "000001.jpg").read_bytes() == damaged  # checked as a copy
    assert _messages(report, "warning")[1] == f"warning: {val / '000002.png'}: corrupt image, skipped: " + (
        "image size (12, 8) <10 pixels"
    )
    assert (report.splits["val"].images, report.splits["val"].damaged_images) == (5, 1)


def test_yaml_key_types_and_ultralytics_own_yamls(dataset):
    _edit_yaml(dataset, train=5, names="circle")
    report = validate_dataset(dataset)
    assert _messages(report, "error") == [
        f"error: {dataset}: 'train' must be str or list, not int",
        f"error: {dataset}: 'names' must be list or dict, not str",
    ]
    found = resolve_data_yaml("coco8")  # not one of ours: Ultralytics' shipped YAML, found without downloading
    assert found.name == "coco8.yaml" and found.parent.name == "datasets" and "ultralytics" in str(found)
    with pytest.raises(DatasetError, match="Ultralytics' dataset YAMLs"):
        resolve_data_yaml("no_such_dataset_anywhere")
