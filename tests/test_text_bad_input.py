"""Bad input to the text models: every number range-checked, devices checked, wrong or damaged checkpoints.

Command-line cases run the real ``yolo-lat`` in a subprocess and assert exit status 2 and the one
line on stderr; the same checks guard the Python API (``train``, ``generate``, ``pick_next_token``,
``load_model``), tested in-process.
"""

import os
import re
import subprocess
import sys

import pytest
import torch

from yolo_lat.cli import main
from yolo_lat.text import ELAGPT, ELAGPTConfig, generate, pick_next_token
from yolo_lat.text.checkpoint import load_model, read_checkpoint
from yolo_lat.text.checks import Limit, available_devices, check_device
from yolo_lat.text.train import train

TINY = dict(d_model=16, n_layers=1, n_heads=2, moe_experts=0, block=16, batch=2, val_every=1, val_batches=1)
TINY_ARGS = [f"{key}={value}" for key, value in TINY.items()]
HERE = ", ".join(available_devices())
#: What device=cuda:7 gets on this machine.
CUDA7 = (
    f"there is no CUDA device 7 (available here: {HERE})"
    if torch.cuda.is_available()
    else f"CUDA is not available on this machine; use device=cpu (available here: {HERE})"
)


def cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "YOLO_OFFLINE": "1", "MPLBACKEND": "Agg"}
    return subprocess.run(
        [sys.executable, "-m", "yolo_lat.cli", "text", *args], capture_output=True, text=True, timeout=300, env=env
    )


