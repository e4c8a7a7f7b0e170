"""The ``yolo-lat`` command: ``yolo-lat MODE [SUBMODE] key=value ...``, a thin layer over the Python API.

Model modes (train, val, predict, export, info) take every Ultralytics setting and call the
corresponding :class:`~yolo_lat.YOLOLAT` method, as ``yolo`` does with ``YOLO``. Values are parsed
safely (:mod:`yolo_lat.args`, never ``eval``); a bad key or value is a one-line error naming it,
with the closest valid key, and exit status 2.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

from yolo_lat import __version__
from yolo_lat.args import ArgumentError, closest

Handler = Callable[[list[str]], int]

USAGE = """usage: yolo-lat MODE [SUBMODE] [key=value ...]
       yolo-lat --version | --help | MODE --help

YOLO-LAT detectors with Exact Linear Attention (ELA), and ELA text models.

modes:
{modes}

examples:
  yolo-lat train model=yolo-lat-n.yaml data=coco.yaml epochs=300 imgsz=640 batch=64 device=0
  yolo-lat train data=synth epochs=3 imgsz=160            # the embedded synthetic dataset, offline
  yolo-lat val model=runs/detect/train/weights/best.pt data=synth
  yolo-lat predict model=runs/detect/train/weights/best.pt source=path/to/images
  yolo-lat export model=runs/detect/train/weights/best.pt format=onnx ela_op=custom dynamic=True
  yolo-lat benchmark models=yolo-lat-n,yolo12n,yolo26n imgsz=640 formats=pytorch,onnx
  yolo-lat data synth path=runs/data/shapes n=400 seed=0
  yolo-lat text train
"""

#: yolo-lat's own keys per model mode, beyond Ultralytics' settings.
MODE_EXTRA: dict[str, dict[str, str]] = {
    "train": {},
    "val": {},
    "predict": {},
    "export": {
        "ela_op": "standard (ELA in standard ONNX ops) or custom (one yolo_lat::ELA node + local function)",
        "calibration": "int8 only: image folder or dataset YAML for calibration (default: the data= setting)",
        "plugin": "engine with ela_op=custom: aot (ELA kernel compiled into the engine, no Python) or jit",
    },
    "info": {"detailed": "list every layer (True/False)"},
}
MODEL_DEFAULTS = {"train": "yolo-lat-n.yaml", "info": "yolo-lat-n.yaml"}


def _model_mode(mode: str) -> Handler:
    def run(argv: list[str]) -> int:
        from yolo_lat.overrides import mode_help, parse_overrides

        extra = MODE_EXTRA[mode]
        if argv and argv[0] in ("-h", "--help", "help"):
            print(mode_help(mode, f"usage: yolo-lat {mode} model=... [key=value ...]", extra))
            return 0
        overrides = parse_overrides(mode, argv, extra)
        model = overrides.pop("model", None) or MODEL_DEFAULTS.get(mode)
        if model is None:
            raise ArgumentError(
                f"'yolo-lat {mode}' needs model=... (a .pt checkpoint, a model YAML or an exported file)"
            )
        from yolo_lat import modes

        modes.run(mode, str(model), overrides)
        return 0

    return run


def _submodes(name: str, table: dict[str, tuple[str, str]]) -> Handler:
    """A mode whose first word picks a submode implemented by ``module:function(argv) -> int``."""

    def run(argv: list[str]) -> int:
        listing = "\n".join(f"  {key:<10} {doc}" for key, (doc, _) in table.items())
        if not argv or argv[0] in ("-h", "--help", "help"):
            print(f"usage: yolo-lat {name} SUBMODE [key=value ...]   (SUBMODE --help for its arguments)\n")
            print(f"submodes:\n{listing}")
            return 0
        sub, rest = argv[0], argv[1:]
        if sub not in table:
            raise ArgumentError(f"unknown {name} submode '{sub}'.{closest(sub, table)} Choose from: {', '.join(table)}")
        import importlib

        module, function = table[sub][1].split(":")
        return getattr(importlib.import_module(module), function)(rest)

    return run


def _prefixed(prefix: list[str], handler_path: str) -> Handler:
    """A handler that calls ``module:function([*prefix, *argv])``."""

    def run(argv: list[str]) -> int:
        import importlib

        module, function = handler_path.split(":")
        return getattr(importlib.import_module(module), function)([*prefix, *argv])

    return run


BENCHMARKS = {
    "models": ("YOLO-LAT vs YOLO12 vs YOLO26: latency, FPS, params, FLOPs, mAP", "yolo_lat.bench.models:main"),
    "attention": ("ELA vs naive reference vs softmax SDPA over sequence length", "yolo_lat.bench.attention:main"),
    "decode": ("text models: per-token decode latency, state vs KV-cache memory", "yolo_lat.bench.decode:main"),
    "mqar": ("text models: multi-query associative recall per kernel vs softmax", "yolo_lat.bench.mqar:main"),
    "report": ("build benchmarks.md from the committed JSON in benchmarks/results", "yolo_lat.bench.report:main"),
}


def _benchmark(argv: list[str]) -> int:
    # `yolo-lat benchmark models=...` (no submode word) is the model benchmark, as in the examples
    if argv and "=" in argv[0]:
        return _submodes("benchmark", BENCHMARKS)(["models", *argv])
    return _submodes("benchmark", BENCHMARKS)(argv)


MODES: dict[str, tuple[str, Handler]] = {
    "train": ("train a detector (Ultralytics train settings)", _model_mode("train")),
    "val": ("validate a detector, mAP table", _model_mode("val")),
    "predict": ("detect objects in images/videos", _model_mode("predict")),
    "export": ("export to ONNX (standard or custom ELA op) or a TensorRT engine", _model_mode("export")),
    "info": ("layers, parameters and GFLOPs of a model", _model_mode("info")),
    "benchmark": ("speed/size/accuracy: models, attention, decode, mqar", _benchmark),
    "data": (
        "dataset tools: synth (embedded dataset), check, download",
        _submodes(
            "data",
            {
                "synth": ("generate the embedded synthetic detection dataset", "yolo_lat.datasets.cli:synth"),
                "check": ("validate a dataset YAML and its images/labels", "yolo_lat.datasets.cli:check"),
                "download": ("run a dataset YAML's download recipe (needs internet)", "yolo_lat.datasets.cli:download"),
            },
        ),
    ),
    "text": ("ELA text models: train, generate, experts", _prefixed([], "yolo_lat.text.cli:main")),
    "demo": ("the whole pipeline on the embedded dataset, offline (make demo)", _prefixed([], "yolo_lat.demo:main")),
}


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    listing = "\n".join(f"  {key:<10} {doc}" for key, (doc, _) in MODES.items())
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE.format(modes=listing))
        return 0
    if argv[0] in ("-V", "--version", "version"):
        print(f"yolo-lat {__version__}")
        return 0
    mode, rest = argv[0], argv[1:]
    if mode not in MODES:
        raise ArgumentError(f"unknown mode '{mode}'.{closest(mode, MODES)} Choose from: {', '.join(MODES)}")
    return MODES[mode][1](rest)


def entrypoint() -> None:
    """Console-script entry point: errors become one line on stderr and exit status 2."""
    try:
        status = main()
    except (ArgumentError, ValueError, FileNotFoundError) as err:
        print(f"yolo-lat: error: {err}", file=sys.stderr)
        status = 2
    except KeyboardInterrupt:
        status = 130
    sys.exit(status)


if __name__ == "__main__":
    entrypoint()
