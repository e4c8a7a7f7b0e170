"""Build a TensorRT engine from an exported ONNX model (TensorRT 10.x and 11.x Python APIs).

* TensorRT 11 builds strongly typed networks only: the precision must already be in the ONNX graph.
  FP16 comes from an fp16 ONNX export (``half=True`` on a GPU: explicit casts, ELA kept in fp32
  inside the graph) or, for an fp32 graph, NVIDIA ModelOpt AutoCast when it is installed; INT8 from
  Q/DQ nodes written by ModelOpt with calibration images.
* TensorRT 10 builds a strongly typed network for an fp16/Q-DQ graph too, and otherwise the
  classic weakly typed network with the FP16 builder flag.
* ``dynamic=True`` adds one optimisation profile (min/opt/max) for the image input.
* The ``yolo_lat::ELA`` plugin is registered before parsing whenever the graph holds ELA nodes;
  with ``plugin="aot"`` (default) its nodes are marked ``aot=1`` so TensorRT embeds the
  ahead-of-time Triton kernel and the engine runs without Python (see :mod:`.trt_plugin`).
* The engine file is written in Ultralytics' layout (4-byte little-endian length, JSON metadata,
  engine bytes) to a temporary name and renamed, so no half-written engine ever exists under the
  final name.

TensorRT cannot be installed on the project's CI machines; this module is tested against a fake
``tensorrt`` module (call sequence, flags, profiles, errors) and has not been run on real TensorRT.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import onnx

from .onnx_functions import ela_nodes
from .trt_plugin import register_ela_plugin, supports_aot

__all__ = ["PLUGIN_MODES", "EngineSettings", "build_engine", "mark_aot", "tensorrt_major"]

#: ``EngineSettings.plugin`` values.
PLUGIN_MODES = ("aot", "jit")


@dataclass
class EngineSettings:
    """What to build.

    Attributes:
        half: FP16 engine.
        int8: INT8 engine (needs ``calibration``: an (N, 3, H, W) float32 array in [0, 1]).
        dynamic: dynamic batch and image size through one optimisation profile.
        batch: batch size of the opt shape (and of the max shape's batch).
        imgsz: (height, width) of the opt shape.
        min_imgsz: smallest (h, w) of the profile; default (32, 32).
        max_imgsz: largest (h, w) of the profile; default twice ``imgsz``.
        workspace: workspace limit in GiB (None: TensorRT decides).
        calibration: INT8 calibration images.
        plugin: how ``yolo_lat::ELA`` nodes run: ``aot`` (a kernel compiled into the engine,
            TensorRT >= 10.8) or ``jit`` (a Python callback; the engine needs yolo-lat and PyTorch).
    """

    half: bool = False
    int8: bool = False
    dynamic: bool = False
    batch: int = 1
    imgsz: tuple[int, int] = (640, 640)
    min_imgsz: tuple[int, int] | None = None
    max_imgsz: tuple[int, int] | None = None
    workspace: float | None = None
    calibration: Any = field(default=None, repr=False)
    plugin: str = "aot"

    def check(self) -> None:
        """Raise ``ValueError`` naming the bad setting."""
        if self.half and self.int8:
            raise ValueError("choose one of half=True and int8=True")
        if self.int8 and self.calibration is None:
            raise ValueError("int8=True needs calibration images: pass data=<dataset.yaml> (or calibration=<folder>)")
        if self.batch < 1:
            raise ValueError(f"batch must be >= 1, got {self.batch}")
        if any(int(s) < 32 or int(s) % 32 for s in self.imgsz):
            raise ValueError(f"imgsz must be multiples of 32 (the model's largest stride), got {self.imgsz}")
        if self.plugin not in PLUGIN_MODES:
            raise ValueError(f"plugin={self.plugin!r}: use one of {', '.join(PLUGIN_MODES)}")
        if self.workspace is not None and self.workspace <= 0:
            raise ValueError(f"workspace must be a positive number of GiB, got {self.workspace}")

    def profile(self, channels: int = 3) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
        """(min, opt, max) input shapes of the optimisation profile."""
        h, w = self.imgsz
        low = self.min_imgsz or (32, 32)
        high = self.max_imgsz or (2 * h, 2 * w)
        return (1, channels, *low), (self.batch, channels, h, w), (self.batch, channels, *high)


def tensorrt_major(trt: ModuleType) -> int:
    """Major version of a ``tensorrt`` module."""
    return int(str(trt.__version__).split(".", 1)[0])


def _graph_precision(model: onnx.ModelProto) -> str:
    """``int8`` (Q/DQ nodes), ``fp16`` (fp16 tensors in the graph) or ``fp32``."""
    if any(n.op_type in ("QuantizeLinear", "DequantizeLinear") for n in model.graph.node):
        return "int8"
    fp16 = onnx.TensorProto.FLOAT16
    typed = [*model.graph.input, *model.graph.output, *model.graph.value_info]
    if any(t.type.tensor_type.elem_type == fp16 for t in typed) or any(
        i.data_type == fp16 for i in model.graph.initializer
    ):
        return "fp16"
    return "fp32"


def _with_precision(onnx_path: Path, settings: EngineSettings, precision: str) -> Path:
    """Bake FP16 (AutoCast) or INT8 (Q/DQ) into an fp32 graph with NVIDIA ModelOpt."""
    want = "int8" if settings.int8 else "fp16" if settings.half else "fp32"
    if want == "fp32" or precision == want:
        return onnx_path
    try:
        import modelopt.onnx  # noqa: F401
    except ImportError as err:
        raise RuntimeError(
            f"a {want} engine from an {precision} ONNX graph needs NVIDIA ModelOpt "
            "(`pip install nvidia-modelopt[onnx]`); for fp16 you can instead export on a GPU (device=0) with "
            "half=True so the ONNX itself is fp16"
        ) from err
    input_name = onnx.load(str(onnx_path), load_external_data=False).graph.input[0].name
    if want == "int8":
        from modelopt.onnx.quantization import quantize

        out = onnx_path.with_suffix(".int8.onnx")
        quantize(
            str(onnx_path),
            quantize_mode="int8",
            calibration_data={input_name: settings.calibration},
            calibration_method="max",
            calibration_eps=["cpu"],
            output_path=str(out),
        )
        return out
    from modelopt.onnx import autocast

    out = onnx_path.with_suffix(".fp16.onnx")
    onnx.save(
        autocast.convert_to_mixed_precision(str(onnx_path), low_precision_type="fp16", keep_io_types=True), str(out)
    )
    return out


def mark_aot(source: Path, folder: Path) -> Path:
    """A copy of ``source`` in ``folder`` whose ``yolo_lat::ELA`` nodes carry ``aot=1``
    (TensorRT's switch to a plugin's ahead-of-time implementation); ``source`` is not changed."""
    model = onnx.load(str(source))
    for node in ela_nodes(model):
        kept = [a for a in node.attribute if a.name != "aot"]
        node.ClearField("attribute")
        node.attribute.extend([*kept, onnx.helper.make_attribute("aot", 1)])
    out = folder / f"{source.stem}.aot.onnx"
    onnx.save(model, str(out))
    return out


def build_engine(
    onnx_path: str | Path,
    engine_path: str | Path,
    settings: EngineSettings,
    metadata: dict[str, Any] | None = None,
    *,
    trt: ModuleType | None = None,
    verbose: bool = False,
) -> Path:
    """Build and write a TensorRT engine.

    Args:
        onnx_path: exported model (standard or custom ELA form).
        engine_path: where to write the engine.
        settings: precision, profile and workspace (:class:`EngineSettings`).
        metadata: Ultralytics metadata (names, stride, imgsz, task, ...) written ahead of the engine.
        trt: the ``tensorrt`` module (tests inject a fake one); imported when ``None``.
        verbose: TensorRT's verbose log.

    Returns:
        ``engine_path``.

    Raises:
        ValueError: bad settings (checked before TensorRT is touched).
        RuntimeError: TensorRT missing or too old, a parse error (each parser error listed), or a
            failed build.
    """
    settings.check()
    onnx_path, engine_path = Path(onnx_path), Path(engine_path)
    if not onnx_path.is_file():
        raise FileNotFoundError(f"ONNX model not found: {onnx_path}")
    if trt is None:
        try:
            import tensorrt as trt
        except ImportError as err:
            raise RuntimeError(
                "format=engine needs TensorRT (`pip install tensorrt`, NVIDIA GPU); it is not installed here. "
                "Export format=onnx instead, or build the engine on the deployment machine."
            ) from err
    major = tensorrt_major(trt)
    if major < 10:
        raise RuntimeError(f"TensorRT {trt.__version__} is too old: yolo-lat builds engines with TensorRT 10.x or 11.x")

    graph = onnx.load(str(onnx_path), load_external_data=False)
    has_plugin_nodes = bool(ela_nodes(graph))
    if has_plugin_nodes:
        if settings.plugin == "aot" and not supports_aot(trt):
            raise RuntimeError(
                f"TensorRT {trt.__version__} has no ahead-of-time plugin API (tensorrt.plugin.aot_impl, >= 10.8): "
                "build with plugin=jit (the engine then calls back into Python) or export ela_op=standard"
            )
        register_ela_plugin(trt)  # before parsing, so the parser picks the plugin over the local function
    precision = _graph_precision(graph)
    source = onnx_path
    if major >= 11:
        source = _with_precision(onnx_path, settings, precision)
        precision = _graph_precision(onnx.load(str(source), load_external_data=False))
    elif settings.int8 and precision != "int8":
        source = _with_precision(onnx_path, settings, precision)
        precision = "int8"
    strongly_typed = major >= 11 or precision in ("fp16", "int8")

    logger = trt.Logger(trt.Logger.VERBOSE if verbose else trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED) if strongly_typed else 0
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    with tempfile.TemporaryDirectory(prefix=".yolo-lat-trt-") as tmp:
        parsed = mark_aot(source, Path(tmp)) if has_plugin_nodes and settings.plugin == "aot" else source
        if not parser.parse_from_file(str(parsed)):
            errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
            raise RuntimeError(f"TensorRT could not parse {source}: {errors}")

    config = builder.create_builder_config()
    if settings.workspace:
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(settings.workspace * (1 << 30)))
    if settings.half and not strongly_typed:
        config.set_flag(trt.BuilderFlag.FP16)
    if settings.dynamic:
        profile = builder.create_optimization_profile()
        for index in range(network.num_inputs):
            tensor = network.get_input(index)
            low, opt, high = settings.profile(channels=int(tensor.shape[1]) if len(tensor.shape) > 1 else 3)
            profile.set_shape(tensor.name, min=low, opt=opt, max=high)
        config.add_optimization_profile(profile)

    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise RuntimeError(f"TensorRT failed to build an engine from {source} (see the TensorRT log above)")
    header = json.dumps({**(metadata or {}), "tensorrt": str(trt.__version__)}).encode()
    engine_path.parent.mkdir(parents=True, exist_ok=True)
    staged = engine_path.with_name(f".{engine_path.name}.partial")
    try:
        with open(staged, "wb") as handle:
            handle.write(len(header).to_bytes(4, byteorder="little", signed=True))
            handle.write(header)
            handle.write(bytes(serialized))
        os.replace(staged, engine_path)
    finally:
        staged.unlink(missing_ok=True)
    return engine_path
