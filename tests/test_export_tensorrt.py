"""TensorRT engine building and the ELA plugin, against a fake ``tensorrt`` (real TensorRT: skipped).

TensorRT cannot be installed on the project's machines; these tests check everything around it:
the call sequence (plugin registered before parsing), flags per major version, the optimisation
profile, precision handling, argument validation, and that no partial engine is left behind.
"""

import json
import sys
import types

import onnx
import pytest
import torch
from test_export_onnx_ela import FeatureMapAttention, export

from yolo_lat.export import EngineSettings, build_engine, register_ela_plugin, trt_plugin


class FakeTensorRT(types.ModuleType):
    """Just enough of the tensorrt module to record what build_engine asks of it."""

    def __init__(self, version="10.8.0", parse_ok=True, build_ok=True):
        super().__init__("tensorrt")
        self.__version__ = version
        self.events = []
        events = self.events
        fake = self

        class Logger:
            WARNING, VERBOSE = "warning", "verbose"

            def __init__(self, severity):
                events.append(("logger", severity))

        class Tensor:
            def __init__(self, name, shape):
                self.name, self.shape = name, shape

        class Network:
            num_inputs = 1

            def get_input(self, index):
                return Tensor("images", (-1, 3, -1, -1))

        class Profile:
            def set_shape(self, name, min, opt, max):
                events.append(("profile", name, min, opt, max))

        class Config:
            def set_flag(self, flag):
                events.append(("flag", flag))

            def set_memory_pool_limit(self, pool, size):
                events.append(("workspace", pool, size))

            def add_optimization_profile(self, profile):
                events.append(("add_profile",))

        class Builder:
            def __init__(self, logger):
                pass

            def create_network(self, flags):
                events.append(("network", flags))
                return Network()

            def create_builder_config(self):
                return Config()

            def create_optimization_profile(self):
                return Profile()

            def build_serialized_network(self, network, config):
                events.append(("build",))
                if not fake.build_ok:
                    raise RuntimeError("simulated crash mid-build")
                return b"SERIALIZED-ENGINE"

        class OnnxParser:
            num_errors = 1

            def __init__(self, network, logger):
                pass

            def parse_from_file(self, path):
                events.append(("parse", path))
                return fake.parse_ok

            def get_error(self, index):
                return "In node 3 (Foo): UNSUPPORTED_NODE"

        class TensorDesc:
            def __init__(self, shape):
                self.shape_expr = list(shape)

            def like(self):
                return TensorDesc(self.shape_expr)

        plugin = types.ModuleType("tensorrt.plugin")
        plugin.TensorDesc = TensorDesc
        plugin.registered = {}

        def register(plugin_id):
            def wrap(fn):
                events.append(("register", plugin_id))
                plugin.registered[plugin_id] = fn
                return fn

            return wrap

        def impl(plugin_id):
            def wrap(fn):
                events.append(("impl", plugin_id))
                return fn

            return wrap

        plugin.register, plugin.impl = register, impl
        self.plugin = plugin
        self.Logger, self.Builder, self.OnnxParser = Logger, Builder, OnnxParser
        self.NetworkDefinitionCreationFlag = types.SimpleNamespace(STRONGLY_TYPED=1)
        self.BuilderFlag = types.SimpleNamespace(FP16="FP16")
        self.MemoryPoolType = types.SimpleNamespace(WORKSPACE="WORKSPACE")
        self.parse_ok, self.build_ok = parse_ok, build_ok


@pytest.fixture(scope="module")
def onnx_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("onnx")
    files = {}
    for mode in ("standard", "custom"):
        model = export(FeatureMapAttention(), torch.randn(1, 12, 6, 6), mode)
        files[mode] = folder / f"{mode}.onnx"
        onnx.save(model, str(files[mode]))
    half = export(FeatureMapAttention(), torch.randn(1, 12, 6, 6, dtype=torch.float16), "standard")
    files["fp16"] = folder / "fp16.onnx"
    onnx.save(half, str(files["fp16"]))
    return files


def names(events):
    return [e[0] for e in events]


def test_custom_graph_registers_plugin_before_parsing(onnx_files, tmp_path):
    trt = FakeTensorRT("10.8.0")
    engine = build_engine(
        onnx_files["custom"], tmp_path / "m.engine", EngineSettings(imgsz=(64, 64)), {"stride": 32}, trt=trt
    )
    order = names(trt.events)
    assert order.index("register") < order.index("parse") < order.index("build")
    assert ("register", "yolo_lat::ELA") in trt.events and ("impl", "yolo_lat::ELA") in trt.events
    data = engine.read_bytes()
    size = int.from_bytes(data[:4], "little")
    header = json.loads(data[4 : 4 + size])
    assert header["stride"] == 32 and header["tensorrt"] == "10.8.0"
    assert data[4 + size :] == b"SERIALIZED-ENGINE"
    from ultralytics.nn.backends.base import BaseBackend  # Ultralytics reads the same layout back

    assert BaseBackend.engine_header(engine)[1]["stride"] == 32


def test_standard_graph_needs_no_plugin(onnx_files, tmp_path):
    trt = FakeTensorRT("10.8.0")
    build_engine(onnx_files["standard"], tmp_path / "m.engine", EngineSettings(imgsz=(64, 64)), trt=trt)
    assert "register" not in names(trt.events)
    assert ("network", 0) in trt.events  # fp32, TensorRT 10: weakly typed network


