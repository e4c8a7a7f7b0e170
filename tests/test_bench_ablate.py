"""`yolo-lat benchmark ablate`: rows for every attention layer and for all of them, on checkpoints of
each family (yolo-lat, yolo12-ela, YOLO12, YOLO26) trained here for one epoch; the zeroing hook
changes the model's outputs, the residual passes its input through, and the hooks go away after."""

import json
import os
import subprocess
import sys

import cv2
import pytest
import torch
from detect_fixtures import tiny_data, train_tiny

from yolo_lat import YOLOLAT
from yolo_lat.args import ArgumentError
from yolo_lat.bench import report
from yolo_lat.bench.ablate import ATTENTION_TYPES, attention_layers, markdown, removed
from yolo_lat.cli import main
from yolo_lat.nn import ELAAttention2d, ELABlock

pytestmark = pytest.mark.slow

#: model -> (layer index, layer type, attention type, modules) of its attention layers, at scale n.
FAMILIES = {
    "yolo12-ela-n.yaml": [(6, "A2C2fELA", "ELAAttention2d", 4), (8, "A2C2fELA", "ELAAttention2d", 4)],
    "yolo12n.yaml": [(6, "A2C2f", "AAttn", 4), (8, "A2C2f", "AAttn", 4)],
    "yolo26n.yaml": [(10, "C2PSA", "Attention", 1), (22, "C3k2", "Attention", 1)],
}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return tiny_data(tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="module")
def pico(data, tmp_path_factory):
    return train_tiny("yolo-lat-pico.yaml", data, tmp_path_factory.mktemp("runs"))


def _described(model):
    return [(i, type(layer).__name__, type(m[0]).__name__, len(m)) for i, layer, m in attention_layers(model)]


@pytest.mark.parametrize("name", ["yolo-lat-n.yaml", "yolo-lat-pico.yaml", *FAMILIES])
def test_attention_layers_cover_every_attention_module_once(name):
    net = YOLOLAT(name).model
    found = [m for _, _, mods in attention_layers(net) for m in mods]
    every = [m for m in net.modules() if isinstance(m, ATTENTION_TYPES)]
    assert len({id(m) for m in found}) == len(found) == len(every) > 0
    assert {id(m) for m in found} == {id(m) for m in every}  # (none of these types nests another)
    if name.startswith("yolo-lat"):
        assert any(isinstance(m, ELAAttention2d) for m in found)
    else:
        assert _described(net) == FAMILIES[name]


def test_ablation_rows_files_and_table(pico, data, tmp_path, capsys):
    project = tmp_path / "out"
    assert main(["benchmark", "ablate", f"model={pico}", f"data={data}", "imgsz=64", f"project={project}"]) == 0
    record = json.loads((project / "ablate.json").read_text())
    model = YOLOLAT(str(pico)).model
    layers = attention_layers(model)
    rows = record["rows"]
    assert [r["layer"] for r in rows] == ["none", *(i for i, _, _ in layers), "all"]
    for row, (_, layer, mods) in zip(rows[1:-1], layers):
        assert row["module"] == type(layer).__name__ == "C2PSAELA"
        assert row["removed"] == f"{len(mods)} x ELAAttention2d"
        assert row["attention_params"] == sum(p.numel() for m in mods for p in m.parameters())
    assert rows[-1]["attention_params"] == rows[0]["attention_params"] == sum(r["attention_params"] for r in rows[1:-1])
    full = rows[0]["map50_95"]
    assert rows[0]["delta"] == 0.0
    for row in rows:
        assert 0.0 <= row["map50_95"] <= row["map50"] <= 1.0
        assert row["delta"] == pytest.approx(row["map50_95"] - full)
    assert record["parameters"] == sum(p.numel() for p in model.parameters())
    assert record["imgsz"] == 64 and "forward hook" in record["method"]
    assert (project / "ablate.md").read_text().strip() == markdown(record).strip()
    assert "attention removed" in capsys.readouterr().out
    page = report.build(project)
    assert "## Attention ablation: ablate" in page and f"`{record['command']}`" in page
    assert markdown(record).splitlines()[-1] in page


@pytest.mark.parametrize("name", ["yolo12-ela-n.yaml", "yolo12n.yaml", "yolo26n.yaml"])
def test_ablation_runs_on_each_family_checkpoint(name, data, tmp_path):
    best = train_tiny(name, data, tmp_path / "runs")
    project = tmp_path / "out"
    # no data= and no imgsz=: the checkpoint's training data and size
    assert main(["benchmark", "ablate", f"model={best}", f"project={project}", "name=a"]) == 0
    record = json.loads((project / "a.json").read_text())
    assert [r["layer"] for r in record["rows"]] == ["none", *(layer for layer, *_ in FAMILIES[name]), "all"]
    assert record["imgsz"] == 64 and record["data_yaml"] == str(data)


def test_zeroing_changes_outputs_passes_the_residual_and_is_undone(pico, data):
    net = YOLOLAT(str(pico)).model.float().eval()
    image = cv2.imread(str(next((data.parent / "images" / "val").iterdir())))
    x = torch.from_numpy(cv2.resize(image, (64, 64))[..., ::-1].copy()).permute(2, 0, 1)[None].float() / 255

    def outputs():
        with torch.no_grad():
            out = net(x)
        return out[0] if isinstance(out, (tuple, list)) else out

    before = outputs()
    modules = [m for _, _, mods in attention_layers(net) for m in mods]
    with removed(modules) as hook:
        ablated = outputs()
    assert hook.calls == len(modules)
    assert (ablated - before).abs().max() > 1e-4  # the attention contributed, and zeroing removed it
    assert torch.equal(outputs(), before)  # hooks gone: outputs restored exactly
    assert all(not m._forward_hooks for m in net.modules())

    block = ELABlock(32, num_heads=1).eval()  # residual: x + attn(x) with attn zeroed is x, then x + mlp(x)
    features = torch.randn(1, 32, 8, 8)
    with torch.no_grad(), removed([block.attn]):
        assert torch.allclose(block(features), features + block.mlp(features))


def test_ablation_refuses_missing_files_and_models_without_attention(tmp_path):
    with pytest.raises(ArgumentError, match=r"model=.*missing\.pt: no such file"):
        main(["benchmark", "ablate", f"model={tmp_path / 'missing.pt'}"])
    with pytest.raises(ArgumentError, match="model: give a trained checkpoint"):
        main(["benchmark", "ablate"])
    plain = tmp_path / "plain.pt"
    YOLOLAT("yolov8n.yaml").save(str(plain))  # a detector without attention
    env = {**os.environ, "YOLO_OFFLINE": "1", "MPLBACKEND": "Agg"}
    result = subprocess.run(
        [sys.executable, "-m", "yolo_lat.cli", "benchmark", "ablate", f"model={plain}", f"project={tmp_path}"],
        capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 2
    names = ", ".join(t.__name__ for t in ATTENTION_TYPES)
    assert f"model={plain}: no attention layers ({names}) in this model; nothing to ablate" in result.stderr
    assert not (tmp_path / "ablate.json").exists()
