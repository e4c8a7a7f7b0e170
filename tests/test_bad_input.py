"""Bad input and interrupted work in the detector CLI: each case is one line on stderr and exit status 2.

Finished runs given to resume, models that are no models (random bytes, a folder, empty or misspelt
YAMLs, a text-model checkpoint), image sizes and ONNX opsets at their floors, a killed export's
staging folder, the stripped-checkpoint log line, dataset errors' exit status, and torch's CPU
thread count after Ultralytics' device selection. The real CLI runs in subprocesses at tiny sizes.
"""

import dataclasses
import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import onnxruntime
import pytest
import torch
from ultralytics.utils import ASSETS, NUM_THREADS

from yolo_lat import demo
from yolo_lat.cfg import CFG_DIR
from yolo_lat.datasets.synth import generate
from yolo_lat.export.exporter import ELA_MIN_OPSET, MAX_OPSET
from yolo_lat.models import YOLOLAT
from yolo_lat.text.checkpoint import FORMAT, save_checkpoint
from yolo_lat.text.config import ELAGPTConfig
from yolo_lat.text.model import ELAGPT

pytestmark = pytest.mark.slow

ENV = {**os.environ, "YOLO_OFFLINE": "1", "MPLBACKEND": "Agg", "OMP_NUM_THREADS": "1"}
PICO_YAML = CFG_DIR / "yolo-lat-pico.yaml"