def assert_one_line_error(result: subprocess.CompletedProcess, message: str) -> None:
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines() == [f"yolo-lat: error: {message}"]
    assert "Traceback" not in result.stderr and not result.stdout


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A tiny trained text checkpoint (one step)."""
    project = tmp_path_factory.mktemp("text")
    return train(project=str(project), steps=1, progress=False, **TINY)["last"]


@pytest.mark.parametrize(
    ("argument", "message"),
    [
        ("top_k=-3", "top_k=-3: expected an integer >= 0"),
        ("temperature=nan", "temperature=nan: expected a finite number >= 0"),
        ("temperature=inf", "temperature=inf: expected a finite number >= 0"),
        ("max_new_tokens=-5", "max_new_tokens=-5: expected an integer >= 0"),
        ("device=cuda:7", f"device='cuda:7': {CUDA7}"),
        ("device=foo", f"device='foo': not a device; expected cpu or cuda[:N] (available here: {HERE})"),
    ],
)
def test_generate_rejects_bad_arguments(checkpoint, argument, message):
    assert_one_line_error(cli("generate", f"model={checkpoint}", argument), message)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message of a machine without CUDA")
def test_generate_on_cuda_without_cuda(checkpoint):
    message = "device='cuda': CUDA is not available on this machine; use device=cpu (available here: cpu)"
    assert_one_line_error(cli("generate", f"model={checkpoint}", "device=cuda"), message)


@pytest.mark.parametrize(
    ("words", "message"),
    [
        (["generate", "seed=-1"], "seed=-1: expected an integer in [0, 18446744073709551615]"),
        (["generate", "temperature=-0.5"], "temperature=-0.5: expected a finite number >= 0"),
        (["experts", "top=0"], "top=0: expected an integer >= 1"),
        (["experts", "sample=-1"], "sample=-1: expected an integer >= 0"),
        (["experts", "device=cuda:7"], f"device='cuda:7': {CUDA7}"),
        (["train", "lr=nan"], "lr=nan: expected a finite number > 0"),
        (["train", "val_fraction=2"], "val_fraction=2.0: expected a number in (0, 1)"),
        (["train", "device=foo"], f"device='foo': not a device; expected cpu or cuda[:N] (available here: {HERE})"),
    ],
)
def test_every_text_command_checks_its_numbers_and_device(checkpoint, tmp_path, words, message):
    where = f"project={tmp_path}" if words[0] == "train" else f"model={checkpoint}"
    with pytest.raises(ValueError) as raised:
        main(["text", words[0], where, *words[1:]])
    assert str(raised.value) == message
    assert not list(tmp_path.iterdir())


def test_train_steps_below_one_exits_2_and_writes_nothing(tmp_path):
    result = cli("train", *TINY_ARGS, f"project={tmp_path}", "progress=False", "steps=-1")
    assert_one_line_error(result, "steps=-1: expected an integer >= 1")
    assert not list(tmp_path.iterdir())  # no run folder, no NaN checkpoint


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ({"steps": 0}, "steps=0: expected an integer >= 1"),
        ({"steps": 2.5}, "steps=2.5: expected an integer >= 1"),
        ({"lr": 0.0}, "lr=0.0: expected a finite number > 0"),
        ({"lr": float("inf")}, "lr=inf: expected a finite number > 0"),
        ({"batch": 0}, "batch=0: expected an integer >= 1"),
        ({"block": -4}, "block=-4: expected an integer >= 1"),
        ({"warmup": -1}, "warmup=-1: expected an integer >= 0"),
        ({"weight_decay": -0.1}, "weight_decay=-0.1: expected a finite number >= 0"),
        ({"grad_clip": float("nan")}, "grad_clip=nan: expected a finite number >= 0"),
        ({"val_fraction": 0.0}, "val_fraction=0.0: expected a number in (0, 1)"),
        ({"val_every": 0}, "val_every=0: expected an integer >= 1"),
        ({"val_batches": -2}, "val_batches=-2: expected an integer >= 1"),
        ({"moe_balance_weight": float("-inf")}, "moe_balance_weight=-inf: expected a finite number >= 0"),
        ({"moe_experts": -1}, "moe_experts=-1: expected an integer >= 0"),
        ({"moe_top_k": 0}, "moe_top_k=0: expected an integer >= 1"),
        ({"d_model": True}, "d_model=True: expected an integer >= 1"),
        ({"seed": 2**64}, "seed=18446744073709551616: expected an integer in [0, 18446744073709551615]"),
        ({"device": "cuda:7"}, f"device='cuda:7': {CUDA7}"),
    ],
)
def test_train_api_rejects_every_nonsensical_number(tmp_path, setting, message):
    with pytest.raises(ValueError) as raised:
        train(project=str(tmp_path), progress=False, **{**TINY, **setting})
    assert str(raised.value) == message
    assert not list(tmp_path.iterdir())


def test_train_data_that_is_not_a_text_file(tmp_path):
    project = f"project={tmp_path / 'runs'}"
    missing = tmp_path / "missing.txt"
    message = f"data={missing}: no such file; give a UTF-8 text file (empty: the embedded corpus)"
    with pytest.raises(FileNotFoundError) as raised:
        main(["text", "train", *TINY_ARGS, project, f"data={missing}"])
    assert str(raised.value) == message
    binary = tmp_path / "weights.bin"
    binary.write_bytes(b"text \xff\xfe more")
    with pytest.raises(ValueError, match=re.escape(f"data={binary}: not UTF-8 text (invalid start byte at byte 5)")):
        train(project=str(tmp_path / "runs"), data=str(binary), progress=False, **TINY)
    with pytest.raises(ValueError, match=re.escape(f"data={tmp_path}: is a directory")):
        train(project=str(tmp_path / "runs"), data=str(tmp_path), progress=False, **TINY)


def test_generate_api_rejects_bad_sampling_arguments():
    model = ELAGPT(ELAGPTConfig(d_model=16, n_heads=2)).eval()
    ids = torch.tensor([[72, 105]])
    cases = [
        ({"max_new_tokens": -5}, "max_new_tokens=-5: expected an integer >= 0"),
        ({"temperature": float("nan")}, "temperature=nan: expected a finite number >= 0"),
        ({"temperature": float("inf")}, "temperature=inf: expected a finite number >= 0"),
        ({"temperature": 0.8, "top_k": -3}, "top_k=-3: expected an integer >= 0"),
        ({"temperature": 0.8, "top_k": 2.5}, "top_k=2.5: expected an integer >= 0"),
    ]
    for changes, message in cases:
        arguments = {"max_new_tokens": 3, **changes}
        with pytest.raises(ValueError) as raised:
            generate(model, ids, arguments.pop("max_new_tokens"), **arguments)
        assert str(raised.value) == message
    logits = torch.randn(2, 10)
    for temperature, top_k, message in [
        (float("nan"), None, "temperature=nan: expected a finite number >= 0"),
        (-1.0, None, "temperature=-1.0: expected a finite number >= 0"),
        (1.0, -1, "top_k=-1: expected an integer >= 0"),
    ]:
        with pytest.raises(ValueError) as raised:
            pick_next_token(logits, temperature, top_k)
        assert str(raised.value) == message
    assert generate(model, ids, 0).tolist() == ids.tolist()  # zero new tokens: the prompt itself
    assert pick_next_token(logits, 1.0, 0).shape == (2,)  # top_k=0 samples among all


def test_device_and_limit_checks():
    assert check_device("cpu") == torch.device("cpu")
    with pytest.raises(ValueError, match=r"^device='meta': meta is not supported; expected cpu or cuda\[:N\]"):
        check_device("meta")
    with pytest.raises(ValueError, match=r"^gpu='': not a device"):
        check_device("", name="gpu")
    assert Limit(float, 0, 1, closed=False).describe() == "a number in (0, 1]"
    assert Limit(int, high=3, closed_high=False).describe() == "an integer < 3"
    assert Limit(float, 0).allows(3) and not Limit(float, 0).allows(float("nan"))
    assert not Limit(int, 0).allows(True) and not Limit(int, 0).allows("3")


@pytest.fixture(scope="module")
def detector_checkpoints(tmp_path_factory):
    """An Ultralytics-saved YOLO-LAT detector, and a dict with a detector's state dict and train_args."""
    from yolo_lat.models import YOLOLAT

    folder = tmp_path_factory.mktemp("detector")
    detector = YOLOLAT("yolo-lat-pico.yaml")
    detector.save(folder / "detector.pt")
    torch.save({"model": detector.model.state_dict(), "train_args": {"epochs": 1}}, folder / "state.pt")
    return folder / "detector.pt", folder / "state.pt"


