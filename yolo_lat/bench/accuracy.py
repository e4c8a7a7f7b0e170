"""Accuracy benchmark: train every model with one recipe and several seeds, validate, time inference.

``yolo-lat benchmark accuracy models=yolo-lat-n,yolo12n,yolo26n,yolo12-ela-n data=synth epochs=30 imgsz=160 seeds=0,1``

Every model (a name such as ``yolo-lat-n`` or ``yolo26n``, or a model YAML; built from its YAML,
never from downloaded weights) is trained from scratch once per seed with the same recipe:
``epochs``, ``imgsz``, ``batch``, ``optimizer`` (Ultralytics' ``auto`` unless given),
``deterministic=True``, ``seed=<seed>``, no plots and, by default, ``val=False`` (Ultralytics then
validates the final epoch only, so ``best.pt`` holds the final weights: the weights are never
picked by their score on the set they are reported on). Runs go through ``YOLOLAT.train`` into
``<project>/<name>/<model>-s<seed>/`` in the order seed 0 of every model, then seed 1, ...; each
finished run is validated on the ``val`` split at the same ``imgsz`` and ``batch`` and gets a
record (``accuracy_run.json``: mAP50-95, mAP50, train seconds, parameters, its recipe) next to its
``weights/``.

Resuming (:mod:`yolo_lat.bench.accuracy_runs`): a run already recorded, or whose ``best.pt`` is a
finished training, is not trained again; an interrupted one is trained again from scratch; a
folder made with another recipe stops the run before any training, naming what differs.

Latency: one timing per model, the first seed's ``best.pt`` (denormals are flushed to zero, so the
trained weights do not change it; see :mod:`yolo_lat.bench.timing`),
exported to ONNX at ``latency_imgsz`` (batch 1, fp32) and run with ONNX Runtime on the CPU, every
model in interleaved rounds (as ``yolo-lat benchmark models`` times them), median after warm-up;
``latency_format=pytorch`` times the PyTorch forward pass instead. Parameters and GFLOPs are those
of the trained model (its head has the dataset's classes), GFLOPs at ``latency_imgsz``.

Outputs: ``<project>/<name>.json`` (settings, environment, per model: per-seed results, mean and
sample standard deviation over seeds, latency and its ratio to the first model, params, GFLOPs),
``<name>.md`` (the table) and ``<name>_latency.png`` / ``<name>_params.png`` (mAP50-95 against
latency and against parameters, one point per model, bars from the lowest to the highest seed).
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from yolo_lat.args import ArgumentError
from yolo_lat.bench import timing
from yolo_lat.bench.accuracy_report import markdown, write
from yolo_lat.bench.accuracy_runs import check_folder, recipe, run_one
from yolo_lat.bench.models import _gflops, _onnx_runner, _pytorch_runner, _versions, build
from yolo_lat.cli.model import prepare_data
from yolo_lat.models import YOLOLAT

DEFAULTS: dict[str, Any] = {
    "models": ["yolo-lat-n", "yolo12n", "yolo26n", "yolo12-ela-n"],
    "data": "synth",
    "epochs": 30,
    "imgsz": 160,
    "batch": 16,
    "seeds": [0, 1],
    "device": "cpu",
    "workers": 2,
    "optimizer": "auto",
    "lr0": 0.0,
    "val": False,
    "latency_imgsz": 640,
    "latency_format": "onnx",
    "latency_budget": 20.0,
    "latency_runs": 200,
    "project": "runs/benchmark",
    "name": "accuracy",
    "plots": True,
}
DOCS = {
    "models": "model names (yolo-lat-n, yolo12n, yolo26n, yolo12-ela-n, yolo-lat-pico, ...) or model YAML paths",
    "data": "dataset YAML, or synth (the embedded synthetic dataset)",
    "epochs": "training epochs of every run",
    "imgsz": "training and validation image size",
    "batch": "training and validation batch size",
    "seeds": "training seeds: every model is trained once per seed",
    "device": "training device: cpu or a CUDA index such as 0 (latency is always timed on the CPU)",
    "workers": "dataloader workers (not part of the recipe a finished run is checked against)",
    "optimizer": "Ultralytics optimizer (auto: Ultralytics picks it and its lr from the dataset and epochs)",
    "lr0": "initial learning rate (0: Ultralytics' default; ignored by optimizer=auto)",
    "val": "validate every epoch (False: the final epoch only, best.pt = the final weights)",
    "latency_imgsz": "image size of the latency timing",
    "latency_format": "onnx (ONNX Runtime, CPU) or pytorch (PyTorch forward pass, CPU)",
    "latency_budget": "seconds of interleaved latency timing",
    "latency_runs": "at most this many timing rounds",
    "project": "output folder",
    "name": "run name: runs in <project>/<name>/<model>-s<seed>/, results in <project>/<name>.json/.md/_*.png",
    "plots": "write the two PNG plots",
}

LATENCY_FORMATS = ("onnx", "pytorch")
_REFUSED_SUFFIXES = (".pt", ".pth", ".onnx", ".engine", ".torchscript")


def model_labels(models: list[Any]) -> dict[str, str]:
    """``label -> name`` for the ``models`` argument; the label names the run folders and table rows.

    Raises:
        ArgumentError: no model, a checkpoint or exported file (this benchmark trains from scratch),
            or two models with one label.

    Example:
        >>> model_labels(["yolo-lat-n", "cfg/mine-s.yaml"])
        {'yolo-lat-n': 'yolo-lat-n', 'mine-s': 'cfg/mine-s.yaml'}
    """
    names = [str(m) for m in models if str(m).strip()]
    if not names:
        raise ArgumentError("models: none given; name at least one model, e.g. models=yolo-lat-n,yolo26n")
    labels: dict[str, str] = {}
    for name in names:
        path = Path(name)
        if path.suffix.lower() in _REFUSED_SUFFIXES:
            raise ArgumentError(
                f"models: {name!r} is a trained or exported model; this benchmark trains every model from scratch, "
                "so give a model name (yolo12n) or a model YAML"
            )
        label = path.stem if path.suffix.lower() in (".yaml", ".yml") else name
        if label in labels:
            raise ArgumentError(f"models: {name!r} and {labels[label]!r} would share the run folder {label}-s<seed>")
        labels[label] = name
    return labels


def parse_seeds(seeds: list[Any]) -> list[int]:
    """The ``seeds`` argument as distinct integers >= 0, in the order given.

    Example:
        >>> parse_seeds([0, 1, 0])
        [0, 1]
    """
    given = [s for s in seeds if str(s).strip()]
    if not given:
        raise ArgumentError("seeds: none given; give at least one training seed, e.g. seeds=0,1")
    bad = [s for s in given if not isinstance(s, int) or isinstance(s, bool) or s < 0]
    if bad:
        raise ArgumentError(f"seeds: {bad[0]!r} is not a seed; expected integers >= 0, e.g. seeds=0,1")
    return list(dict.fromkeys(given))


def _check_numbers(settings: dict[str, Any]) -> None:
    for key in ("epochs", "imgsz", "batch", "latency_imgsz", "latency_runs"):
        if settings[key] < 1:
            raise ArgumentError(f"{key}={settings[key]}: expected an integer >= 1")
    if settings["workers"] < 0 or settings["lr0"] < 0 or settings["latency_budget"] < 0:
        raise ArgumentError("workers, lr0 and latency_budget must be >= 0")
    if settings["latency_format"] not in LATENCY_FORMATS:
        raise ArgumentError(f"latency_format={settings['latency_format']!r}: choose {' or '.join(LATENCY_FORMATS)}")


def _check_models(labels: dict[str, str], imgsz: int) -> None:
    """Build every model once (an unknown name fails here) and check ``imgsz`` can train it."""
    for name in labels.values():
        try:
            model = build(name)
        except (FileNotFoundError, ValueError) as err:
            raise ArgumentError(f"models: cannot build {name!r}: {' '.join(str(err).split())}") from None
        model.check_train(imgsz=imgsz)


def _data_yaml(data: str) -> str:
    try:
        return str(Path(prepare_data(str(data), "train", ["train", "val"])).resolve())
    except (FileNotFoundError, ValueError) as err:
        raise ArgumentError(f"data={data}: {err}") from None


def time_models(weights: dict[str, Path], settings: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Latency (CPU, interleaved rounds), params and GFLOPs at ``latency_imgsz`` of each model's weights.

    Args:
        weights: ``label -> best.pt`` (one checkpoint per model).
        settings: the benchmark settings (``latency_*`` keys).

    Returns:
        ``label -> {"params", "gflops", "status", "median_ms", "p90_ms", "runs"}`` (no times when the
        model could not be prepared; ``status`` then says why).
    """
    imgsz, fmt, cpu = settings["latency_imgsz"], settings["latency_format"], torch.device("cpu")
    rows: dict[str, dict[str, Any]] = {}
    calls = {}
    with tempfile.TemporaryDirectory(prefix="yolo_lat_accuracy_onnx_") as folder:
        for label, best in weights.items():
            rows[label] = {}
            try:
                yolo = YOLOLAT(str(best))
                rows[label].update(params=sum(p.numel() for p in yolo.model.parameters()))
                rows[label].update(gflops=_gflops(yolo.model, imgsz))
                if fmt == "onnx":
                    runner = _onnx_runner(yolo, label, imgsz, 1, cpu, False, "standard", Path(folder))
                else:
                    runner = _pytorch_runner(yolo, fmt, imgsz, 1, cpu, False, False)
                calls[label] = runner.call
                rows[label]["status"] = "ok"
            except Exception as err:  # a model that cannot be timed is reported, the others are timed
                rows[label]["status"] = f"failed: {type(err).__name__}: {' '.join(str(err).split())[:200]}"
        if calls:
            times = timing.interleaved_times(
                calls, cpu, warmup=2, max_repeats=settings["latency_runs"], budget_s=settings["latency_budget"]
            )
            for label in calls:
                rows[label].update(timing.summarize(times[label]))
    return rows


