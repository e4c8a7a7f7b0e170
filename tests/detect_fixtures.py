"""Helpers for detector benchmark tests: a tiny synthetic dataset and a one-epoch checkpoint.

Imported by tests/test_bench_accuracy.py and tests/test_bench_ablate.py (not a conftest: only
the tests that ask for them pay for them).
"""

from __future__ import annotations

from pathlib import Path

from yolo_lat import YOLOLAT
from yolo_lat.datasets.synth import generate

#: Command-line words every tiny detector run shares (64 px, CPU, no dataloader workers).
TINY = ["imgsz=64", "batch=4", "workers=0", "device=cpu"]


def tiny_data(root: Path, n_train: int = 8, n_val: int = 4) -> Path:
    """The embedded synthetic dataset at 64 px with ``n_train``/``n_val`` images; returns its data YAML."""
    return generate(root, n_train=n_train, n_val=n_val, imgsz=64, seed=0, preview=False)


def train_tiny(model: str, data: Path, project: Path, seed: int = 0) -> Path:
    """Train ``model`` (a YAML name) for one epoch at 64 px on ``data``; returns its ``best.pt``."""
    YOLOLAT(model).train(
        data=str(data), epochs=1, imgsz=64, batch=4, workers=0, device="cpu", seed=seed, deterministic=True,
        plots=False, val=False, project=str(project.resolve()), name=Path(model).stem, exist_ok=True, verbose=False,
    )  # fmt: skip
    return project / Path(model).stem / "weights" / "best.pt"