def test_generate_refuses_a_detector_checkpoint(detector_checkpoints):
    saved, state = detector_checkpoints
    message = (
        f"{saved} is not a yolo-lat text checkpoint: it is an Ultralytics model checkpoint "
        f"(ultralytics.nn.tasks.DetectionModel); use it with 'yolo-lat predict model={saved}', "
        "or give a last.pt from 'yolo-lat text train'"
    )
    assert_one_line_error(cli("generate", f"model={saved}"), message)
    message = (
        f"{state} is not a yolo-lat text checkpoint (yolo-lat-text/1): it has no 'format' entry "
        "(keys: model, train_args, an Ultralytics checkpoint); give a last.pt or best.pt from 'yolo-lat text train'"
    )
    assert_one_line_error(cli("experts", f"model={state}"), message)


def test_generate_refuses_damaged_and_absent_checkpoints(checkpoint, tmp_path):
    noise = tmp_path / "noise.pt"
    noise.write_bytes(torch.randint(0, 256, (3000,), dtype=torch.uint8).numpy().tobytes())
    damaged = "is damaged or not a checkpoint (not a zip archive as torch.save writes); give a last.pt or best.pt"
    assert_one_line_error(cli("generate", f"model={noise}"), f"{noise} {damaged}")
    cut = tmp_path / "cut.pt"
    cut.write_bytes(open(checkpoint, "rb").read()[:2000])
    with pytest.raises(ValueError) as raised:
        main(["text", "generate", f"model={cut}"])
    assert str(raised.value) == f"{cut} {damaged}"
    run = os.path.dirname(checkpoint)
    message = f"{run} is a directory, not a checkpoint file; give {checkpoint}"
    assert_one_line_error(cli("generate", f"model={run}"), message)
    missing = tmp_path / "missing.pt"
    message = f"checkpoint not found: {missing}; train one with 'yolo-lat text train'"
    assert_one_line_error(cli("generate", f"model={missing}"), message)