def _spread(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    return statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def summarize(labels: list[str], runs: list[dict[str, Any]], latency: dict[str, dict[str, Any]]) -> list[dict]:
    """One entry per model: its seeds' results, mean/std of mAP, latency and ratio to the first model."""
    base = latency.get(labels[0], {}).get("median_ms")
    out = []
    for label in labels:
        mine = sorted((r for r in runs if r["model"] == label), key=lambda r: r["seed"])
        map_mean, map_std = _spread([r["map50_95"] for r in mine])
        map50_mean, map50_std = _spread([r["map50"] for r in mine])
        train = [r["train_s"] for r in mine if r.get("train_s") is not None]
        lat = latency.get(label, {})
        out.append(
            {
                "model": label,
                "params": lat.get("params", mine[0]["params"]),
                "gflops": lat.get("gflops"),
                "latency_status": lat.get("status", "not timed"),
                "latency_ms": lat.get("median_ms"),
                "latency_p90_ms": lat.get("p90_ms"),
                "latency_runs": lat.get("runs"),
                "latency_ratio": lat["median_ms"] / base if base and lat.get("median_ms") else None,
                "map50_95_mean": map_mean,
                "map50_95_std": map_std,
                "map50_mean": map50_mean,
                "map50_std": map50_std,
                "train_s_mean": statistics.mean(train) if train else None,
                "seeds": [
                    {k: r.get(k) for k in ("seed", "map50_95", "map50", "train_s", "wall_s", "params", "weights")}
                    for r in mine
                ],
            }
        )
    return out


def _word(value: Any) -> str:
    return ",".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)


