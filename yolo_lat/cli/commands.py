"""The table of every ``yolo-lat`` command: one :class:`Command` tree, read by the dispatcher and the help.

A leaf names its handler (``"module:function"``, called with the parsed arguments as a dict) and
its arguments: either an argument table (``"module:NAME_DEFAULTS"``, documented by ``NAME_DOCS``
in the same module) or Ultralytics' settings plus yolo-lat's ``extra`` keys (model commands). A
group lists its subcommands. Handlers and tables are named, not imported, so that ``yolo-lat
--help`` or a typo answers without loading torch or Ultralytics.

Example:
    >>> [command.name for command in COMMANDS.children]
    ['train', 'val', 'predict', 'export', 'info', 'convert', 'benchmark', 'data', 'text', 'demo']
    >>> COMMANDS.child("benchmark").child("decode").handler
    'yolo_lat.bench.decode:command'
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True, eq=False)
class Command:
    """One node of the command table.

    Attributes:
        name: the word that selects it (``train``, ``decode``).
        summary: one line, listed in its parent's help.
        handler: leaf: ``"module:function"`` taking the parsed arguments dict, returning an exit
            status (``None`` means 0).
        arguments: leaf: ``"module:NAME_DEFAULTS"``, its ``key -> default`` table (``NAME_DOCS`` in the
            same module documents it); empty when ``ultralytics`` is set.
        ultralytics: leaf: arguments are Ultralytics settings (plus ``extra``), checked by Ultralytics.
        extra: yolo-lat keys of a model command beyond Ultralytics' (``key -> help``).
        about: a longer description for its own help (default: ``summary``).
        children: group: its subcommands.
        fallback: group: the subcommand run when the first word is already ``key=value``.
        examples: command lines shown in its help.
    """

    name: str
    summary: str
    handler: str = ""
    arguments: str = ""
    ultralytics: bool = False
    extra: Mapping[str, str] = field(default_factory=dict)
    about: str = ""
    children: tuple[Command, ...] = ()
    fallback: str = ""
    examples: tuple[str, ...] = ()

    def child(self, name: str) -> Command | None:
        """The subcommand called ``name``, or None."""
        return next((c for c in self.children if c.name == name), None)


def _model(name: str, summary: str, extra: Mapping[str, str] | None = None) -> Command:
    return Command(name, summary, handler=f"yolo_lat.cli.model:{name}", ultralytics=True, extra=extra or {})


def _table(name: str, summary: str, module: str, prefix: str = "", about: str = "") -> Command:
    return Command(name, summary, handler=f"{module}:{name}", arguments=f"{module}:{prefix}DEFAULTS", about=about)


def _bench(name: str, summary: str, about: str) -> Command:
    module = f"yolo_lat.bench.{name}"
    return Command(name, summary, handler=f"{module}:command", arguments=f"{module}:DEFAULTS", about=about)


EXPORT_EXTRA = {
    "ela_op": "standard (ELA in standard ONNX ops) or custom (one yolo_lat::ELA node + local function)",
    "calibration": "int8 only: image folder or dataset YAML for calibration (default: the data= setting)",
    "plugin": "engine with ela_op=custom: aot (ELA kernel compiled into the engine, no Python) or jit",
}

BENCHMARK = Command(
    "benchmark",
    "speed/size/accuracy: models, attention, decode, mqar, GPU kernels",
    fallback="models",  # `yolo-lat benchmark models=...` is the model benchmark
    children=(
        _bench(
            "models",
            "YOLO-LAT vs YOLO12 vs YOLO26: latency, FPS, params, FLOPs, mAP",
            "Model benchmark: YOLO-LAT vs YOLO12 vs YOLO26 side by side, every backend, tables and plots.",
        ),
        _bench(
            "accuracy",
            "train models with one recipe and seeds; mAP vs latency and parameters",
            "Accuracy benchmark: train every model with the same recipe and seeds, validate, time inference.",
        ),
        _bench(
            "ablate",
            "mAP of a trained model with each attention block removed in turn",
            "Attention ablation: mAP of a trained model with each attention block's contribution removed.",
        ),
        _bench(
            "attention",
            "ELA vs naive reference vs softmax SDPA over sequence length",
            "Attention benchmark: ELA vs the naive L x L reference vs softmax SDPA, time and peak memory.",
        ),
        _bench(
            "decode",
            "text models: per-token decode latency, state vs KV-cache memory",
            "Decode benchmark: per-token latency and state vs KV-cache memory, ELA-GPT vs its softmax twin.",
        ),
        _bench(
            "mqar",
            "text models: multi-query associative recall per kernel vs softmax",
            "Multi-query associative recall (MQAR): can the model look a key up in its context?",
        ),
        _bench(
            "curves",
            "text models: training curves, ELA vs softmax per Hyper-Link / lobe variant",
            "Training and validation loss curves of ELA-GPT vs its softmax twin, per layer variant.",
        ),
        _bench(
            "kernels",
            "GPU: fused ELA kernels vs torch ELA, SDPA and fla; stages, launch settings",
            "Fused ELA kernels on a GPU vs plain-PyTorch ELA, SDPA and fla: time, bandwidth, stages, settings.",
        ),
        _bench(
            "launch_overhead",
            "host-side cost of eager fused-op calls, no GPU needed",
            "Host (Python) side of eager fused-op calls: kernels built for sm_90, Triton's C launcher stubbed.",
        ),
        _bench(
            "compile_check",
            "compile every fused kernel for sm_90 without a GPU; registers, IR costs",
            "Compile every fused ELA kernel for a Hopper GPU (sm_90) on a machine without one.",
        ),
        _bench(
            "report",
            "build docs/benchmarks.md from the committed JSON in benchmarks/results",
            "Build docs/benchmarks.md from the JSON committed under benchmarks/results/ (nothing is measured).",
        ),
    ),
)

DATA = Command(
    "data",
    "dataset tools: synth (embedded dataset), check, download",
    children=(
        _table(
            "synth",
            "generate the embedded synthetic detection dataset",
            "yolo_lat.datasets.cli",
            "SYNTH_",
            "Generate the embedded synthetic detection dataset (YOLO layout + COCO JSON for val).",
        ),
        _table(
            "check",
            "validate a dataset YAML and its images/labels",
            "yolo_lat.datasets.cli",
            "CHECK_",
            "Validate a dataset YAML, its images and labels; every problem names the file (and line).",
        ),
        _table(
            "download",
            "run a dataset YAML's download recipe (needs internet)",
            "yolo_lat.datasets.cli",
            "DOWNLOAD_",
            "Download a dataset with the recipe in its YAML (needs internet; refused when YOLO_OFFLINE is set).",
        ),
    ),
)

TEXT = Command(
    "text",
    "ELA text models: train, generate, experts",
    children=(
        Command(
            "train",
            "train or resume an ELA-GPT text model",
            handler="yolo_lat.text.cli:train",
            arguments="yolo_lat.text.train:DEFAULTS",
            about="Train (or resume) an ELA-GPT on a text file; checkpoints under project/name.",
        ),
        _table(
            "generate",
            "continue a prompt with a trained model",
            "yolo_lat.text.cli",
            "GENERATE_",
            "Continue a prompt with a trained model (O(1) per token for ELA).",
        ),
        _table(
            "experts",
            "list the tokens nearest each expert's label vector",
            "yolo_lat.text.cli",
            "EXPERTS_",
            "List, per expert, the tokens whose embeddings are nearest its label vector.",
        ),
    ),
    examples=(
        "yolo-lat text train                          # small ELA-GPT on the embedded corpus, < 1 min on CPU",
        "yolo-lat text train data=book.txt steps=2000 d_model=256 n_layers=6 n_heads=8",
        "yolo-lat text train resume=True steps=400    # continue the latest run up to 400 steps",
        'yolo-lat text generate prompt="The lamp" max_new_tokens=200 temperature=0.8 top_k=40',
        "yolo-lat text experts top=12",
    ),
)

#: The root of the table: ``yolo-lat MODE ...``.
COMMANDS = Command(
    "yolo-lat",
    "",
    about="YOLO-LAT detectors with Exact Linear Attention (ELA), and ELA text models.",
    children=(
        _model("train", "train a detector (Ultralytics train settings)"),
        _model("val", "validate a detector, mAP table"),
        _model("predict", "detect objects in images/videos"),
        _model("export", "export to ONNX (standard or custom ELA op) or a TensorRT engine", EXPORT_EXTRA),
        _model("info", "layers, parameters and GFLOPs of a model", {"detailed": "list every layer (True/False)"}),
        _table(
            "convert",
            "convert a YOLO12 checkpoint to its yolo12-ela twin (area attention -> ELA)",
            "yolo_lat.cli.convert",
            "CONVERT_",
            "Convert a trained YOLO12 checkpoint into a yolo12-ela checkpoint; mAP before/after with data=.",
        ),
        BENCHMARK,
        DATA,
        TEXT,
        Command(
            "demo",
            "the whole pipeline on the embedded dataset, offline (make demo)",
            handler="yolo_lat.demo:command",
            arguments="yolo_lat.demo:DEFAULTS",
            about="The whole product on the embedded dataset, offline, on a CPU (make demo).",
        ),
    ),
    examples=(
        "yolo-lat train model=yolo-lat-n.yaml data=coco.yaml epochs=300 imgsz=640 batch=64 device=0",
        "yolo-lat train data=synth epochs=3 imgsz=160            # the embedded synthetic dataset, offline",
        "yolo-lat val model=runs/detect/train/weights/best.pt data=synth",
        "yolo-lat predict model=runs/detect/train/weights/best.pt source=path/to/images",
        "yolo-lat export model=runs/detect/train/weights/best.pt format=onnx ela_op=custom dynamic=True",
        "yolo-lat benchmark models=yolo-lat-n,yolo12n,yolo26n imgsz=640 formats=pytorch,onnx",
        "yolo-lat data synth path=runs/data/shapes n=400 seed=0",
        "yolo-lat text train",
    ),
)
