"""pytest plugin: ``--gpu-report PATH`` writes the GPU kernel checks' per-case results as JSON.

Loaded by ``tests/conftest.py``. The checks (``tests/test_gpu_kernels.py``) take the
:func:`kernel_case` fixture: it announces each case (a small file per case in a scratch folder,
so that a case whose worker dies is still known), and the test hands its measurements to
:meth:`KernelCase.record` (they travel to the controller as the report's ``user_properties``) or,
after a sticky CUDA error, to :meth:`KernelCase.crash`, which ends the worker: pytest-xdist then
reports the case as crashed and starts a fresh worker, so the broken CUDA context fails that case
alone.

The file is rewritten after every case (an outer time limit keeps what ran) and has the layout
``benchmarks/results/gpu_check.json`` always had::

    {"summary": {"passed": .., "failed": .., "fail": .., "crash": .., "error": .., "timeout": ..,
                 "skipped": .., "not_run": .., "worker_restarts": .., "seconds": .., "device": ..,
                 "torch": .., "triton": ..},
     "results": [{"case": {...}, "status": "pass" | "fail" | "crash" | "error" | "timeout",
                  "passed": .., "errors": {...}, "torch_path_errors": {...}, "checks": {...},
                  "seconds": .., "nodeid": .., ...}, ...]}

Beside it, ``verified.json`` records which fused variants passed on a GPU for the current kernel
source (:mod:`yolo_lat.cuda_ops.verified`); committed as ``cuda_ops/verified.json`` it makes them
the CUDA default.

Example (the device script's call)::

    python -m pytest -m gpu -n 8 --timeout 120 tests/test_gpu_kernels.py --gpu-report $OUT/gpu_check.json
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

#: Name of the user property that carries a case's record from a worker to the controller.
PROPERTY = "gpu_case"
#: What the node ids of the kernel checks contain (``test_<op>_matches_float64[<case>]``).
CASE_TESTS = "_matches_float64["
STATUSES = ("pass", "fail", "crash", "error", "timeout")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--gpu-report",
        default=None,
        metavar="PATH",
        help="write the GPU kernel checks' per-case results to PATH (JSON, rewritten after every case)",
    )


def _announcements(config: pytest.Config) -> Path | None:
    """The scratch folder where cases announce themselves (None without --gpu-report)."""
    worker = getattr(config, "workerinput", None)
    if worker is not None:
        folder = worker.get("gpu_report_cases")
        return None if folder is None else Path(folder)
    writer = config.pluginmanager.get_plugin(_WRITER)
    return None if writer is None else writer.cases


def _case_file(folder: Path, nodeid: str) -> Path:
    return folder / (hashlib.sha1(nodeid.encode()).hexdigest()[:20] + ".json")


class KernelCase:
    """One case of the GPU kernel checks, as the report sees it (see the module docstring)."""

    def __init__(self, item: pytest.Item, case: dict[str, Any]):
        self.item = item
        self.case = case
        folder = _announcements(item.config)
        self.file = None if folder is None else _case_file(folder, item.nodeid)
        if self.file is not None:
            self.file.write_text(json.dumps({"case": case}, default=str))

    def record(self, record: dict[str, Any]) -> None:
        """Attach the case's measurements (``errors``, ``checks``, ...) to its test report."""
        self.item.user_properties.append((PROPERTY, {**record, "case": self.case}))

    def crash(self, error: BaseException, details: str) -> None:
        """Report a sticky CUDA error: under pytest-xdist the worker ends here (its CUDA context is
        broken; xdist reports the case as crashed and starts a fresh worker); in a single process
        the error is raised like any other."""
        if self.file is not None:
            self.file.write_text(json.dumps({"case": self.case, "error": f"{type(error).__name__}: {error}",
                                             "traceback": details[-3000:]}, default=str))  # fmt: skip
        if hasattr(self.item.config, "workerinput"):
            print(f"{self.item.nodeid}: {type(error).__name__}: {error}; ending this worker", file=sys.stderr)
            sys.stderr.flush()
            os._exit(3)
        raise error


