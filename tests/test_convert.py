"""Ultralytics weights in YOLO-LAT models: ``yolo-lat convert`` (YOLO12 -> yolo12-ela) and ``pretrained=`` transfers.

The checkpoints are trained here: YOLO12n and YOLO26n, one epoch at imgsz 64 on 8 synthetic images
(hub weights cannot be downloaded). Other scales and class counts are built from Ultralytics' YAMLs and
saved with Ultralytics' own ``Model.save``. Transfers are checked on the log lines and on the tensors
the model holds when training starts.
"""

import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import onnxruntime
import pytest
import torch
from ultralytics.nn.tasks import DetectionModel
from ultralytics.utils import ASSETS, LOGGER

from yolo_lat.datasets.synth import generate
from yolo_lat.models import YOLOLAT, resolve_model_yaml
from yolo_lat.models.checks import ModelError
from yolo_lat.models.convert import check_pretrained, convert_yolo12, transfer_report

pytestmark = pytest.mark.slow

ENV = {**os.environ, "YOLO_OFFLINE": "1", "MPLBACKEND": "Agg", "OMP_NUM_THREADS": "1"}
TRAIN = {"epochs": 1, "imgsz": 64, "batch": 4, "workers": 0, "plots": False, "exist_ok": True}


def cli(*args, cwd):
    return subprocess.run(
        [sys.executable, "-m", "yolo_lat.cli", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=600,
        env=ENV,
        cwd=cwd,
    )


def one_error_line(result) -> str:
    assert result.returncode == 2, result.stdout[-2000:] + result.stderr[-3000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("yolo-lat: error: ")]
    assert len(errors) == 1, result.stderr[-3000:]
    return errors[0].removeprefix("yolo-lat: error: ")


def state(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=False)["model"].state_dict()


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("convert")
    generate(root / "data", n_train=8, n_val=4, imgsz=64, seed=0, preview=False)
    return root


@pytest.fixture(scope="module")
def data(root):
    return root / "data" / "data.yaml"


@pytest.fixture(scope="module")
def yolo12n(root, data):
    """best.pt of a 1-epoch YOLO12n run (6 classes)."""
    YOLOLAT("yolo12n.yaml").train(data=str(data), project=str(root), name="yolo12n", **TRAIN)
    return root / "yolo12n" / "weights" / "best.pt"


@pytest.fixture(scope="module")
def yolo26n(root, data):
    """best.pt of a 1-epoch YOLO26n run (6 classes)."""
    YOLOLAT("yolo26n.yaml").train(data=str(data), project=str(root), name="yolo26n", **TRAIN)
    return root / "yolo26n" / "weights" / "best.pt"


@pytest.fixture(scope="module")
def converted(yolo12n):
    return convert_yolo12(yolo12n)


class Lines(logging.Handler):
    """Collects Ultralytics' LOGGER messages."""

    def __init__(self):
        super().__init__(logging.INFO)
        self.lines = []

    def emit(self, record):
        self.lines.append(record.getMessage())


class Started(Exception):
    """Raised when training starts: the transfer is done, the epochs are not needed."""


def train_from(model: str, pretrained: Path, data: Path, project: Path) -> tuple[list[str], dict[str, torch.Tensor]]:
    """``YOLOLAT(model).train(pretrained=...)`` up to the first epoch: the ``pretrained:`` log lines and the weights."""
    yolo, start = YOLOLAT(model), {}

    def snapshot(trainer):
        start.update({k: v.detach().clone() for k, v in trainer.model.state_dict().items()})
        raise Started

    yolo.add_callback("on_pretrain_routine_end", snapshot)
    handler = Lines()
    LOGGER.addHandler(handler)
    try:
        with pytest.raises(Started):
            yolo.train(data=str(data), pretrained=str(pretrained), project=str(project), name="run", **TRAIN)
    finally:
        LOGGER.removeHandler(handler)
    return [line for line in handler.lines if line.startswith("pretrained:")], start


# convert


def test_converted_checkpoint_holds_every_tensor_of_the_source(yolo12n, converted):
    assert converted == yolo12n.with_name("best-ela.pt") and converted.is_file()
    source, target = state(yolo12n), state(converted)
    assert list(source) == list(target) and len(source) == 691
    for key, value in source.items():
        assert target[key].dtype == value.dtype and torch.equal(target[key], value), key
    record = torch.load(converted, map_location="cpu", weights_only=False)
    model = record["model"]
    assert model.yaml["yaml_file"] == "yolo12-ela-n.yaml" and model.yaml["scale"] == "n" and model.yaml["nc"] == 6
    assert [type(m).__name__ for m in model.model].count("A2C2fELA") == 2 and model.names[0] == "circle"
    assert record["epoch"] == -1 and record["optimizer"] is None and record["converted_from"] == str(yolo12n)
    assert not any(p.name.endswith(".partial") for p in converted.parent.iterdir())


def test_converted_checkpoint_validates_predicts_and_exports(converted, data, tmp_path):
    model = YOLOLAT(str(converted))
    metrics = model.val(data=str(data), imgsz=64, batch=4, plots=False, project=str(tmp_path), name="val")
    assert 0.0 <= metrics.box.map <= 1.0 and metrics.box.map50 >= metrics.box.map
    result = model.predict(str(ASSETS / "bus.jpg"), imgsz=64, save=False, verbose=False)[0]
    assert result.orig_shape == (1080, 810) and result.boxes.data.shape[1] == 6
    onnx_file = Path(model.export(format="onnx", imgsz=64))
    assert onnx_file.is_file()
    image = torch.rand(1, 3, 64, 64)
    session = onnxruntime.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {session.get_inputs()[0].name: image.numpy()})
    with torch.no_grad():
        want = YOLOLAT(str(converted)).model.float().eval()(image)[0]
    assert got.shape == tuple(want.shape) == (1, 4 + 6, 84)
    torch.testing.assert_close(torch.from_numpy(got), want, atol=2e-3, rtol=2e-3)


