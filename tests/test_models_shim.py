"""The registration shim: the tested Ultralytics range, registration on import, full YAML semantics, loud failure."""

import copy
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import ultralytics
from ultralytics.nn import tasks
from ultralytics.utils.ops import make_divisible

from yolo_lat.nn import C2PSAELA, YAML_BLOCKS, A2C2fELA, C2fELA, ELAAttention2d, ELABlock, SeparableConv, shim

REPO = Path(__file__).resolve().parents[1]


def test_pyproject_allows_the_tested_range_and_ci_tests_the_pinned_release():
    # If this fails, re-read ultralytics.nn.tasks.parse_model, check the AST edits in shim.py still
    # mean the same thing on the new release, then move TESTED_RANGE and pyproject.toml together.
    pyproject = (REPO / "pyproject.toml").read_text()
    assert f'"ultralytics{shim.TESTED_RANGE}"' in pyproject
    pinned = re.search(r"^ultralytics==(\S+)$", (REPO / "constraints.txt").read_text(), re.M)
    assert pinned and ultralytics.__version__ == pinned.group(1)


def test_import_yolo_lat_has_no_side_effects():
    probe = (
        "import sys; n = len(sys.meta_path); import yolo_lat, yolo_lat.ela, yolo_lat.settings; "
        "assert len(sys.meta_path) == n, 'import hook'; assert 'ultralytics' not in sys.modules, 'ultralytics'; "
        "import yolo_lat.text; assert 'ultralytics' not in sys.modules, 'text imports ultralytics'; print('clean')"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.strip() == "clean", result.stderr[-2000:]


def test_plain_ultralytics_gets_the_blocks_from_one_import(tmp_path):
    # the documented line for users of ultralytics.YOLO: `import yolo_lat.nn`
    script = (
        "from ultralytics import YOLO; from ultralytics.nn import tasks; "
        "assert not hasattr(tasks, 'C2fELA'); import yolo_lat.nn; from yolo_lat.cfg import CFG_DIR; "
        "model = YOLO(str(CFG_DIR / 'yolo-lat-pico.yaml')); print(sum(p.numel() for p in model.model.parameters()))"
    )
    env = {**os.environ, "YOLO_OFFLINE": "1"}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert int(result.stdout.split()[-1]) > 100_000


def test_shim_is_installed_on_import():
    assert shim.is_installed()
    assert tasks.parse_model.__wrapped__.__module__ == "ultralytics.nn.tasks"
    for block in YAML_BLOCKS:
        assert getattr(tasks, block.__name__) is block
    shim.install()  # idempotent: no double patching
    assert not getattr(tasks.parse_model.__wrapped__, "__yolo_lat_shim__", False)


FIRST_IMPORTS = [
    "from yolo_lat.nn import C2fELA",
    "import yolo_lat.nn.attention2d",
    "from yolo_lat.models import YOLOLAT",
    "from yolo_lat.nn.shim import install",
    "import yolo_lat; import ultralytics",
    "import ultralytics; import yolo_lat",
    "from yolo_lat.export import export",
    "from yolo_lat.models.trainer import YOLOLATDetectionTrainer",  # what Ultralytics' DDP script imports
    "import yolo_lat; yolo_lat.YOLOLAT",
]


@pytest.mark.parametrize("statement", FIRST_IMPORTS)
def test_any_first_import_registers_the_blocks(statement):
    # each in a fresh interpreter, as a user's script starts: every import order ends with the blocks
    # registered and no circular-import error
    check = (  # builds first: registration must not wait for a later import of yolo_lat.nn
        "from yolo_lat.models import YOLOLAT; model = YOLOLAT('yolo-lat-pico.yaml').model; "
        "from ultralytics.nn import tasks; from yolo_lat.nn import shim; from yolo_lat.nn import C2fELA; "
        "assert shim.is_installed() and tasks.C2fELA is C2fELA; "
        "print(sum(p.numel() for p in model.parameters()))"
    )
    env = {**os.environ, "YOLO_OFFLINE": "1"}
    result = subprocess.run([sys.executable, "-c", f"{statement}; {check}"], capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    assert int(result.stdout.split()[-1]) > 100_000  # the pico detector was built from its YAML


def test_blocks_are_registered_for_weights_only_loading():
    safe = set(torch.serialization.get_safe_globals())
    assert {*YAML_BLOCKS, ELABlock, ELAAttention2d} <= safe


def _model_dict(scale: str) -> dict:
    return {
        "nc": 3,
        "scales": {"small": [0.5, 0.25, 1024], "big": [1.0, 1.0, 256]},
        "scale": scale,
        "backbone": [
            [-1, 1, "Conv", [64, 3, 2]],
            [-1, 4, "C2fELA", [512]],
            [-1, 1, "SeparableConv", [1024, 3, 2]],
            [-1, 3, "C2PSAELA", [1024]],
            [-1, 4, "A2C2fELA", [1024, True, 1]],
        ],
        "head": [[[4], 1, "Detect", ["nc"]]],
    }


@pytest.mark.parametrize(
    ("scale", "depth", "width", "max_channels"), [("small", 0.5, 0.25, 1024), ("big", 1.0, 1.0, 256)]
)
def test_yaml_rows_get_width_depth_and_max_channels(scale, depth, width, max_channels):
    layers, _ = tasks.parse_model(copy.deepcopy(_model_dict(scale)), ch=3, verbose=False)

    def channels(c2):
        return make_divisible(min(c2, max_channels) * width, 8)

    c2fela, separable, c2psaela, a2c2fela = layers[1], layers[2], layers[3], layers[4]
    assert isinstance(c2fela, C2fELA) and c2fela.cv2.conv.out_channels == channels(512)
    assert c2fela.cv1.conv.in_channels == channels(64)  # c1 from the previous row
    assert len(c2fela.m) == max(round(4 * depth), 1)  # repeats scaled by depth, passed as n
    assert isinstance(separable, SeparableConv) and separable.pw.conv.out_channels == channels(1024)
    assert isinstance(c2psaela, C2PSAELA) and len(c2psaela.m) == max(round(3 * depth), 1)
    assert isinstance(a2c2fela, A2C2fELA) and len(a2c2fela.m) == max(round(4 * depth), 1)
    assert a2c2fela.cv2.conv.out_channels == channels(1024)


def test_a2c2f_twin_gets_a2c2f_treatment_at_scales_l_and_x():
    """YOLO12 appends (residual=True, mlp_ratio=1.2) to A2C2f at l/x; the twin must get the same."""
    rows = [[-1, 1, "Conv", [128, 3, 2]], [-1, 1, "A2C2fELA", [128, True, 1]]]
    for scale, residual in [("m", False), ("l", True), ("x", True)]:
        model_dict = {"nc": 1, "scales": {scale: [1.0, 1.0, 1024]}, "scale": scale, "backbone": rows, "head": []}
        layers, _ = tasks.parse_model(copy.deepcopy(model_dict), ch=3, verbose=False)
        twin = layers[1]
        assert (twin.gamma is not None) is residual
        assert twin.m[0][0].mlp[0].conv.out_channels == (int(64 * 1.2) if residual else 64 * 2)


def test_models_with_yolo_lat_blocks_get_the_current_detect_head():
    """Like C3k2/A2C2f, YOLO-LAT blocks mark a model as non-legacy (depthwise classification branch)."""
    model_dict = {
        "nc": 2,
        "backbone": [[-1, 1, "Conv", [32, 3, 2]], [-1, 1, "SeparableConv", [64, 3, 2]]],
        "head": [[[1], 1, "Detect", ["nc"]]],
    }
    layers, _ = tasks.parse_model(copy.deepcopy(model_dict), ch=3, verbose=False)
    assert type(layers[-1].cv3[0][0][0]).__name__ == "DWConv"
    plain = copy.deepcopy(model_dict)
    plain["backbone"][1] = [-1, 1, "Conv", [64, 3, 2]]
    layers, _ = tasks.parse_model(plain, ch=3, verbose=False)
    assert type(layers[-1].cv3[0][0]).__name__ == "Conv"  # legacy head without our blocks: shim is targeted


_ODD_PARSERS = {
    "sets are plain set literals": (
        "def parse_model(d, ch, verbose=True):\n    base_modules = {1}\n    repeat_modules = {2}\n",
        "base_modules is no longer a frozenset",
    ),
    "no A2C2f special case": (
        "def parse_model(d, ch, verbose=True):\n"
        "    base_modules = frozenset({1})\n    repeat_modules = frozenset({2})\n    m = 0\n"
        "    if m is C3k2:\n        legacy = False\n",
        "A2C2f special case",
    ),
    "not a plain function": ("import functools\n\n@functools.cache\ndef parse_model(d, ch):\n    pass\n", "plain"),
}


@pytest.mark.parametrize("case", list(_ODD_PARSERS))
def test_unexpected_parser_shape_fails_loudly(case, tmp_path, monkeypatch):
    source, message = _ODD_PARSERS[case]
    (tmp_path / "odd_parser.py").write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    import importlib

    module = importlib.import_module("odd_parser")
    try:
        function = getattr(module.parse_model, "__wrapped__", module.parse_model)
        with pytest.raises(shim.ShimError, match=message):
            shim._compile_patched(function, {})
    finally:
        del __import__("sys").modules["odd_parser"]