@pytest.fixture
def kernel_case(request: pytest.FixtureRequest):
    """``kernel_case(case)`` -> :class:`KernelCase` for the running test."""
    return lambda case: KernelCase(request.node, case)


class _Writer:
    """The controller's side (or the only process's): every kernel case reported so far, written
    to the file after each one. Registered as a plugin by :func:`pytest_configure`."""

    def __init__(self, path: Path):
        self.path = path
        self.cases = Path(tempfile.mkdtemp(prefix="gpu_report_"))
        self.results: dict[str, dict[str, Any]] = {}
        self.skipped: set[str] = set()
        self.collected: set[str] = set()
        self.restarts = 0
        self.begin = time.perf_counter()

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if CASE_TESTS not in report.nodeid:
            return
        if report.skipped:
            self.skipped.add(report.nodeid)
            self.write()
            return
        if report.passed and report.when in ("setup", "teardown"):
            return
        properties = dict(report.user_properties)
        record = dict(properties.get(PROPERTY) or {})
        announced = _case_file(self.cases, report.nodeid)
        if announced.exists():
            record = {**json.loads(announced.read_text()), **record}
        text = str(report.longrepr or "").strip()
        last_line = text.splitlines()[-1] if text else ""
        if report.passed:
            status = "pass"
        elif report.when == "???" or "crashed while running" in text:
            status = "crash"
            record["worker"] = last_line
        elif "Timeout" in text:
            status = "timeout"
        elif record.get("checks") and not all(record["checks"].values()):
            status = "fail"
        else:
            status = "error"
            record.setdefault("error", last_line)
            record.setdefault("traceback", text[-3000:])
        if self.results.get(report.nodeid, {}).get("status", "pass") != "pass":
            return  # the first failure of a case (its call) is the one kept
        seconds = round(report.duration, 2)
        record.update(status=status, passed=status == "pass", nodeid=report.nodeid, seconds=seconds)
        self.results[report.nodeid] = record
        self.write()

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self.collected.update(item.nodeid for item in session.items if CASE_TESTS in item.nodeid)

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_node_collection_finished(self, node, ids) -> None:
        self.collected.update(i for i in ids if CASE_TESTS in i)

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node) -> None:
        """pytest-xdist: tell each worker where cases announce themselves."""
        node.workerinput["gpu_report_cases"] = str(self.cases)

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node, error) -> None:
        if error is not None:
            self.restarts += 1

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        self.write()
        shutil.rmtree(self.cases, ignore_errors=True)

    def summary(self) -> dict[str, Any]:
        statuses = [r["status"] for r in self.results.values()]
        device = next((r["device"] for r in self.results.values() if r.get("device")), None)
        return {
            "passed": statuses.count("pass"),
            "failed": len(statuses) - statuses.count("pass"),
            **{status: statuses.count(status) for status in STATUSES[1:]},
            "skipped": len(self.skipped),
            "not_run": len(self.collected - self.results.keys() - self.skipped),
            "worker_restarts": self.restarts,
            "seconds": round(time.perf_counter() - self.begin, 1),
            "device": device,
            "torch": _version("torch"),
            "triton": _version("triton"),
        }

    def write(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        record = {"summary": self.summary(), "results": list(self.results.values())}
        _write_json(self.path, record)
        # imported here: importing yolo_lat.cuda_ops fixes the interpreter setting for the process,
        # which the kernel tests of other modules set first
        from yolo_lat.cuda_ops.verified import verified_record

        _write_json(self.path.with_name("verified.json"), verified_record(record["results"]))


def _write_json(path: Path, record: dict[str, Any]) -> None:
    staged = path.with_name(path.name + ".tmp")
    staged.write_text(json.dumps(record, indent=1, default=str))
    staged.replace(path)


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


_WRITER = "gpu_report_writer"


def pytest_configure(config: pytest.Config) -> None:
    path = config.getoption("gpu_report", None)
    if path and not hasattr(config, "workerinput"):  # the controller (or the only process) writes it
        config.pluginmanager.register(_Writer(Path(path)), _WRITER)
