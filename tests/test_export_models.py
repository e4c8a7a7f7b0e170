"""Export of every model YAML (scale n) in both ONNX forms, run by ONNX Runtime against PyTorch."""

import copy
import os

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from ultralytics.utils import ASSETS

from yolo_lat import YOLOLAT
from yolo_lat.export import ela_nodes, exporter
from yolo_lat.nn import ELAAttention2d

MODELS = ["yolo-lat-n.yaml", "yolo12-ela-n.yaml", "yolo-lat-pico.yaml"]


@pytest.fixture(scope="module")
def models():
    return {name: YOLOLAT(name) for name in MODELS}


def export_mode_forward(model, x):
    """PyTorch output in the layout the exported graph has (Detect heads in export mode)."""
    net = copy.deepcopy(model.model).eval()
    for module in net.modules():
        if hasattr(module, "export"):
            module.export, module.format = True, "onnx"
    with torch.no_grad():
        out = net(x)
    return (out[0] if isinstance(out, (list, tuple)) else out).numpy()


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("ela_op", ["standard", "custom"])
def test_onnx_runtime_matches_pytorch(models, name, ela_op, tmp_path):
    model = models[name]
    path = model.export(format="onnx", imgsz=96, ela_op=ela_op, output=tmp_path / "m.onnx")
    graph = onnx.load(path)
    attention_blocks = sum(isinstance(m, ELAAttention2d) for m in model.model.modules())
    assert attention_blocks >= 1
    if ela_op == "custom":
        assert len(ela_nodes(graph)) == attention_blocks
        assert [(f.domain, f.name) for f in graph.functions] == [("yolo_lat", "ELA")]
    else:
        assert not ela_nodes(graph) and not graph.functions
    meta = {p.key for p in graph.metadata_props}
    assert {"names", "stride", "imgsz", "task"} <= meta
    x = torch.rand(1, 3, 96, 96)
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    out = session.run(None, {"images": x.numpy()})[0]
    reference = export_mode_forward(model, x)
    assert out.shape == reference.shape
    # measured: max abs difference <= 3.1e-5 for outputs up to 480 (rel 6e-8)
    assert np.abs(out - reference).max() <= 1e-5 * np.abs(reference).max()
    results = YOLOLAT(path).predict(str(ASSETS / "bus.jpg"), imgsz=96, verbose=False)
    assert results[0].boxes.data.shape[-1] == 6


def test_dynamic_shapes_and_batch(models, tmp_path):
    path = models["yolo-lat-n.yaml"].export(
        format="onnx", imgsz=64, dynamic=True, ela_op="custom", output=tmp_path / "d.onnx"
    )
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    for shape in ((2, 3, 64, 64), (1, 3, 128, 96)):
        x = torch.rand(*shape)
        out = session.run(None, {"images": x.numpy()})[0]
        reference = export_mode_forward(models["yolo-lat-n.yaml"], x)
        assert out.shape == reference.shape and np.abs(out - reference).max() <= 1e-5 * np.abs(reference).max()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"format": "onnxx"}, "unknown export format 'onnxx'. Did you mean 'onnx'?"),
        ({"format": "onnx", "ela_op": "fused"}, "ela_op='fused'"),
        ({"format": "engine", "int8": True}, "int8=True needs calibration images"),
        ({"format": "onnx", "int8": True}, "int8=True applies to format=engine"),
        ({"format": "torchscript", "ela_op": "custom"}, "ela_op applies to format=onnx and format=engine"),
        ({"format": "engine", "imgsz": 100}, "multiples of 32"),
        ({"format": "engine", "plugin": "cpp"}, "plugin='cpp': use one of aot, jit"),
    ],
)
def test_bad_export_arguments(models, kwargs, message, tmp_path):
    with pytest.raises(ValueError) as err:
        models["yolo-lat-pico.yaml"].export(output=tmp_path / "x", **kwargs)
    assert message in str(err.value)
    assert not any(tmp_path.iterdir())


def test_engine_without_tensorrt_is_a_clear_error(models, tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "tensorrt", None)
    with pytest.raises(RuntimeError, match="format=engine needs TensorRT"):
        models["yolo-lat-pico.yaml"].export(format="engine", imgsz=64, output=tmp_path / "m.engine")
    assert list(tmp_path.iterdir()) == []  # the intermediate ONNX was staged and removed


def test_interrupted_export_leaves_no_broken_file(models, tmp_path, monkeypatch):
    target = tmp_path / "m.onnx"
    target.write_bytes(b"previous export")

    def crash(model):
        raise KeyboardInterrupt("interrupted while writing the custom functions")

    monkeypatch.setattr(exporter, "attach_ela_functions", crash)
    with pytest.raises(KeyboardInterrupt):
        models["yolo-lat-pico.yaml"].export(format="onnx", imgsz=64, ela_op="custom", output=target)
    assert target.read_bytes() == b"previous export"
    assert os.listdir(tmp_path) == ["m.onnx"]


def test_export_keeps_the_callers_thread_count(models, tmp_path):
    """Ultralytics' device selection sets torch's CPU threads to cpu_count - 1 and leaves it so;
    an export through yolo-lat restores the caller's setting."""
    saved = torch.get_num_threads()
    try:
        torch.set_num_threads(3)
        models["yolo-lat-pico.yaml"].export(format="onnx", imgsz=64, output=tmp_path / "m.onnx")
        assert torch.get_num_threads() == 3
    finally:
        torch.set_num_threads(saved)
