"""Shared test settings: offline Ultralytics, deterministic seeds, quiet plotting."""

import os

os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

import pytest
import torch

#: ``--gpu-report PATH`` and the ``kernel_case`` fixture of the GPU kernel checks (tests/gpu_report.py).
pytest_plugins = ["gpu_report"]


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield


def rel_err(actual: torch.Tensor, expected: torch.Tensor) -> float:
    """||actual - expected|| / ||expected|| in float64."""
    actual, expected = actual.double(), expected.double()
    return ((actual - expected).norm() / expected.norm().clamp_min(1e-300)).item()


if os.environ.get("PYTEST_XDIST_WORKER"):
    # Each xdist worker gets one core: two workers with two threads each on two cores ran the model
    # tests ten times slower (measured: 636 s instead of 61 s for test_models_yamls).
    torch.set_num_threads(1)