def test_load_model_refuses_weights_that_do_not_fit_or_are_not_finite(checkpoint, tmp_path):
    record = read_checkpoint(checkpoint)
    weights = {name: value.clone() for name, value in record["model"].items()}
    weights["embed.weight"][3, 1] = float("nan")
    torch.save({**record, "model": weights}, tmp_path / "nan.pt")
    with pytest.raises(ValueError, match=r"nan\.pt: its weights hold NaN or infinity \(embed\.weight\)"):
        load_model(tmp_path / "nan.pt")
    del weights["embed.weight"]
    torch.save({**record, "model": weights}, tmp_path / "missing.pt")
    with pytest.raises(ValueError, match=r"missing\.pt: damaged text checkpoint.*\(1 missing, 0 unexpected"):
        load_model(tmp_path / "missing.pt")
    torch.save({**record, "config": {**record["config"], "n_heads": 0}}, tmp_path / "config.pt")
    with pytest.raises(ValueError, match=r"config\.pt: damaged text checkpoint, its config is invalid \(n_heads"):
        load_model(tmp_path / "config.pt")
    torch.save([1, 2], tmp_path / "list.pt")
    with pytest.raises(ValueError, match=r"list\.pt is not a yolo-lat text checkpoint: it holds a list"):
        load_model(tmp_path / "list.pt")


def test_resume_from_a_damaged_checkpoint_names_it(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "last.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="^" + re.escape(f"{run / 'last.pt'} is damaged or not a checkpoint")):
        train(project=str(tmp_path), name="run", resume=True, progress=False, **TINY)
    record = {"format": "yolo-lat-text/1", "config": {}, "model": {}}
    torch.save(record, run / "last.pt")
    message = "cannot resume, the checkpoint lacks settings, optimizer, batch_rng, step, best_val, history"
    with pytest.raises(ValueError, match=message):
        train(project=str(tmp_path), name="run", resume=True, progress=False, **TINY)


def test_a_diverging_run_stops_before_writing_nan_weights(tmp_path):
    settings = dict(TINY, lr=1e4, grad_clip=0.0, steps=50, progress=False)
    message = r"^training diverged at step (\d+) \(loss -?(?:nan|inf)\): lower lr=10000 or set grad_clip > 0; "
    message += r"(.+) keeps step (\d+)$"
    with pytest.raises(ValueError, match=message) as raised:
        train(project=str(tmp_path), name="run", **settings)
    diverged, path, kept = re.match(message, str(raised.value)).groups()
    assert path == str(tmp_path / "run" / "last.pt") and int(kept) == int(diverged) - 1
    assert read_checkpoint(path)["step"] == int(kept)  # the last checkpoint is the last finite step


def test_model_config_rejects_non_finite_and_out_of_range_fields():
    cases = [
        ({"rope_base": float("nan")}, "rope_base=nan: expected a finite number > 0"),
        ({"norm_eps": -1e-6}, "norm_eps=-1e-06: expected a finite number > 0"),
        ({"ffn_mult": float("inf")}, "ffn_mult=inf: expected a finite number > 0"),
        ({"moe_balance_weight": float("nan")}, "moe_balance_weight=nan: expected a finite number >= 0"),
        ({"vocab_size": 0}, "vocab_size=0: expected an integer >= 1"),
    ]
    for changes, message in cases:
        with pytest.raises(ValueError) as raised:
            ELAGPTConfig(**changes)
        assert str(raised.value) == message
