"""One run of ``yolo-lat benchmark accuracy``: a model trained with one seed, validated, recorded.

A run lives in ``<project>/<name>/<model>-s<seed>/`` (Ultralytics' training folder). When it has
been trained and validated, ``accuracy_run.json`` is written next to its ``weights/``: mAP50-95,
mAP50, train seconds, parameters and the recipe it was made with.

Resuming (:func:`check_folder`): a run whose record exists is not trained again, nor one whose
``weights/best.pt`` is a finished training (Ultralytics strips the optimizer at the end, setting
its epoch to -1); that one is validated and recorded. A run with neither (interrupted while
training) is deleted and trained again from scratch: with ``deterministic=True`` and its seed it
gives the same weights as an uninterrupted run, which Ultralytics' ``resume`` does not promise. A
folder holding a finished run made with another recipe is an error, so results of two recipes are
never mixed.
"""

from __future__ import annotations

import csv
import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from yolo_lat.args import ArgumentError
from yolo_lat.bench.models import build
from yolo_lat.bench.runner import write_json
from yolo_lat.models import YOLOLAT

#: The record written next to each finished run's ``weights/``.
RUN_RECORD = "accuracy_run.json"
#: What a run's checkpoint must share with the recipe to be reused (Ultralytics ``train_args`` keys).
CHECKPOINT_KEYS = ("epochs", "imgsz", "batch", "seed", "data")


def recipe(settings: dict[str, Any], name: str, seed: int, data_yaml: str) -> dict[str, Any]:
    """What makes two runs the same training; a finished run is reused only under the same recipe.

    Example:
        >>> settings = {"epochs": 30, "imgsz": 160, "batch": 16, "optimizer": "auto", "lr0": 0.0, "val": False}
        >>> sorted(recipe(settings, "yolo26n", 1, "/data/shapes/data.yaml"))  # doctest: +NORMALIZE_WHITESPACE
        ['batch', 'data', 'deterministic', 'epochs', 'imgsz', 'lr0', 'model', 'optimizer', 'seed', 'val']
    """
    keys = ("epochs", "imgsz", "batch", "optimizer", "lr0", "val")
    return {"model": name, "seed": seed, "data": data_yaml, "deterministic": True, **{k: settings[k] for k in keys}}


def _finished_checkpoint(best: Path) -> dict[str, Any] | None:
    """The ``train_args`` of a ``best.pt`` whose training finished (optimizer stripped), else None."""
    if not best.is_file():
        return None
    try:
        ckpt = YOLOLAT(str(best)).ckpt
    except ValueError:  # a checkpoint cut short: not finished
        return None
    return dict(ckpt.get("train_args") or {}) if ckpt.get("epoch") == -1 else None


def check_folder(folder: Path, wanted: dict[str, Any]) -> str:
    """What a run folder holds: ``record`` (done), ``weights`` (finished best.pt, no record yet) or ``train``.

    Args:
        folder: ``<project>/<name>/<model>-s<seed>``.
        wanted: the run's :func:`recipe`.

    Raises:
        ArgumentError: the folder holds a finished run made with another recipe (named key by key).
    """
    record_file = folder / RUN_RECORD
    if record_file.is_file():
        old = json.loads(record_file.read_text()).get("recipe", {})
        differ = {k: (old.get(k), v) for k, v in wanted.items() if old.get(k) != v}
    else:
        args = _finished_checkpoint(folder / "weights" / "best.pt")
        if args is None:
            return "train"
        differ = {k: (args.get(k), wanted[k]) for k in CHECKPOINT_KEYS if str(args.get(k)) != str(wanted[k])}
    if differ:
        what = ", ".join(f"{k}={old_value} (now {new})" for k, (old_value, new) in differ.items())
        raise ArgumentError(
            f"name: {folder} holds a finished run made with {what}; use another name= or delete that folder"
        )
    return "record" if record_file.is_file() else "weights"


def _loop_seconds(results_csv: Path) -> float | None:
    """Ultralytics' training-loop time (``time`` column of the last epoch in ``results.csv``)."""
    if not results_csv.is_file():
        return None
    with results_csv.open(newline="") as handle:
        rows = [{k.strip(): v for k, v in row.items()} for row in csv.DictReader(handle)]
    return float(rows[-1]["time"]) if rows and rows[-1].get("time") else None


def _train(name: str, seed: int, settings: dict[str, Any], data_yaml: str, folder: Path) -> float:
    """Train one run from scratch into ``folder``; returns the wall seconds of the training call."""
    optional = {"lr0": settings["lr0"]} if settings["lr0"] > 0 else {}
    started = time.perf_counter()
    build(name).train(
        data=data_yaml,
        epochs=settings["epochs"],
        imgsz=settings["imgsz"],
        batch=settings["batch"],
        device=str(settings["device"]),
        workers=settings["workers"],
        optimizer=settings["optimizer"],
        seed=seed,
        deterministic=True,
        val=settings["val"],
        plots=False,
        project=str(folder.parent.resolve()),
        name=folder.name,
        exist_ok=True,
        verbose=False,
        **optional,
    )
    return time.perf_counter() - started


def _validate(best: Path, settings: dict[str, Any], data_yaml: str) -> dict[str, Any]:
    """mAP50-95, mAP50 and parameter count of ``best`` on the ``val`` split (same imgsz and batch)."""
    model = YOLOLAT(str(best))
    params = sum(p.numel() for p in model.model.parameters())
    with tempfile.TemporaryDirectory(prefix="yolo_lat_accuracy_val_") as scratch:  # Ultralytics' val folder
        metrics = model.val(
            data=data_yaml,
            imgsz=settings["imgsz"],
            batch=settings["batch"],
            device=str(settings["device"]),
            split="val",
            plots=False,
            verbose=False,
            project=scratch,
            name="val",
            exist_ok=True,
        )
    return {"map50_95": float(metrics.box.map), "map50": float(metrics.box.map50), "params": int(params)}


def run_one(label: str, name: str, seed: int, settings: dict[str, Any], data_yaml: str, root: Path) -> dict[str, Any]:
    """Train (unless finished), validate and record one model/seed; returns its run record."""
    folder = root / f"{label}-s{seed}"
    wanted = recipe(settings, name, seed, data_yaml)
    state = check_folder(folder, wanted)
    if state == "record":
        print(f"yolo-lat: {label} seed {seed}: finished run found in {folder}, not trained again")
        return {**json.loads((folder / RUN_RECORD).read_text()), "reused": True}
    wall = None
    if state == "train":
        if folder.exists():
            print(f"yolo-lat: {label} seed {seed}: {folder} holds no finished run; training it again from scratch")
            shutil.rmtree(folder)
        print(f"yolo-lat: {label} seed {seed}: training into {folder}")
        wall = _train(name, seed, settings, data_yaml, folder)
    else:
        print(f"yolo-lat: {label} seed {seed}: finished weights found in {folder}, validating them")
    record = {
        "model": label,
        "seed": seed,
        **_validate(folder / "weights" / "best.pt", settings, data_yaml),
        "train_s": _loop_seconds(folder / "results.csv"),
        "wall_s": wall,
        "weights": str(folder / "weights" / "best.pt"),
        "recipe": wanted,
        "created": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    write_json(folder / RUN_RECORD, record)
    return {**record, "reused": False}


__all__ = ["CHECKPOINT_KEYS", "RUN_RECORD", "check_folder", "recipe", "run_one"]