def run(settings: dict[str, Any]) -> dict[str, Any]:
    """Check everything, train what is missing, validate, time; returns the JSON record (see module doc)."""
    _check_numbers(settings)
    labels = model_labels(list(settings["models"]))
    seeds = parse_seeds(list(settings["seeds"]))
    _check_models(labels, settings["imgsz"])
    data_yaml = _data_yaml(settings["data"])
    root = Path(settings["project"]).resolve() / settings["name"]
    for seed in seeds:  # a folder made with another recipe stops the run here, before any training
        for label, name in labels.items():
            check_folder(root / f"{label}-s{seed}", recipe(settings, name, seed, data_yaml))
    runs = [run_one(label, name, seed, settings, data_yaml, root) for seed in seeds for label, name in labels.items()]
    first = {label: root / f"{label}-s{seeds[0]}" / "weights" / "best.pt" for label in labels}
    latency = time_models(first, settings)
    changed = [f"{k}={_word(v)}" for k, v in settings.items() if v != DEFAULTS[k]]
    fmt = settings["latency_format"]
    return {
        "benchmark": "accuracy",
        "command": " ".join(["yolo-lat benchmark accuracy", *changed]),
        "settings": {**settings, "models": list(labels.values()), "seeds": seeds, "data_yaml": data_yaml},
        "recipe": {
            "deterministic": True,
            "plots": False,
            "val_during_training": settings["val"],
            "best_pt": "the best epoch on the val split" if settings["val"] else "the final epoch's weights",
            "validation": f"best.pt on the val split, imgsz={settings['imgsz']}, batch={settings['batch']}",
            "train_s": "Ultralytics' training loop time (results.csv), without dataset caching and setup",
        },
        "latency_method": (
            "one timing per model (the first seed's best.pt; denormals are flushed to zero, so the trained weights "
            "do not change latency), "
            + ("exported to ONNX (standard ops), ONNX Runtime" if fmt == "onnx" else "PyTorch forward pass")
            + f" on the CPU, imgsz {settings['latency_imgsz']}, batch 1, fp32, no pre/post-processing; "
            f"2 warm-up calls per model, then interleaved rounds (at most {settings['latency_runs']}) for "
            f"{settings['latency_budget']} s, median"
        ),
        "environment": _versions(torch.device("cpu")),
        "created": time.strftime("%Y-%m-%d %H:%M:%S"),
        "models": summarize(list(labels), runs, latency),
    }


def command(settings: dict[str, Any]) -> int:
    """Handler of ``yolo-lat benchmark accuracy``: run, print the table, write JSON, Markdown and plots."""
    record = run(settings)
    print(markdown(record))
    for path in write(record, settings["project"], settings["name"], settings["plots"]):
        print(f"wrote {path}")
    return 0


__all__ = ["DEFAULTS", "DOCS", "command", "model_labels", "parse_seeds", "run", "summarize", "time_models"]
