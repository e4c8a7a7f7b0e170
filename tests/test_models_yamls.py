"""Every model YAML at every scale (as timm tests every registered model).

One test per model name builds it once and checks, in order: the ELA blocks are really there; the
YAML's params/GFLOPs comment is true; forward at imgsz 64 and 160 (train and eval mode) has no NaN;
backward reaches every parameter; ``fuse()`` keeps outputs. yolo12-ela is also compared with YOLO12
layer by layer. Building once per name keeps the x-scale models affordable on 2 CPU cores.
"""

import copy
import itertools
import re
from pathlib import Path

import pytest
import torch
from conftest import rel_err
from ultralytics.nn.modules.block import A2C2f, AAttn, ABlock
from ultralytics.utils.torch_utils import get_flops

from yolo_lat import YOLOLAT
from yolo_lat.cfg import CFG_DIR, list_model_yamls, model_names, model_scales
from yolo_lat.nn import A2C2fELA, ELAAttention2d, ELABlock

#: ELA attention layers each model must contain, per YAML (scale n counts; larger scales have more or as many).
MIN_ATTENTION_LAYERS = {"yolo-lat.yaml": 3, "yolo12-ela.yaml": 4, "yolo-lat-pico.yaml": 1}
_SUMMARY = re.compile(r"([\d,]+) parameters, [\d,]+ gradients, ([\d.]+) GFLOPs")


def _yaml_of(name: str) -> tuple[str, str]:
    """``yolo-lat-n.yaml`` -> (``yolo-lat.yaml``, ``n``); unscaled names -> (name, "")."""
    for file_name in list_model_yamls():
        stem = Path(file_name).stem
        for scale in model_scales(file_name):
            if name == f"{stem}-{scale}.yaml":
                return file_name, scale
    return name, ""


def _documented_summary(file_name: str, scale: str) -> tuple[int, float]:
    """(parameters, GFLOPs) from the YAML comment of that scale (or the file's summary line)."""
    for line in (CFG_DIR / file_name).read_text().splitlines():
        if (line.strip().startswith(f"{scale}:") if scale else "summary:" in line) and (match := _SUMMARY.search(line)):
            return int(match[1].replace(",", "")), float(match[2])
    raise AssertionError(f"{file_name} has no params/GFLOPs comment for scale {scale!r}")


def _tensors(output) -> list[torch.Tensor]:
    if isinstance(output, torch.Tensor):
        return [output]
    if isinstance(output, dict):
        output = list(output.values())
    return [t for item in output or [] for t in _tensors(item)]


def test_every_yaml_is_tested():
    assert set(MIN_ATTENTION_LAYERS) == set(list_model_yamls())
    assert len(model_names()) == 11  # yolo-lat n..x, yolo12-ela n..x, pico


@pytest.mark.parametrize("file_name", sorted(name for name in MIN_ATTENTION_LAYERS if model_scales(name)))
def test_documented_sizes_grow_strictly_with_scale(file_name):
    """Params and GFLOPs n < s < m < l < x (the comments are checked against real builds below)."""
    sizes = [_documented_summary(file_name, scale) for scale in model_scales(file_name)]
    assert model_scales(file_name) == ["n", "s", "m", "l", "x"]
    for smaller, larger in itertools.pairwise(sizes):
        assert smaller[0] < larger[0] and smaller[1] < larger[1], sizes


@pytest.mark.slow
@pytest.mark.parametrize("name", model_names())
def test_model(name):
    file_name, scale = _yaml_of(name)
    model = YOLOLAT(name).model
    assert model.yaml["scale"] == scale

    # the ELA blocks are really in the built model, with the kernel the YAML names (default hadamard_exp)
    attention = [m for m in model.modules() if isinstance(m, ELAAttention2d)]
    assert len(attention) >= MIN_ATTENTION_LAYERS[file_name]
    assert {m.kernel for m in attention} == {"hadamard_exp"}
    assert not any(isinstance(m, (AAttn, ABlock)) for m in model.modules())

    # the YAML comment is the truth (what model.info() prints at 640)
    parameters, gflops = _documented_summary(file_name, scale)
    assert sum(p.numel() for p in model.parameters()) == parameters
    assert get_flops(model, 640) == pytest.approx(gflops, abs=0.051)

    # forward at two sizes in train mode, backward reaches every parameter, nothing is NaN
    model.train()
    for imgsz in (64, 160):
        model.zero_grad()
        outputs = _tensors(model(torch.randn(2, 3, imgsz, imgsz)))
        assert outputs and all(torch.isfinite(t).all() for t in outputs)
        sum(t.float().square().mean() for t in outputs).backward()
        missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
        assert not missing, missing[:5]
        assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)

    # eval mode: detections, finite
    model.eval()
    x = torch.rand(1, 3, 160, 160)
    with torch.no_grad():
        predictions = model(x)[0]
    assert torch.isfinite(predictions).all()
    if model.end2end:
        assert predictions.shape == (1, 300, 6)  # NMS-free head: (boxes, score, class)
    else:
        assert predictions.shape[:2] == (1, 4 + model.yaml["nc"])

    # fuse() folds the BatchNorms and keeps the outputs (BN statistics warmed so it has work to do)
    for bn in model.modules():
        if isinstance(bn, torch.nn.BatchNorm2d):
            bn.momentum = 1.0
    model.train()
    with torch.no_grad():
        model(torch.rand(2, 3, 160, 160))
    model.eval()
    with torch.no_grad():
        expected = model(x)[0]
        fused = model.fuse(verbose=False)(x)[0]
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    assert rel_err(fused, expected) < 1e-3  # measured <= 2e-6 (box coordinates dominate the norm)

    if file_name == "yolo12-ela.yaml":
        _compare_with_yolo12(model_scale=scale, yolo12_ela=YOLOLAT(name).model)


def _compare_with_yolo12(model_scale: str, yolo12_ela: torch.nn.Module) -> None:
    """Layer by layer: same rows, same parameter counts; A2C2f(a2=True) <-> A2C2fELA; YOLO12 weights load."""
    yolo12 = YOLOLAT(f"yolo12{model_scale}.yaml").model
    assert len(yolo12.model) == len(yolo12_ela.model)
    swapped = []
    for theirs, ours in zip(yolo12.model, yolo12_ela.model):
        assert (theirs.f, theirs.np) == (ours.f, ours.np), (theirs.i, theirs.type, ours.type)
        if type(theirs) is not type(ours):
            assert (type(theirs), type(ours)) == (A2C2f, A2C2fELA)
            swapped.append(ours.i)
            assert sum(isinstance(m, ABlock) for m in theirs.modules()) == sum(
                isinstance(m, ELABlock) for m in ours.modules()
            )
    assert swapped == [6, 8]  # the two area-attention rows
    state = copy.deepcopy(yolo12.state_dict())
    assert yolo12_ela.load_state_dict(state, strict=True)