def test_trt10_fp16_flag_and_dynamic_profile(onnx_files, tmp_path):
    trt = FakeTensorRT("10.8.0")
    settings = EngineSettings(half=True, dynamic=True, batch=4, imgsz=(320, 256), workspace=2)
    build_engine(onnx_files["standard"], tmp_path / "m.engine", settings, trt=trt)
    assert ("flag", "FP16") in trt.events
    assert ("profile", "images", (1, 3, 32, 32), (4, 3, 320, 256), (4, 3, 640, 512)) in trt.events
    assert ("workspace", "WORKSPACE", 2 << 30) in trt.events


def test_fp16_graph_builds_strongly_typed(onnx_files, tmp_path):
    for version in ("10.8.0", "11.1.0"):
        trt = FakeTensorRT(version)
        build_engine(onnx_files["fp16"], tmp_path / "m.engine", EngineSettings(half=True, imgsz=(64, 64)), trt=trt)
        assert ("network", 1 << 1) in trt.events  # STRONGLY_TYPED
        assert ("flag", "FP16") not in trt.events  # the precision is in the graph


def test_trt11_fp32_graph_with_half_needs_modelopt(onnx_files, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "modelopt", None)  # not installed
    with pytest.raises(RuntimeError, match="ModelOpt"):
        build_engine(
            onnx_files["standard"],
            tmp_path / "m.engine",
            EngineSettings(half=True, imgsz=(64, 64)),
            trt=FakeTensorRT("11.0.1"),
        )
    assert not (tmp_path / "m.engine").exists()


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (EngineSettings(int8=True), "int8=True needs calibration images"),
        (EngineSettings(half=True, int8=True, calibration=[1]), "choose one of half=True and int8=True"),
        (EngineSettings(imgsz=(100, 64)), "multiples of 32"),
        (EngineSettings(batch=0), "batch must be >= 1"),
        (EngineSettings(workspace=-1.0), "workspace must be a positive"),
    ],
)
def test_bad_settings_fail_before_tensorrt(onnx_files, tmp_path, settings, message):
    trt = FakeTensorRT()
    with pytest.raises(ValueError, match=message):
        build_engine(onnx_files["standard"], tmp_path / "m.engine", settings, trt=trt)
    assert trt.events == []


def test_old_tensorrt_parse_errors_and_missing_file(onnx_files, tmp_path):
    with pytest.raises(RuntimeError, match="too old"):
        build_engine(
            onnx_files["standard"], tmp_path / "m.engine", EngineSettings(imgsz=(64, 64)), trt=FakeTensorRT("8.6.1")
        )
    with pytest.raises(RuntimeError, match="UNSUPPORTED_NODE"):
        build_engine(
            onnx_files["standard"],
            tmp_path / "m.engine",
            EngineSettings(imgsz=(64, 64)),
            trt=FakeTensorRT(parse_ok=False),
        )
    with pytest.raises(FileNotFoundError, match=r"missing\.onnx"):
        build_engine(tmp_path / "missing.onnx", tmp_path / "m.engine", EngineSettings(), trt=FakeTensorRT())


def test_interrupted_build_leaves_no_engine(onnx_files, tmp_path):
    target = tmp_path / "m.engine"
    target.write_bytes(b"previous good engine")
    with pytest.raises(RuntimeError, match="simulated crash"):
        build_engine(onnx_files["standard"], target, EngineSettings(imgsz=(64, 64)), trt=FakeTensorRT(build_ok=False))
    assert target.read_bytes() == b"previous good engine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.engine"]


def test_plugin_descriptor_shapes():
    trt = FakeTensorRT("10.8.0")
    trt_plugin._REGISTERED.discard(id(trt.plugin))
    assert register_ela_plugin(trt) == "yolo_lat::ELA"
    register_ela_plugin(trt)  # idempotent
    assert names(trt.events).count("register") == 1
    describe = trt.plugin.registered["yolo_lat::ELA"]
    desc = trt.plugin.TensorDesc
    out = describe(
        desc(["B", "H", "Lq", "D"]),
        desc(["B", "H", "Lk", "D"]),
        desc(["B", "H", "Lk", "Dv"]),
        "hadamard_exp",
        4,
        0.25,
        0,
    )
    assert out.shape_expr == ["B", "H", "Lq", "Dv"]


def test_missing_tensorrt_is_a_clear_error(onnx_files, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    with pytest.raises(RuntimeError, match="needs TensorRT"):
        build_engine(onnx_files["standard"], tmp_path / "m.engine", EngineSettings(imgsz=(64, 64)))
    with pytest.raises(RuntimeError, match="TensorRT is not installed"):
        register_ela_plugin()


def test_real_tensorrt_engine_build(onnx_files, tmp_path):
    trt = pytest.importorskip("tensorrt", reason="TensorRT is not installed (cannot be installed from PyPI here)")
    if not torch.cuda.is_available():
        pytest.skip("a TensorRT engine build needs a CUDA GPU")
    engine = build_engine(onnx_files["custom"], tmp_path / "m.engine", EngineSettings(imgsz=(64, 64)), trt=trt)
    assert engine.stat().st_size > 1000
