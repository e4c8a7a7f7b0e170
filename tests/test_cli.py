"""The yolo-lat command line: help, version, argument errors (no model runs here)."""

import json
import os
import subprocess
import sys

import pytest

from yolo_lat import __version__
from yolo_lat.args import ArgumentError, parse_overrides, parse_value
from yolo_lat.cli import COMMANDS, argument_table, entrypoint, load, main, usage


def cli(*args, timeout=300):
    env = {**os.environ, "YOLO_OFFLINE": "1", "MPLBACKEND": "Agg"}
    return subprocess.run(
        [sys.executable, "-m", "yolo_lat.cli", *args], capture_output=True, text=True, timeout=timeout, env=env
    )


def test_version_and_help(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"yolo-lat {__version__}"
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for mode in ("train", "val", "predict", "export", "info", "benchmark", "data", "text"):
        assert f"  {mode} " in out


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("train", "epochs="),
        ("val", "save_json="),
        ("predict", "source="),
        ("export", "ela_op"),
        ("benchmark", "attention"),
        ("data", "synth"),
    ],
)
def test_mode_help(mode, expected, capsys):
    assert main([mode, "--help"]) == 0
    assert expected in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["trian"], "unknown mode 'trian'. Did you mean 'train'?"),
        (["train", "epoch=3"], "unknown argument 'epoch' for 'yolo-lat train'. Did you mean 'epochs'?"),
        (["train", "epochs=three"], "'epochs=three' is of invalid type str"),
        (["train", "lr0=5"], "'lr0=5' is an invalid value"),
        (["export", "ela_opp=custom"], "Did you mean 'ela_op'?"),
        (["benchmark", "atention"], "Did you mean 'attention'?"),
        (["train", "epochs"], "expected key=value, got 'epochs'"),
    ],
)
def test_argument_errors(argv, message):
    with pytest.raises(ArgumentError) as err:
        main(argv)
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_errors_exit_2_with_one_line():
    result = cli("train", "imgsz=64", "epocs=1")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "yolo-lat: error: unknown argument 'epocs' for 'yolo-lat train'. Did you mean 'epochs'?"
    ]


def test_values_are_never_evaluated():
    assert parse_value("__import__('os').system('false')") == "__import__('os').system('false')"
    with pytest.raises(ArgumentError, match="invalid type"):
        parse_overrides("train", ["epochs=__import__('os').getpid()"])
    overrides = parse_overrides("train", ["imgsz=640,480", "device=0,1", "data=1.yaml", "cache=False"])
    assert overrides == {"imgsz": [640, 480], "device": [0, 1], "data": "1.yaml", "cache": False}


def test_benchmark_attention_writes_json(tmp_path):
    out = tmp_path / "attention.json"
    result = cli("benchmark", "attention", "lengths=64,128", "budget=0.05", "memory=False", f"out={out}")
    assert result.returncode == 0, result.stderr
    record = json.loads(out.read_text())
    assert {r["method"] for r in record["rows"]} == {"ela", "naive", "sdpa"}
    assert all(r["status"] == "ok" and r["median_ms"] > 0 for r in record["rows"])
    assert "fitted k" in result.stdout


def test_info_prints_parameters():
    # a subprocess: Ultralytics' logger binds sys.stdout when first imported, which capsys cannot see
    result = cli("info", "model=yolo-lat-pico.yaml")
    assert result.returncode == 0, result.stderr
    assert "286,248 parameters" in result.stdout + result.stderr


def test_benchmark_report_from_committed_results(tmp_path):
    from pathlib import Path

    results = Path(__file__).resolve().parents[1] / "benchmarks" / "results"
    out = tmp_path / "benchmarks.md"
    assert main(["benchmark", "report", f"results={results}", f"out={out}"]) == 0
    page = out.read_text()
    assert "## Detectors on an H200 (fused ELA kernels)" in page
    assert "yolo-lat-n" in page and "yolo26n" in page
    assert "decode step: kernel launch |" in page and "x minimal launch, Triton binding" in page


def _leaves(path):
    node = path[-1]
    if not node.children:
        yield path
    for child in node.children:
        yield from _leaves([*path, child])


def test_every_command_in_the_table_has_a_handler_and_documented_arguments():
    leaves = list(_leaves([COMMANDS]))
    names = {" ".join(node.name for node in path[1:]) for path in leaves}
    assert {"train", "info", "convert", "benchmark accuracy", "benchmark ablate", "data check", "demo"} <= names
    assert len(leaves) == 6 + 11 + 3 + 3 + 1  # model commands + convert, benchmarks, data, text, demo
    for path in leaves:
        command = path[-1]
        assert callable(load(command.handler)), command.name
        text = usage(path)
        assert text.startswith("usage: yolo-lat " + " ".join(node.name for node in path[1:]) + " ")
        if command.ultralytics:
            assert not command.arguments and all(key in text for key in command.extra)
            continue
        defaults, docs = argument_table(command)
        assert set(docs) == set(defaults), command.name  # every argument documented, no stale docs
        assert all(f"  {key}=" in text for key in defaults)


def test_group_help_lists_subcommands_and_fallback(capsys):
    assert main(["text"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: yolo-lat text SUBMODE [key=value ...]")
    assert "  generate   continue a prompt" in out and "examples:\n  yolo-lat text train" in out
    # key=value words right after `benchmark` go to `benchmark models`, parsed with its table
    with pytest.raises(ArgumentError, match=r"unknown argument 'modelz' for benchmark models\. Did you mean 'models'"):
        main(["benchmark", "modelz=yolo12n"])


def test_entrypoint_turns_errors_into_one_line_and_status_2(capsys):
    with pytest.raises(SystemExit) as exit_info:
        entrypoint(["data", "synt"])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.splitlines() == [
        "yolo-lat: error: unknown data submode 'synt'. Did you mean 'synth'? Choose from: synth, check, download"
    ]
    with pytest.raises(SystemExit) as exit_info:
        entrypoint(["--version"])
    assert exit_info.value.code == 0


def test_model_commands_check_the_splits_they_use(tmp_path, monkeypatch):
    from types import SimpleNamespace

    from yolo_lat.cli import model

    checked, calls = [], []
    report = SimpleNamespace(warnings=[])
    report.raise_if_errors = lambda: report

    def validate(data, splits):
        checked.append(list(splits))
        return report

    class FakeYOLO:
        def __init__(self, path):
            calls.append(path)

        def train(self, **overrides):
            calls.append(overrides)

        def check_train(self, **overrides):  # YOLOLAT's checks before any data is prepared: none here
            pass

        val = train

    monkeypatch.setattr(model, "validate_dataset", validate)
    monkeypatch.setattr(model, "YOLOLAT", FakeYOLO)
    data = tmp_path / "d.yaml"
    data.write_text("path: .\ntrain: a\nval: b\nnames: [x]\n")
    assert main(["val", "model=m.pt", f"data={data}"]) == 0
    assert main(["val", "model=m.pt", f"data={data}", "split=test", "batch=2"]) == 0
    assert main(["train", f"data={data}", "epochs=1"]) == 0
    assert checked == [["val"], ["test"], ["train", "val"]]
    assert calls[2:4] == ["m.pt", {"data": str(data), "split": "test", "batch": 2}]
    assert calls[4] == "yolo-lat-n.yaml"  # train's default model
    with pytest.raises(ArgumentError, match="'yolo-lat val' needs model="):
        main(["val", f"data={data}"])
