"""Timing and memory helpers shared by the benchmarks.

CPU timings are interleaved (A B C A B C ...) so that drift of the machine hits every candidate
alike; report ratios from one run. On CUDA, times come from CUDA events after warm-up.

CPU timings flush denormal floats to zero (FTZ/DAZ), as deployments do: arithmetic on denormals
is many times slower on x86 CPUs, so without it a model's latency depends on its trained weights
(a softmax whose probabilities underflow to denormals slows the matrix product after it).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence

import torch


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_once(fn: Callable[[], object], device: torch.device) -> float:
    """Seconds for one call of ``fn`` (CUDA events on a GPU, a monotonic clock on the CPU)."""
    if device.type == "cuda":
        start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        stop.record()
        torch.cuda.synchronize(device)
        return start.elapsed_time(stop) / 1e3
    begin = time.perf_counter()
    fn()
    return time.perf_counter() - begin


def interleaved_times(
    candidates: dict[str, Callable[[], object]],
    device: torch.device,
    *,
    warmup: int = 1,
    min_repeats: int = 3,
    max_repeats: int = 20,
    budget_s: float = 2.0,
) -> dict[str, list[float]]:
    """Time every candidate in rounds (one call each per round) until the budget is spent.

    Returns:
        For each name, the list of per-call times in seconds (one per round).
    """
    times: dict[str, list[float]] = {name: [] for name in candidates}
    with flushed_denormals(device):
        for fn in candidates.values():
            for _ in range(warmup):
                fn()
            _sync(device)
        begin = time.perf_counter()
        for round_index in range(max_repeats):
            for name, fn in candidates.items():
                times[name].append(time_once(fn, device))
            if round_index + 1 >= min_repeats and time.perf_counter() - begin > budget_s:
                break
    return times


@contextlib.contextmanager
def flushed_denormals(device: torch.device) -> Iterator[None]:
    """On the CPU, treat denormal floats as zero in this thread for the block (no-op elsewhere).

    ONNX Runtime computes partly in the calling thread, so its sessions also need
    ``session.set_denormal_as_zero`` for their own threads (see :func:`ort_session_options`).

    Example:
        >>> import torch
        >>> with flushed_denormals(torch.device("cpu")):
        ...     small = torch.tensor([1e-39]) * 1.0
        >>> float(small[0]) in (0.0, 1e-39)  # 0.0 where the CPU supports flushing
        True
    """
    flush = device.type == "cpu" and torch.set_flush_denormal(True)
    try:
        yield
    finally:
        if flush:
            torch.set_flush_denormal(False)


def ort_session_options(threads: int | None = None) -> object:
    """ONNX Runtime session options for timing on the CPU: denormals flushed to zero in its threads.

    Args:
        threads: intra-op threads (default: ONNX Runtime's choice).

    Example:
        >>> ort_session_options().get_session_config_entry("session.set_denormal_as_zero")
        '1'
    """
    import onnxruntime as ort  # optional dependency of the benchmarks only

    options = ort.SessionOptions()
    options.add_session_config_entry("session.set_denormal_as_zero", "1")
    if threads:
        options.intra_op_num_threads = threads
    return options


def summarize(samples: Sequence[float]) -> dict[str, float]:
    """Median, 90th percentile and count of a list of times in seconds (reported in ms)."""
    ordered = sorted(samples)
    p90 = ordered[min(len(ordered) - 1, math.ceil(0.9 * len(ordered)) - 1)]
    return {"median_ms": statistics.median(ordered) * 1e3, "p90_ms": p90 * 1e3, "runs": len(ordered)}


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    """Silence C++ profiler chatter written straight to file descriptor 2."""
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def peak_memory_bytes(fn: Callable[[], object], device: torch.device) -> int:
    """Peak bytes allocated by the tensor allocator during one call of ``fn``.

    CUDA: ``torch.cuda.max_memory_allocated`` above the baseline. CPU: the largest "Total
    Allocated" seen in the profiler's memory events, which count only allocations made while
    profiling (the inputs already allocated are not included).
    """
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        base = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        fn()
        torch.cuda.synchronize(device)
        return int(torch.cuda.max_memory_allocated(device) - base)
    from torch.profiler import ProfilerActivity, profile

    with tempfile.TemporaryDirectory() as tmp, _quiet_stderr():
        with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
            fn()
        trace = os.path.join(tmp, "trace.json")
        prof.export_chrome_trace(trace)
        with open(trace) as handle:
            events = json.load(handle).get("traceEvents", [])
    totals = [e["args"]["Total Allocated"] for e in events if e.get("name") == "[memory]" and "args" in e]
    return int(max(totals, default=0))


def fit_exponent(lengths: Sequence[float], times: Sequence[float]) -> float:
    """Least-squares slope of log(time) against log(length): ~1 linear, ~2 quadratic."""
    xs = [math.log(x) for x in lengths]
    ys = [math.log(y) for y in times]
    mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
    var = sum((x - mean_x) ** 2 for x in xs)
    if var == 0:
        return float("nan")
    return sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys)) / var


def environment(device: torch.device) -> dict[str, str]:
    """Versions and device description recorded with every benchmark."""
    info = {"torch": torch.__version__, "device": str(device), "threads": str(torch.get_num_threads())}
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    else:
        import platform

        info["cpu"] = platform.processor() or platform.machine()
    return info


def format_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A plain monospace table (also valid Markdown)."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    line = lambda row: "| " + " | ".join(c.rjust(w) for c, w in zip(row, widths)) + " |"  # noqa: E731
    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(cells[0]), sep, *(line(r) for r in cells[1:])])
