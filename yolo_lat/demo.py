"""``yolo-lat demo`` (``make demo``): the whole product on the embedded dataset, offline, on a CPU.

Steps, each announced: generate the synthetic shapes dataset; train YOLO-LAT-n for a few epochs;
validate it (mAP table); predict on Ultralytics' ``bus.jpg`` and on a validation image, saving the
annotated images; export to ONNX (custom ``yolo_lat::ELA`` form) and predict with ONNX Runtime;
benchmark YOLO-LAT-n against YOLO12n and YOLO26n (CPU, interleaved). Sized to finish in under ten
minutes on two CPU cores; every output lands under ``project`` (default ``runs/demo``).

The benchmark measures with the machine's CPU threads (torch's count when the demo starts), whatever
the steps before it left: Ultralytics lowers the count for the whole process when it selects a
device, and sets ``OMP_NUM_THREADS=1`` when imported before torch.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch  # first: torch reads OMP_NUM_THREADS when imported, and importing Ultralytics sets it to 1
from ultralytics.utils import ASSETS

from yolo_lat.bench import models as bench
from yolo_lat.datasets.synth import ensure_dataset
from yolo_lat.models import YOLOLAT

DEFAULTS: dict[str, Any] = {
    "project": "runs/demo",
    "model": "yolo-lat-n.yaml",
    "images": 400,
    "epochs": 30,
    "imgsz": 128,
    "batch": 16,
    "device": "cpu",
    "benchmark": True,
    "seed": 0,
}
DOCS = {
    "project": "output folder",
    "model": "model to train",
    "images": "training images to generate (plus a quarter as many for validation)",
    "epochs": "training epochs",
    "imgsz": "training and validation image size",
    "batch": "batch size",
    "device": "cpu or a CUDA index",
    "benchmark": "finish with the latency benchmark against YOLO12n and YOLO26n",
    "seed": "dataset and training seed",
}


class _Steps:
    def __init__(self, total: int):
        self.total, self.index, self.started = total, 0, time.perf_counter()

    def __call__(self, text: str) -> None:
        self.index += 1
        elapsed = time.perf_counter() - self.started
        print(f"\n=== yolo-lat demo, step {self.index}/{self.total} ({elapsed:.0f} s so far): {text}", flush=True)


def benchmark(settings: dict[str, Any], project: Path, threads: int) -> dict[str, Any]:
    """The demo's benchmark step on ``threads`` CPU threads (the count is restored afterwards); returns its record.

    Args:
        settings: the demo settings (``device``).
        project: the demo's output folder (the benchmark writes ``benchmark.json``/``.md`` there).
        threads: torch CPU threads to measure with: the machine's, taken when the demo started.

    Example:
        >>> benchmark(DEFAULTS, Path("runs/demo"), threads=2)  # doctest: +SKIP
    """
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        record = bench.run(
            {
                **bench.DEFAULTS,
                "imgsz": [320, 640],
                "formats": ["pytorch", "onnx"],
                "budget": 4.0,
                "project": str(project),
                "name": "benchmark",
                "device": settings["device"],
            }
        )
    finally:
        torch.set_num_threads(before)
    print(bench.markdown(record))
    bench.write(record, str(project), "benchmark")
    return record


def run(settings: dict[str, Any]) -> dict[str, Any]:
    """Run the demo; returns a summary dict (paths and figures)."""
    threads = torch.get_num_threads()  # the machine's count (see the module docstring), for the benchmark step
    project = Path(settings["project"]).resolve()
    step = _Steps(6 if settings["benchmark"] else 5)
    summary: dict[str, Any] = {}

    step("generate the embedded synthetic dataset (six shape classes, clutter, occlusion)")
    data = ensure_dataset(
        project / "data",
        n_train=settings["images"],
        n_val=max(settings["images"] // 4, 8),
        imgsz=max(settings["imgsz"], 160),
        seed=settings["seed"],
    )
    print(f"dataset: {data} (preview: {data.parent / 'preview.png'})")

    step(f"train {settings['model']} for {settings['epochs']} epochs at imgsz {settings['imgsz']}")
    model = YOLOLAT(settings["model"])
    model.train(
        data=str(data),
        epochs=settings["epochs"],
        imgsz=settings["imgsz"],
        batch=settings["batch"],
        device=settings["device"],
        workers=2,
        seed=settings["seed"],
        optimizer="AdamW",
        lr0=0.003,
        warmup_epochs=1,
        close_mosaic=2,
        project=str(project),
        name="train",
        exist_ok=True,
        plots=True,
    )
    best = project / "train" / "weights" / "best.pt"
    summary["checkpoint"] = str(best)

    step("validate the trained model (mAP per class)")
    metrics = YOLOLAT(str(best)).val(
        data=str(data),
        imgsz=settings["imgsz"],
        batch=settings["batch"],
        device=settings["device"],
        project=str(project),
        name="val",
        exist_ok=True,
        plots=True,
    )
    summary["map50_95"], summary["map50"] = float(metrics.box.map), float(metrics.box.map50)

    step("predict on Ultralytics' bus.jpg and on a validation image; annotated images are saved")
    images = [str(ASSETS / "bus.jpg"), str(sorted((data.parent / "images" / "val").iterdir())[0])]
    for result in YOLOLAT(str(best)).predict(
        images,
        imgsz=settings["imgsz"],
        device=settings["device"],
        project=str(project),
        name="predict",
        exist_ok=True,
        save=True,
        verbose=False,
    ):
        saved = Path(result.save_dir) / Path(result.path).name
        print(f"{Path(result.path).name}: {len(result.boxes)} detections -> {saved}")
    summary["predictions"] = str(project / "predict")

    step("export to ONNX with one yolo_lat::ELA node per attention, then predict with ONNX Runtime")
    onnx_file = YOLOLAT(str(best)).export(
        format="onnx", imgsz=settings["imgsz"], ela_op="custom", output=str(project / "best.onnx")
    )
    results = YOLOLAT(onnx_file).predict(images[1], imgsz=settings["imgsz"], verbose=False)
    print(f"ONNX Runtime: {len(results[0].boxes)} detections on {Path(images[1]).name}")
    summary["onnx"] = onnx_file

    if settings["benchmark"]:
        step("benchmark YOLO-LAT-n vs YOLO12n vs YOLO26n (CPU, PyTorch and ONNX Runtime, interleaved)")
        benchmark(settings, project, threads)
    print(f"\n=== yolo-lat demo done in {time.perf_counter() - step.started:.0f} s; everything is in {project}")
    for key, value in summary.items():
        print(f"  {key}: {value}")
    return summary


def command(settings: dict[str, Any]) -> int:
    """Handler of ``yolo-lat demo``: :func:`run` with ``settings`` (:data:`DEFAULTS` with the given values)."""
    run(settings)
    return 0
