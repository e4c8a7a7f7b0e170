"""Model benchmark: YOLO-LAT vs YOLO12 vs YOLO26 side by side, every backend, tables and plots.

``yolo-lat benchmark models=yolo-lat-n,yolo12n,yolo26n imgsz=640,1280 batch=1 formats=pytorch,onnx``

Every model is built from its YAML (random weights, offline) or loaded from a checkpoint path, and
run with identical settings. Rows report params, GFLOPs at the row's image size, latency median and
p90 after warm-up, FPS (batch / median), peak memory and, with ``data=``, mAP50-95. Timing covers the
model's forward pass on a prepared input tensor only: pre-processing (letterbox, normalisation) and
post-processing (NMS / decoding) are not included. CPU rows are timed in interleaved rounds (model A,
B, C, A, B, C, ...) so machine drift hits every model alike: compare ratios within one run. On a
GPU, CUDA events time each call, and ``cuda_graph=True`` replays a captured CUDA graph (PyTorch).
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from yolo_lat.args import ArgumentError
from yolo_lat.bench import timing
from yolo_lat.bench.runner import write_json, write_text

DEFAULTS: dict[str, Any] = {
    "models": ["yolo-lat-n", "yolo12n", "yolo26n"],
    "imgsz": [640],
    "batch": [1],
    "formats": ["pytorch", "onnx"],
    "device": "cpu",
    "half": False,
    "data": "",
    "project": "runs/benchmark",
    "name": "models",
    "warmup": 2,
    "runs": 50,
    "budget": 3.0,
    "cuda_graph": True,
    "plots": True,
    "ela_op": "standard",
}
DOCS = {
    "models": "model names (yolo-lat-n, yolo12-ela-n, yolo-lat-pico, yolo12n, yolo26s, ...) or checkpoint/YAML paths",
    "imgsz": "square input sizes",
    "batch": "batch sizes",
    "formats": "pytorch, compile (torch.compile), onnx (ONNX Runtime), engine (TensorRT)",
    "device": "cpu or a CUDA index such as 0",
    "half": "fp16 (GPU only)",
    "data": "dataset YAML: also report mAP50-95 (pytorch and onnx rows)",
    "project": "output folder",
    "name": "run name (files: <project>/<name>.json/.md/_latency.png/_params.png)",
    "warmup": "warm-up calls before timing",
    "runs": "timed calls per model on a GPU (CPU: rounds until budget is spent, at most this many)",
    "budget": "CPU: seconds of interleaved timing per (format, imgsz, batch) group",
    "cuda_graph": "GPU pytorch/compile rows: capture a CUDA graph and time its replay",
    "plots": "write PNG plots",
    "ela_op": "ONNX form of ELA for onnx/engine rows: standard or custom",
}
FORMATS = ("pytorch", "compile", "onnx", "engine")


def build(name: str) -> Any:
    """A YOLOLAT (or YOLO) object for a model name or a checkpoint/YAML path, built offline."""
    from yolo_lat import YOLOLAT

    path = Path(name)
    if path.suffix in (".pt", ".yaml", ".yml", ".onnx", ".engine") or path.exists():
        return YOLOLAT(name)
    return YOLOLAT(f"{name}.yaml")


def _versions(device: torch.device) -> dict[str, str]:
    info = timing.environment(device)
    for module in ("ultralytics", "onnxruntime", "tensorrt", "triton"):
        try:
            info[module] = __import__(module).__version__
        except ImportError:
            info[module] = "not installed"
    return info


def _gflops(model: torch.nn.Module, imgsz: int) -> float:
    from ultralytics.utils.torch_utils import get_flops

    with contextlib.suppress(Exception):
        return float(get_flops(model, imgsz))
    return float("nan")


class _Runner:
    """One (model, format, imgsz, batch) callable, prepared once."""

    def __init__(self, call: Callable[[], object], memory: Callable[[], int] | None = None):
        self.call = call
        self.memory = memory


def _pytorch_runner(
    yolo: Any, fmt: str, imgsz: int, batch: int, device: torch.device, half: bool, graph: bool
) -> _Runner:
    import copy

    net = copy.deepcopy(yolo.model).to(device).eval()
    with contextlib.suppress(Exception):
        net = net.fuse(verbose=False)
    dtype = torch.float16 if half and device.type == "cuda" else torch.float32
    net = net.to(dtype)
    x = torch.rand(batch, 3, imgsz, imgsz, device=device, dtype=dtype)
    if fmt == "compile":
        net = torch.compile(net)

    def forward() -> object:
        with torch.inference_mode():
            return net(x)

    for _ in range(3):  # build anchors / compile before any capture
        forward()
    memory = lambda: timing.peak_memory_bytes(forward, device)  # noqa: E731 (a replay allocates nothing new)
    if graph and device.type == "cuda":
        torch.cuda.synchronize(device)
        cuda_graph = torch.cuda.CUDAGraph()
        with torch.inference_mode(), torch.cuda.graph(cuda_graph):
            net(x)
        return _Runner(cuda_graph.replay, memory)
    return _Runner(forward, memory)


def _onnx_runner(
    yolo: Any, name: str, imgsz: int, batch: int, device: torch.device, half: bool, ela_op: str, folder: Path
) -> _Runner:
    import numpy as np
    import onnxruntime as ort

    from yolo_lat.export import export

    target = folder / f"{Path(name).stem}_{imgsz}_b{batch}_{ela_op}.onnx"
    if not target.exists():
        export(
            yolo,
            format="onnx",
            imgsz=imgsz,
            batch=batch,
            half=half and device.type == "cuda",
            ela_op=ela_op,
            output=target,
            device=str(device.index if device.type == "cuda" else "cpu"),
            verbose=False,
        )
    providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if device.type == "cuda" else ["CPUExecutionProvider"]
    available = [p for p in providers if p in ort.get_available_providers()]
    options = timing.ort_session_options() if device.type == "cpu" else None
    session = ort.InferenceSession(str(target), options, providers=available)
    meta = session.get_inputs()[0]
    dtype = np.float16 if "float16" in meta.type else np.float32
    x = np.random.default_rng(0).random((batch, 3, imgsz, imgsz)).astype(dtype)
    return _Runner(lambda: session.run(None, {meta.name: x}))


def _engine_runner(
    yolo: Any, name: str, imgsz: int, batch: int, device: torch.device, half: bool, ela_op: str, folder: Path
) -> _Runner:
    if device.type != "cuda":
        raise RuntimeError("TensorRT engines need a CUDA device")
    from ultralytics.nn.autobackend import AutoBackend

    from yolo_lat.export import export

    target = folder / f"{Path(name).stem}_{imgsz}_b{batch}_{ela_op}{'_fp16' if half else ''}.engine"
    if not target.exists():
        export(
            yolo,
            format="engine",
            imgsz=imgsz,
            batch=batch,
            half=half,
            ela_op=ela_op,
            output=target,
            device=str(device.index or 0),
            verbose=False,
        )
    backend = AutoBackend(str(target), device=device, fp16=half)
    x = torch.rand(batch, 3, imgsz, imgsz, device=device, dtype=torch.float16 if half else torch.float32)
    return _Runner(lambda: backend(x))


def _mean_ap(yolo_or_path: Any, data: str, imgsz: int, batch: int, device: torch.device, half: bool) -> float:
    from yolo_lat import YOLOLAT

    model = YOLOLAT(yolo_or_path) if isinstance(yolo_or_path, (str, Path)) else yolo_or_path
    threads = torch.get_num_threads()  # Ultralytics' device selection changes it (see export/exporter.py)
    metrics = model.val(
        data=data,
        imgsz=imgsz,
        batch=max(batch, 1),
        device=str(device.index if device.type == "cuda" else "cpu"),
        half=half,
        plots=False,
        verbose=False,
    )
    torch.set_num_threads(threads)
    return float(metrics.box.map)


def run(settings: dict[str, Any]) -> dict[str, Any]:
    """Run the benchmark described by ``settings`` (see ``DEFAULTS``); returns the JSON record."""
    device = torch.device(f"cuda:{settings['device']}" if str(settings["device"]).isdigit() else settings["device"])
    half = bool(settings["half"]) and device.type == "cuda"
    for fmt in settings["formats"]:
        if fmt not in FORMATS:
            raise ArgumentError(f"formats: unknown format {fmt!r}; use {', '.join(FORMATS)}")
    folder = Path(settings["project"]) / f"{settings['name']}_files"
    folder.mkdir(parents=True, exist_ok=True)
    names = [str(m) for m in settings["models"]]
    models = {name: build(name) for name in names}
    rows: list[dict[str, Any]] = []
    for fmt in settings["formats"]:
        for imgsz in settings["imgsz"]:
            for batch in settings["batch"]:
                runners: dict[str, _Runner] = {}
                base = {"format": fmt, "imgsz": int(imgsz), "batch": int(batch)}
                group: list[dict[str, Any]] = []
                for name in names:
                    yolo = models[name]
                    row = {
                        "model": name,
                        **base,
                        "params_m": sum(p.numel() for p in yolo.model.parameters()) / 1e6,
                        "gflops": _gflops(yolo.model, int(imgsz)),
                    }
                    try:
                        if fmt in ("pytorch", "compile"):
                            runner = _pytorch_runner(
                                yolo, fmt, int(imgsz), int(batch), device, half, settings["cuda_graph"]
                            )
                        elif fmt == "onnx":
                            runner = _onnx_runner(
                                yolo, name, int(imgsz), int(batch), device, half, settings["ela_op"], folder
                            )
                        else:
                            runner = _engine_runner(
                                yolo, name, int(imgsz), int(batch), device, half, settings["ela_op"], folder
                            )
                        runners[name] = runner
                        row["status"] = "ok"
                    except Exception as err:  # a failed row is reported, the run goes on
                        row["status"] = f"failed: {type(err).__name__}: {' '.join(str(err).split())[:200]}"
                    group.append(row)
                if runners:
                    calls = {name: r.call for name, r in runners.items()}
                    if device.type == "cuda":
                        times = timing.interleaved_times(
                            calls,
                            device,
                            warmup=settings["warmup"],
                            min_repeats=settings["runs"],
                            max_repeats=settings["runs"],
                            budget_s=0,
                        )
                    else:
                        times = timing.interleaved_times(
                            calls,
                            device,
                            warmup=settings["warmup"],
                            max_repeats=settings["runs"],
                            budget_s=settings["budget"],
                        )
                    for row in group:
                        if row["model"] not in runners:
                            continue
                        stats = timing.summarize(times[row["model"]])
                        row.update(stats, fps=row["batch"] * 1e3 / stats["median_ms"])
                        memory = runners[row["model"]].memory
                        if memory is not None:
                            with contextlib.suppress(Exception):
                                row["peak_mib"] = memory() / 2**20
                if settings["data"] and fmt in ("pytorch", "onnx"):
                    for row in group:
                        if row["status"] != "ok":
                            continue
                        source = (
                            models[row["model"]]
                            if fmt == "pytorch"
                            else folder / f"{Path(row['model']).stem}_{imgsz}_b{batch}_{settings['ela_op']}.onnx"
                        )
                        try:
                            row["map50_95"] = _mean_ap(source, settings["data"], int(imgsz), int(batch), device, half)
                        except Exception as err:
                            row["map_status"] = f"failed: {type(err).__name__}: {err}"[:200]
                rows.extend(group)
                del runners
                if device.type == "cuda":
                    torch.cuda.empty_cache()
                progress = Path(settings["project"]) / f"{settings['name']}.partial.json"
                progress.write_text(json.dumps({"settings": settings, "rows": rows}, indent=1, default=str))
    return {
        "benchmark": "models",
        "settings": {**settings, "half": half},
        "environment": _versions(device),
        "method": (
            "forward pass on a prepared input only (no pre/post-processing); random weights unless a checkpoint "
            "is given; "
            + (
                f"CUDA events, {settings['warmup']} warm-up + {settings['runs']} timed calls per model, interleaved, "
                + ("CUDA-graph replay for pytorch/compile rows" if settings["cuda_graph"] else "no CUDA graphs")
                if device.type == "cuda"
                else f"CPU, {torch.get_num_threads()} threads, {settings['warmup']} warm-up calls per model, then "
                f"interleaved rounds across models (at most {settings['runs']}) until {settings['budget']} s per "
                "group, median of rounds, denormals flushed to zero"
            )
            + f"; precision {'fp16' if half else 'fp32'}"
        ),
        "created": time.strftime("%Y-%m-%d %H:%M:%S"),
        "rows": rows,
    }


def markdown(record: dict[str, Any]) -> str:
    """Markdown report of one record: method, environment, the table, ratios against the first model."""
    env = record["environment"]
    versions = ", ".join(f"{k} {v}" for k, v in env.items() if k not in ("device", "threads", "cpu", "gpu"))
    where = env.get("gpu") or env.get("cpu") or env.get("device")
    headers = [
        "model",
        "format",
        "imgsz",
        "batch",
        "params (M)",
        "GFLOPs",
        "median ms",
        "p90 ms",
        "FPS",
        "peak MiB",
        "mAP50-95",
        "status",
    ]
    body = []
    for r in record["rows"]:
        ok = r["status"] == "ok"
        body.append(
            [
                r["model"],
                r["format"],
                r["imgsz"],
                r["batch"],
                f"{r['params_m']:.2f}",
                f"{r['gflops']:.1f}" if not math.isnan(r["gflops"]) else "-",
                f"{r['median_ms']:.2f}" if ok else "-",
                f"{r['p90_ms']:.2f}" if ok else "-",
                f"{r['fps']:.1f}" if ok else "-",
                f"{r['peak_mib']:.0f}" if "peak_mib" in r else "-",
                f"{r['map50_95']:.3f}" if "map50_95" in r else "-",
                "ok" if ok else r["status"],
            ]
        )
    lines = [
        f"Device: {where} ({env['device']}); {versions}",
        f"Method: {record['method']}.",
        "",
        timing.format_table(headers, body),
    ]
    ratios = _ratios(record)
    if ratios:
        lines += ["", "Latency relative to the first model of each group (lower is faster):", "", ratios]
    return "\n".join(lines)


def _ratios(record: dict[str, Any]) -> str:
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for r in record["rows"]:
        if r["status"] == "ok":
            groups.setdefault((r["format"], r["imgsz"], r["batch"]), []).append(r)
    body = []
    for (fmt, imgsz, batch), rows in groups.items():
        if len(rows) < 2:
            continue
        first = rows[0]
        body.append([fmt, imgsz, batch, *(f"{r['model']} {r['median_ms'] / first['median_ms']:.2f}x" for r in rows)])
    if not body:
        return ""
    width = max(len(b) for b in body)
    body = [b + [""] * (width - len(b)) for b in body]
    return timing.format_table(["format", "imgsz", "batch", *(f"model {i + 1}" for i in range(width - 3))], body)


def plot(record: dict[str, Any], prefix: Path) -> list[Path]:
    """Latency vs resolution (log-log, one line per model and format) and params vs latency."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in record["rows"] if r["status"] == "ok"]
    if not rows:
        return []
    written = []
    fig, ax = plt.subplots(figsize=(7, 5))
    for (model, fmt, batch), pts in _series(rows).items():
        xs, ys = zip(*sorted(pts))
        ax.plot(xs, ys, marker="o", label=f"{model} {fmt} b{batch}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("image size (px, square)")
    ax.set_ylabel("latency (ms, median)")
    ax.set_title("Latency vs resolution (slope 2 = linear in pixels; 4 = quadratic attention)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    path = prefix.with_name(prefix.name + "_latency.png")
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    written.append(path)
    fig, ax = plt.subplots(figsize=(7, 5))
    largest = max(r["imgsz"] for r in rows)
    for r in rows:
        if r["imgsz"] == largest:
            ax.scatter(r["params_m"], r["median_ms"])
            ax.annotate(f"{r['model']} {r['format']}", (r["params_m"], r["median_ms"]), fontsize=7)
    ax.set_xlabel("parameters (M)")
    ax.set_ylabel(f"latency at {largest}px (ms)")
    ax.set_title("Parameters vs latency")
    ax.grid(True, alpha=0.3)
    path = prefix.with_name(prefix.name + "_params.png")
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    written.append(path)
    return written


def _series(rows: list[dict[str, Any]]) -> dict[tuple, list[tuple[int, float]]]:
    series: dict[tuple, list[tuple[int, float]]] = {}
    for r in rows:
        series.setdefault((r["model"], r["format"], r["batch"]), []).append((r["imgsz"], r["median_ms"]))
    return series


def write(record: dict[str, Any], project: str, name: str, plots: bool = True) -> list[Path]:
    """Write JSON, Markdown and plots under ``project``; JSON/Markdown go to a temporary name first."""
    out = Path(project)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    (out / f"{name}.partial.json").unlink(missing_ok=True)  # rows written while the run was going on
    written.append(write_json(out / f"{name}.json", record))
    written.append(write_text(out / f"{name}.md", markdown(record) + "\n"))
    if plots:
        written += plot(record, out / name)
    return written


def command(settings: dict[str, Any]) -> int:
    """Handler of ``yolo-lat benchmark models``: run with ``settings``, print the table, write JSON, Markdown, plots."""
    record = run(settings)
    print(markdown(record))
    for path in write(record, settings["project"], settings["name"], settings["plots"]):
        print(f"wrote {path}")
    return 0
