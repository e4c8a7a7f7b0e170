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

    def __init__(self, version="10.8.0", parse_ok=True, build_ok=True, aot=True):
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
                nodes = [n for n in onnx.load(path).graph.node if n.domain == "yolo_lat"]
                events.append(("aot_flags", [onnx.helper.get_node_attr_value(n, "aot") if any(
                    a.name == "aot" for a in n.attribute) else None for n in nodes]))  # fmt: skip
                return fake.parse_ok

            def get_error(self, index):
                return "In node 3 (Foo): UNSUPPORTED_NODE"

        class TensorDesc:
            def __init__(self, shape, dtype="HALF"):
                self.shape_expr = list(shape)
                self.dtype = types.SimpleNamespace(name=dtype)  # like trt.DataType.HALF

            def like(self):
                return TensorDesc(self.shape_expr)

        plugin = types.ModuleType("tensorrt.plugin")
        plugin.TensorDesc = TensorDesc
        plugin.registered, plugin.aot_functions = {}, {}

        def decorator(kind, store=None):
            """A ``tensorrt.plugin`` decorator that records its use (and keeps the function)."""

            def take(plugin_id):
                def wrap(fn):
                    events.append((kind, plugin_id))
                    if store is not None:
                        store[plugin_id] = fn
                    return fn

                return wrap

            return take

        plugin.register = decorator("register", plugin.registered)
        plugin.impl = decorator("impl")
        if aot:  # TensorRT >= 10.8
            plugin.aot_impl = decorator("aot_impl", plugin.aot_functions)
            plugin.KernelLaunchParams = types.SimpleNamespace
            plugin.SymInt32 = lambda expr: ("i32", expr)
            plugin.SymIntExprs = types.SimpleNamespace(from_tuple=tuple)
            plugin.cdiv = lambda a, b: f"cdiv({a}, {b})"
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


class Dim:
    """A symbolic TensorRT dimension: a name (dynamic) or a build-time constant."""

    def __init__(self, value):
        self.value = value
        self.is_constant = isinstance(value, int)

    def constant_value(self):
        assert self.is_constant
        return self.value

    def __mul__(self, other):
        return f"{self}*{other}"

    def __str__(self):
        return str(self.value)


def test_aot_plugin_launch_for_dynamic_shapes(monkeypatch):
    """The AOT implementation compiles for the node's types and constant head dims, and launches
    ceil(Lq / 64) x (B * H) programs with Lq, Lk as the int32 arguments (shapes stay symbolic).
    The compile itself is tested without TensorRT in test_cuda_ops_compile.py."""
    from yolo_lat.cuda_ops import aot

    calls = []

    def fake_compile(kernel_id, dtype, head_dim, value_dim, scale, arch=90):
        calls.append((kernel_id, dtype, head_dim, value_dim, scale, arch))
        return aot.AOTKernel("_single_launch_kernel", ".entry _single_launch_kernel(...)", 8, 1024)

    monkeypatch.setattr(aot, "compile_for_tensorrt", fake_compile)
    trt = FakeTensorRT("10.8.0")
    trt_plugin._REGISTERED.discard(id(trt.plugin))
    register_ela_plugin(trt)
    assert ("aot_impl", "yolo_lat::ELA") in trt.events and ("impl", "yolo_lat::ELA") in trt.events
    launch_for = trt.plugin.aot_functions["yolo_lat::ELA"]
    desc = trt.plugin.TensorDesc
    q = desc([Dim("B"), Dim(4), Dim("Lq"), Dim(64)], "BF16")
    k = desc([Dim("B"), Dim(4), Dim("Lk"), Dim(64)], "BF16")
    v = desc([Dim("B"), Dim(4), Dim("Lk"), Dim(32)], "BF16")
    name, ptx, launch, scalars = launch_for(q, k, v, "sum_sq_euclid", 4, 0.125, 0, (v.like(),), 0)
    assert calls == [(1, "bf16", 64, 32, 0.125, 90)]
    assert name == b"_single_launch_kernel" and ptx.startswith(b".entry _single_launch_kernel")
    assert launch.grid_x == "cdiv(Lq, 64)" and launch.grid_y == "B*4"
    assert launch.block_x == 8 * 32 and launch.shared_mem == 1024
    assert [expr for _, expr in scalars] == [q.shape_expr[2], k.shape_expr[2]]
    with pytest.raises(ValueError, match="bidirectional ELA only"):
        launch_for(q, k, v, "hadamard_exp", 4, 0.125, 1, (v,), 0)
    with pytest.raises(ValueError, match="build-time constant head dim"):
        launch_for(desc([Dim("B"), Dim(4), Dim("Lq"), Dim("D")], "BF16"), k, v, "hadamard_exp", 4, 0.1, 0, (v,), 0)
    with pytest.raises(ValueError, match="float32, float16 or bfloat16"):
        launch_for(desc(q.shape_expr, "INT8"), k, v, "hadamard_exp", 4, 0.1, 0, (v,), 0)
    with pytest.raises(ValueError, match="kernel 'cosine'"):
        launch_for(q, k, v, "cosine", 4, 0.1, 0, (v,), 0)


def test_engine_plugin_modes(onnx_files, tmp_path):
    """plugin=aot (default) parses a copy whose ELA nodes say aot=1 and leaves the export as it
    was; plugin=jit parses the export itself; TensorRT without the AOT API refuses plugin=aot."""
    before = onnx_files["custom"].read_bytes()
    trt = FakeTensorRT("10.8.0")
    build_engine(onnx_files["custom"], tmp_path / "a.engine", EngineSettings(imgsz=(64, 64)), trt=trt)
    parsed = next(e[1] for e in trt.events if e[0] == "parse")
    assert parsed.endswith("custom.aot.onnx") and not __import__("os").path.exists(parsed)  # a removed temp copy
    flags = next(e[1] for e in trt.events if e[0] == "aot_flags")
    assert flags and all(flag == 1 for flag in flags)
    assert onnx_files["custom"].read_bytes() == before
    trt = FakeTensorRT("10.8.0")
    build_engine(onnx_files["custom"], tmp_path / "j.engine", EngineSettings(imgsz=(64, 64), plugin="jit"), trt=trt)
    assert ("parse", str(onnx_files["custom"])) in trt.events
    assert all(flag is None for flag in next(e[1] for e in trt.events if e[0] == "aot_flags"))
    old = FakeTensorRT("10.7.0", aot=False)
    with pytest.raises(RuntimeError, match="no ahead-of-time plugin API"):
        build_engine(onnx_files["custom"], tmp_path / "o.engine", EngineSettings(imgsz=(64, 64)), trt=old)
    build_engine(onnx_files["custom"], tmp_path / "o.engine", EngineSettings(imgsz=(64, 64), plugin="jit"), trt=old)
    with pytest.raises(ValueError, match="plugin='cpp'"):
        build_engine(onnx_files["custom"], tmp_path / "x.engine", EngineSettings(plugin="cpp"), trt=FakeTensorRT())
