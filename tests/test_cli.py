"""The yolo-lat command line: help, version, argument errors (no model runs here)."""

import json
import os
import subprocess
import sys

import pytest

from yolo_lat import __version__
from yolo_lat.args import ArgumentError, parse_value
from yolo_lat.cli import main
from yolo_lat.overrides import parse_overrides


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
