"""Multi-GPU readiness without GPUs: the DDP script Ultralytics generates works in a fresh process,
and a YOLO-LAT model trains under torch.distributed (gloo, 2 CPU processes, DistributedDataParallel).
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import rel_err
from test_models_train import TRAIN_ARGS, write_tiny_dataset
from ultralytics.nn.tasks import DetectionModel
from ultralytics.utils.dist import ddp_cleanup, generate_ddp_file

from yolo_lat.models import YOLOLATDetectionTrainer, resolve_model_yaml

REPO = Path(__file__).resolve().parents[1]


def _tensors(output) -> list[torch.Tensor]:
    if isinstance(output, torch.Tensor):
        return [output]
    values = output.values() if isinstance(output, dict) else output
    return [t for value in values for t in _tensors(value)]


def _environment() -> dict:
    python_path = os.pathsep.join([str(REPO), str(REPO / "tests"), os.environ.get("PYTHONPATH", "")])
    return {**os.environ, "YOLO_OFFLINE": "1", "PYTHONPATH": python_path, "OMP_NUM_THREADS": "1"}


@pytest.mark.slow
def test_generated_ddp_script_trains_in_a_fresh_process(tmp_path):
    """What each DDP worker does: unpickle the trainer class, args and model, then train.

    The generated script only imports Ultralytics; the YOLO-LAT trainer and blocks must come back
    through unpickling (importable module paths), and the shim must be active in that process.
    """
    data = write_tiny_dataset(tmp_path / "data")
    overrides = {"model": "yolo-lat-n.yaml", "data": str(data), "project": str(tmp_path), "name": "ddp"}
    trainer = YOLOLATDetectionTrainer(overrides={**TRAIN_ARGS, **overrides, "plots": False})
    script = generate_ddp_file(trainer)
    try:
        source = Path(script).read_text()
        assert "import yolo_lat" not in source and "trainer.train()" in source
        state = torch.load(Path(script).with_suffix(".pt"), map_location="cpu", weights_only=False)
        assert state["trainer"] is YOLOLATDetectionTrainer and state["model"] == "yolo-lat-n.yaml"
        completed = subprocess.run(
            [sys.executable, script], capture_output=True, text=True, env=_environment(), cwd=tmp_path, timeout=600
        )
        assert completed.returncode == 0, completed.stderr[-3000:]
    finally:
        ddp_cleanup(trainer, script)
    assert not Path(script).exists()
    best = torch.load(Path(trainer.save_dir) / "weights" / "best.pt", map_location="cpu", weights_only=False)
    assert best["model"].yaml["yaml_file"] == "yolo-lat-n.yaml"
    assert any(type(m).__name__ == "C2fELA" for m in best["model"].modules())


_DDP_WORKER = """
import sys
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from ultralytics.nn.tasks import DetectionModel

from yolo_lat.models import resolve_model_yaml


def tensors(output):
    if isinstance(output, torch.Tensor):
        return [output]
    values = output.values() if isinstance(output, dict) else output
    return [t for value in values for t in tensors(value)]


dist.init_process_group("gloo")
rank = dist.get_rank()
torch.manual_seed(0)
model = DistributedDataParallel(DetectionModel(resolve_model_yaml("yolo-lat-n.yaml"), nc=2, verbose=False))
torch.manual_seed(100 + rank)  # each rank gets its own images, as a DistributedSampler would give
images = torch.rand(2, 3, 64, 64)
output = model(images)
sum(t.square().mean() for t in tensors(output)).backward()
grads = torch.cat([p.grad.flatten() for p in model.module.parameters()])
torch.save({"grads": grads, "images": images}, f"{sys.argv[1]}/rank{rank}.pt")
dist.destroy_process_group()
"""


@pytest.mark.slow
def test_distributed_data_parallel_gloo_two_processes(tmp_path):
    worker = tmp_path / "worker.py"
    worker.write_text(_DDP_WORKER)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(worker)]
    completed = subprocess.run(
        [*command, str(tmp_path)], capture_output=True, text=True, env=_environment(), cwd=tmp_path, timeout=600
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    ranks = [torch.load(tmp_path / f"rank{rank}.pt") for rank in (0, 1)]
    assert not torch.equal(ranks[0]["images"], ranks[1]["images"])
    # DDP all-reduces: both ranks hold the same averaged gradient ...
    assert torch.allclose(ranks[0]["grads"], ranks[1]["grads"], rtol=0, atol=1e-7)
    # ... equal to the mean of the gradients each rank's images give in a single process
    torch.manual_seed(0)
    model = DetectionModel(resolve_model_yaml("yolo-lat-n.yaml"), nc=2, verbose=False)
    expected = []
    for rank in ranks:
        model.zero_grad()
        output = model(rank["images"])
        sum(t.square().mean() for t in _tensors(output)).backward()
        expected.append(torch.cat([p.grad.flatten() for p in model.parameters()]))
    average = (expected[0] + expected[1]) / 2
    assert rel_err(ranks[0]["grads"], average) < 1e-6  # measured 0.0: all-reduce of two, halved, is exact here
    assert (ranks[0]["grads"] != 0).float().mean() > 0.5  # the loss reaches most of the network