def cli(*args, cwd, timeout=600):
    return subprocess.run(
        [sys.executable, "-m", "yolo_lat.cli", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=ENV,
        cwd=cwd,
    )


def one_error_line(result) -> str:
    """The single ``yolo-lat: error:`` line of a run that must exit 2 without a traceback."""
    assert result.returncode == 2, result.stdout[-2000:] + result.stderr[-3000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("yolo-lat: error: ")]
    assert len(errors) == 1, result.stderr[-3000:]
    return errors[0].removeprefix("yolo-lat: error: ")


def tree(root: Path) -> dict[str, str]:
    """Every file under ``root`` with its content hash."""
    files = (p for p in root.rglob("*") if p.is_file())
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad_input")
    data = generate(root / "data", n_train=16, n_val=8, imgsz=64, seed=0, preview=False)
    return root, data


@pytest.fixture(scope="module")
def trained(workdir):
    """A finished 1-epoch yolo-lat-pico run at imgsz=64 (its smallest training size); the CLI's output too."""
    root, data = workdir
    result = cli(
        "train", "model=yolo-lat-pico.yaml", f"data={data}", "epochs=1", "imgsz=64", "batch=4", "workers=0",
        f"project={root}", "name=run", "exist_ok=True", "plots=False", cwd=root,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return root / "run" / "weights", result.stdout + result.stderr


# item 1: resuming a finished run


def test_resume_of_a_finished_run_is_refused_and_changes_nothing(workdir, trained, tmp_path):
    root, data = workdir
    weights, _ = trained
    last = weights / "last.pt"
    before = tree(root)
    result = cli("train", "resume=True", f"model={last}", cwd=tmp_path)
    assert one_error_line(result) == (
        f"{last}: this training run is finished (1 epoch), nothing to resume; to train further, start a new run "
        f"from its weights without resume: yolo-lat train model={last} data={data} epochs=N"
    )
    assert tree(root) == before and list(tmp_path.iterdir()) == []  # no new run, no download, nothing touched
    result = cli("train", "resume=True", "model=yolo-lat-pico.yaml", cwd=tmp_path)
    assert one_error_line(result) == (
        "resume=True continues an unfinished run: give its checkpoint, e.g. model=runs/detect/train/weights/last.pt"
    )
    assert list(tmp_path.iterdir()) == []


# item 3: models that are no models


def _text_checkpoint(path: Path) -> Path:
    config = ELAGPTConfig(d_model=16, n_layers=1, n_heads=2)
    record = {"format": FORMAT, "config": dataclasses.asdict(config), "model": ELAGPT(config).state_dict()}
    return save_checkpoint(record, path)


def _bad_model(tmp_path: Path, kind: str) -> Path:
    if kind == "random bytes":
        path = tmp_path / "x.pt"
        path.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    elif kind == "directory":
        path = tmp_path / "weights"
        path.mkdir()
    elif kind == "empty yaml":
        path = tmp_path / "empty.yaml"
        path.write_text("")
    elif kind == "unknown module":
        path = tmp_path / "typo.yaml"
        path.write_text(PICO_YAML.read_text().replace("C2PSAELA,", "C2PSAELAX,"))
    elif kind == "bad scale row":
        path = tmp_path / "mine-n.yaml"
        text = (CFG_DIR / "yolo-lat.yaml").read_text()
        path.write_text(text.replace("n: [0.50, 0.25, 1024]", "n: [0.50, abc, 1024]"))
    else:
        path = _text_checkpoint(tmp_path / "text_last.pt")
    return path


BAD_MODELS = {
    "random bytes": (
        "val",
        "{path}: not a PyTorch checkpoint: the file (4096 bytes) is empty, truncated or corrupted; give the .pt "
        "that yolo-lat train wrote (runs/detect/NAME/weights/best.pt)",
    ),
    "directory": (
        "predict",
        "model={path}: a directory, not a model; give a .pt checkpoint, a model .yaml or an exported model "
        "(.onnx, .engine, ... or an export folder such as best_openvino_model/)",
    ),
    "empty yaml": (
        "train",
        "{path}: empty model YAML; it needs backbone: and head: lists of [from, repeats, module, args] layers",
    ),
    "unknown module": ("info", "{path}: head layer 0: unknown module 'C2PSAELAX'. Did you mean 'C2PSAELA'?"),
    "bad scale row": (
        "train",
        "{path}: scales: n is [0.5, 'abc', 1024]; each scale is [depth, width, max_channels], three numbers",
    ),
    "text checkpoint": (
        "val",
        "{path}: an ELA text-model checkpoint (yolo-lat-text/1), not a detector; use it with 'yolo-lat text generate "
        "model={path}', or give the .pt that yolo-lat train wrote (runs/detect/NAME/weights/best.pt)",
    ),
}


@pytest.mark.parametrize("kind", list(BAD_MODELS))
def test_a_model_that_is_no_model_is_one_line_naming_the_file(kind, workdir, tmp_path):
    _, data = workdir
    path = _bad_model(tmp_path, kind)
    mode, expected = BAD_MODELS[kind]
    extra = [f"data={data}", "imgsz=64", "epochs=1"] if mode in ("train", "val") else []
    result = cli(mode, f"model={path}", *extra, cwd=tmp_path)
    assert one_error_line(result) == expected.format(path=path)
    assert not (tmp_path / "runs").exists()


# item 4: image sizes and ONNX opsets at their floors


@pytest.mark.parametrize("yaml_file", sorted(CFG_DIR.glob("*.yaml")), ids=lambda p: p.stem)
def test_smallest_image_size_trains_or_is_refused_with_the_floor(yaml_file, workdir, tmp_path):
    _, data = workdir
    model = "yolo-lat-pico.yaml" if yaml_file.stem == "yolo-lat-pico" else f"{yaml_file.stem}-n.yaml"
    common = [f"model={model}", f"data={data}", "epochs=1", "batch=4", "workers=0", "fraction=0.5", "plots=False"]
    common += [f"project={tmp_path}", "exist_ok=True"]
    result = cli("train", *common, "imgsz=32", "name=smallest", cwd=tmp_path)  # 32: no model trains smaller
    if result.returncode == 0:
        assert (tmp_path / "smallest" / "weights" / "last.pt").is_file()
        return
    message = one_error_line(result)
    assert message.startswith(f"imgsz=32 is too small to train {model}: at 32 its outputs (stride ")
    floor = int(message.rsplit("use imgsz=", 1)[1].split()[0])
    assert floor > 32
    result = cli("train", *common, f"imgsz={floor}", "name=floor", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]


def test_pico_floor_counts_multi_scale_and_nothing_is_written(tmp_path):
    result = cli("train", "model=yolo-lat-pico.yaml", "imgsz=64", "multi_scale=0.5", cwd=tmp_path)  # data=synth
    assert one_error_line(result) == (
        "imgsz=64 with multi_scale=0.5 (down to 32) is too small to train yolo-lat-pico.yaml: at 32 its outputs "
        "(stride 16) have 4 anchor points and its loss assigns each object the best 10; use imgsz=128 or more"
    )
    assert list(tmp_path.iterdir()) == []  # refused before the default dataset was generated


@pytest.mark.parametrize("ela_op", ["standard", "custom"])
def test_onnx_opset_floor_exports_and_runs_below_it_is_refused(ela_op, tmp_path):
    floor = ELA_MIN_OPSET[ela_op]
    assert floor == {"standard": 10, "custom": 15}[ela_op]
    args = ("export", "model=yolo-lat-pico.yaml", "imgsz=64", f"ela_op={ela_op}")
    message = one_error_line(cli(*args, f"opset={floor - 1}", cwd=tmp_path))
    assert message.startswith(f"opset={floor - 1}: ela_op={ela_op} needs opset {floor} or newer (")
    assert f"use opset={floor}..{MAX_OPSET}" in message
    assert one_error_line(cli(*args, f"opset={MAX_OPSET + 1}", cwd=tmp_path)) == (
        f"opset={MAX_OPSET + 1}: the installed torch exports ONNX opsets up to {MAX_OPSET}"
    )
    assert list(tmp_path.iterdir()) == []
    result = cli(*args, f"opset={floor}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"ela_op={ela_op}, opset {floor})" in result.stdout
    session = onnxruntime.InferenceSession(str(tmp_path / "yolo-lat-pico.onnx"), providers=["CPUExecutionProvider"])
    (output,) = session.run(None, {session.get_inputs()[0].name: np.zeros((1, 3, 64, 64), np.float32)})
    assert output.shape[0] == 1 and np.isfinite(output).all()


# item 6: litter and small inconsistencies


def test_killed_export_leaves_staging_that_the_next_export_removes(tmp_path):
    args = [sys.executable, "-m", "yolo_lat.cli", "export", "model=yolo-lat-pico.yaml", "imgsz=64"]
    process = subprocess.Popen(args, env=ENV, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not list(tmp_path.glob(".yolo-lat-pico*.export-*")) and time.time() < deadline:
        assert process.poll() is None, "the export ended before its staging folder was seen"
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
    (stale,) = tmp_path.glob(".yolo-lat-pico*.export-*")  # the litter of the killed export
    old_style = tmp_path / ".yolo-lat-pico.export-k2j4"  # what earlier versions left (no process id in the name)
    old_style.mkdir()
    running = tmp_path / f".yolo-lat-pico.onnx.export-{os.getpid()}-live"  # a live process's: kept
    running.mkdir()
    other = tmp_path / ".other.onnx.export-999999-x"  # another file's: not ours to remove
    other.mkdir()
    result = cli("export", "model=yolo-lat-pico.yaml", "imgsz=64", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "yolo-lat-pico.onnx").is_file()
    assert not stale.exists() and not old_style.exists()
    assert running.is_dir() and other.is_dir()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([running.name, other.name, "yolo-lat-pico.onnx"])


def test_training_log_names_the_stripped_checkpoints_that_exist(trained):
    weights, log = trained
    assert ".partial" not in log
    for name in ("last.pt", "best.pt"):
        assert f"Optimizer stripped from {weights / name} (" in log
        assert (weights / name).is_file()
    assert sorted(p.name for p in weights.iterdir()) == ["best.pt", "last.pt"]


def test_dataset_errors_exit_2_in_data_check_train_and_val(trained, tmp_path):
    weights, _ = trained
    bad = tmp_path / "bad.yaml"
    bad.write_text(f"path: {tmp_path}\ntrain: images/train\nnames: [a, b]\n")  # no 'val'
    check = cli("data", "check", f"data={bad}", cwd=tmp_path)
    assert check.returncode == 2 and "missing key 'val:'" in check.stdout
    for mode, model in (("train", "yolo-lat-pico.yaml"), ("val", weights / "best.pt")):
        message = one_error_line(cli(mode, f"model={model}", f"data={bad}", "imgsz=64", cwd=tmp_path))
        assert message == (
            f"{bad}: missing key 'val:' (required: train, val, and names or nc); "
            f"check the dataset with: yolo-lat data check data={bad}"
        )


# item 7: torch's CPU threads survive Ultralytics' device selection


def test_model_methods_keep_torch_threads(workdir, trained):
    _, data = workdir
    weights, _ = trained
    threads = NUM_THREADS + 1  # Ultralytics' device selection sets NUM_THREADS
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        model = YOLOLAT(str(weights / "best.pt"))
        model.predict(str(ASSETS / "bus.jpg"), imgsz=64, device="cpu", verbose=False)
        assert torch.get_num_threads() == threads
        list(model.predict(str(ASSETS / "bus.jpg"), imgsz=64, device="cpu", stream=True, verbose=False))
        assert torch.get_num_threads() == threads
        model.val(data=str(data), imgsz=64, batch=4, device="cpu", plots=False, verbose=False)
        assert torch.get_num_threads() == threads
        # the demo's benchmark step measures with the threads it was given, whatever was set before
        seen = []
        torch.set_num_threads(1)
        record = {"rows": []}
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(demo.bench, "run", lambda settings: seen.append(torch.get_num_threads()) or record)
            patch.setattr(demo.bench, "markdown", lambda record: "")
            patch.setattr(demo.bench, "write", lambda record, project, name: None)
            assert demo.benchmark(demo.DEFAULTS, weights, threads=threads) is record
        assert seen == [threads] and torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(previous)