def test_cli_prints_map_before_and_after(yolo12n, data, tmp_path):
    out = tmp_path / "out" / "ela.pt"
    result = cli("convert", f"model={yolo12n}", f"out={out}", f"data={data}", "imgsz=64", "batch=4", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (
        f"converted {yolo12n} (YOLO12 n, 6 classes) -> {out}: 691/691 tensors, area attention -> ELA in layers 6, 8 "
        "(A2C2f -> A2C2fELA)"
    ) in result.stdout
    found = {}
    for when, name in (("before", yolo12n), ("after", out)):
        match = re.search(
            rf"^  {when} +mAP50-95 (\d\.\d{{4}})  mAP50 (\d\.\d{{4}})  {re.escape(str(name))} ", result.stdout, re.M
        )
        assert match, result.stdout[-2000:]
        found[when] = float(match[1]), float(match[2])
    for when, name in (("before", yolo12n), ("after", out)):
        metrics = YOLOLAT(str(name)).val(data=str(data), imgsz=64, batch=4, plots=False, project=str(tmp_path))
        assert found[when] == (round(metrics.box.map, 4), round(metrics.box.map50, 4))
    assert torch.equal(
        state(out)["model.6.m.0.0.attn.qkv.conv.weight"], state(yolo12n)["model.6.m.0.0.attn.qkv.conv.weight"]
    )


def test_any_scale_from_the_yaml_or_the_file_name(tmp_path):
    small = YOLOLAT("yolo12s.yaml")
    small.model.yaml.update(scale="", yaml_file="yolo12.yaml")  # as an old checkpoint: the scale only in its name
    small.save(tmp_path / "yolo12s.pt")
    lines = []
    converted = convert_yolo12(tmp_path / "yolo12s.pt", tmp_path / "small.pt", log=lines.append)
    assert lines == [
        f"converted {tmp_path / 'yolo12s.pt'} (YOLO12 s, 80 classes) -> {converted}: 691/691 tensors, area attention "
        "-> ELA in layers 6, 8 (A2C2f -> A2C2fELA)"
    ]
    model = torch.load(converted, map_location="cpu", weights_only=False)["model"]
    assert model.yaml["scale"] == "s" and model.yaml["nc"] == 80
    source = small.model.state_dict()
    assert all(torch.equal(value, source[key].half()) for key, value in model.state_dict().items())


def _bad_inputs(root: Path, yolo26n: Path, converted: Path) -> dict[str, tuple[Path, str]]:
    junk = root / "junk.pt"
    junk.write_bytes(b"\x00" * 100)
    text = root / "notes.txt"
    text.write_text("not a model")
    return {
        "missing": (root / "nope.pt", "model={path}: no such file (YOLO_OFFLINE is set: nothing is downloaded); give"),
        "folder": (root, "model={path}: a directory, not a .pt checkpoint"),
        "not .pt": (text, "model={path}: not a .pt checkpoint (a .txt file)"),
        "junk": (junk, "model={path}: not a PyTorch checkpoint: the file (100 bytes) is empty, truncated or corrupted"),
        "yolo26": (yolo26n, "{path}: not a YOLO12 checkpoint: its model is yolo26n.yaml (C3k2, SPPF, C2PSA, Detect)"),
        "yolo12-ela": (converted, "{path}: already a yolo12-ela checkpoint (yolo12-ela-n.yaml: A2C2fELA layers)"),
    }


def test_bad_checkpoints_are_refused_naming_the_file(root, yolo26n, converted, tmp_path):
    for path, expected in _bad_inputs(root, yolo26n, converted).values():
        with pytest.raises(ModelError) as caught:
            convert_yolo12(path, tmp_path / "out.pt")
        assert str(caught.value).startswith(expected.format(path=path))
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ModelError, match="is the input checkpoint"):
        convert_yolo12(converted, converted)
    lat = YOLOLAT("yolo-lat-n.yaml")
    lat.save(tmp_path / "lat.pt")
    with pytest.raises(ModelError, match=r"not a YOLO12 checkpoint: its model is yolo-lat-n\.yaml \("):
        convert_yolo12(tmp_path / "lat.pt")


def test_cli_bad_input_exits_2(yolo26n, tmp_path):
    assert one_error_line(cli("convert", f"model={yolo26n}", cwd=tmp_path)).startswith(
        f"{yolo26n}: not a YOLO12 checkpoint: its model is yolo26n.yaml"
    )
    result = cli("train", "model=yolo12-ela-n.yaml", "pretrained=yolo12n.pt", "imgsz=64", cwd=tmp_path)
    assert one_error_line(result) == (
        "pretrained=yolo12n.pt: no such file (YOLO_OFFLINE is set: nothing is downloaded); give a .pt checkpoint "
        "such as best.pt"
    )
    assert list(tmp_path.iterdir()) == []  # no run folder, no dataset


def test_check_pretrained(root, yolo12n):
    check_pretrained(True)
    check_pretrained(False)
    check_pretrained(str(yolo12n))
    (root / "bad.pt").write_bytes(b"")
    with pytest.raises(ModelError, match=r"^pretrained=.*bad\.pt: not a PyTorch checkpoint: the file \(0 bytes\)"):
        check_pretrained(str(root / "bad.pt"))
    with pytest.raises(ModelError, match=r"^pretrained=.*data\.yaml: not a \.pt checkpoint \(a \.yaml file\)$"):
        check_pretrained(str(root / "data" / "data.yaml"))


# pretrained= transfers


def test_yolo12_weights_load_fully_into_yolo12_ela(yolo12n, data, tmp_path):
    lines, start = train_from("yolo12-ela-n.yaml", yolo12n, data, tmp_path)
    assert lines == [f"pretrained: loaded 691/691 tensors from {yolo12n}"]
    source = state(yolo12n)
    assert list(start) == list(source)
    assert all(torch.equal(start[k].float(), v.float()) for k, v in source.items())


def test_yolo26_weights_load_where_name_and_shape_match(yolo26n, data, tmp_path):
    lines, start = train_from("yolo-lat-n.yaml", yolo26n, data, tmp_path)
    source = state(yolo26n)
    fits = [k for k, v in start.items() if k in source and source[k].shape == v.shape]
    missing = [k for k in start if k not in source]
    unused = [k for k in source if k not in start]
    assert missing and unused and len(fits) + len(missing) == len(start)  # same class count: no shape differs
    assert lines[0] == (
        f"pretrained: loaded {len(fits)}/{len(start)} tensors from {yolo26n} (not loaded: {len(missing)} not in the "
        "checkpoint)"
    )
    assert lines[1].startswith(f"pretrained: in the model, not in the checkpoint ({len(missing)}): layer ")
    assert lines[2].startswith(f"pretrained: in the checkpoint, not used ({len(unused)}): layer ")
    assert len(lines) == 3
    model = YOLOLAT("yolo-lat-n.yaml").model
    for key in missing:  # every group is named with its layer and module
        index = key.split(".")[1]
        assert f"layer {index} {type(model.model[int(index)]).__name__} (" in lines[1]
    assert all(torch.equal(start[k].float(), source[k].float()) for k in fits)
    assert torch.equal(start["model.0.conv.weight"], source["model.0.conv.weight"].float())


def test_other_class_count_lists_the_class_layers(data, tmp_path):
    coco = tmp_path / "coco80.pt"
    YOLOLAT("yolo12n.yaml").save(coco)  # nc=80, the data has 6 classes
    lines, start = train_from("yolo12-ela-n.yaml", coco, data, tmp_path)
    assert lines == [
        f"pretrained: loaded 685/691 tensors from {coco} (not loaded: 6 with another shape)",
        "pretrained: in both, another shape, not loaded (6): layer 21 Detect (6, e.g. cv3.0.2.weight: 6x80x1x1 here, "
        "80x80x1x1 in the checkpoint)",
    ]
    source = state(coco)
    hidden = "model.21.cv3.0.1.0.conv.weight"  # the class branch's hidden layers load: only the last differs
    assert torch.equal(start[hidden], source[hidden].float())
    assert start["model.21.cv3.0.2.weight"].shape == (6, 80, 1, 1)


def test_transfer_report_groups_many_layers():
    model = DetectionModel(resolve_model_yaml("yolo12-ela-n.yaml"), nc=3, verbose=False)
    empty = torch.nn.Linear(1, 1)
    report = transfer_report(model, empty, "linear.pt")
    lines = report.lines("weights")
    assert lines[0] == "weights: loaded 0/691 tensors from linear.pt (not loaded: 691 not in the checkpoint)"
    assert lines[1].startswith(
        "weights: in the model, not in the checkpoint (691): layer 0 Conv (6), layer 1 Conv (6), layer 2 C3k2 (24), "
    )  # a Conv: its convolution's weight and 5 BatchNorm tensors
    assert "layer 6 A2C2fELA (132)" in lines[1] and "layer 9 " not in lines[1]  # Upsample: no tensors
    assert lines[1].endswith(", layer 11 A2C2f (54), and 6 more layers")  # 16 layers with tensors, 10 listed
    assert lines[2] == "weights: in the checkpoint, not used (2): outside the layers (2)"
