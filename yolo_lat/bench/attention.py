"""Attention benchmark: ELA vs the naive L x L reference vs softmax SDPA, time and peak memory.

Run ``yolo-lat benchmark attention`` with ``key=value``
overrides (``--help`` lists them). Prints a table and writes JSON.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from yolo_lat.args import ArgumentError
from yolo_lat.bench import timing
from yolo_lat.bench.runner import finish
from yolo_lat.ela import ela_attention, get_kernel, naive_attention

DEFAULTS: dict[str, Any] = {
    "lengths": [256, 1024, 4096, 16384],
    "batch": 1,
    "heads": 4,
    "dim": 32,
    "kernel": "hadamard_exp",
    "modes": ["bidirectional", "causal"],
    "naive_max": 4096,
    "device": "cpu",
    "dtype": "float32",
    "budget": 1.0,
    "memory": True,
    "out": "runs/benchmark/attention.json",
    "seed": 0,
}
DOCS = {
    "lengths": "sequence lengths L",
    "batch": "batch size B",
    "heads": "heads H",
    "dim": "head dim D (= Dv)",
    "kernel": "ELA kernel",
    "modes": "bidirectional and/or causal",
    "naive_max": "skip the quadratic naive reference above this L (it needs L^2 D work)",
    "device": "cpu or cuda[:N]",
    "dtype": "float32, float16 or bfloat16",
    "budget": "seconds of timing per (L, mode); rounds are interleaved",
    "memory": "also measure peak allocator memory per call",
    "out": "JSON output path",
    "seed": "random seed",
}
METHODS = ("ela", "naive", "sdpa")


def _candidates(q, k, v, kernel: str, causal: bool, with_naive: bool) -> dict[str, Any]:
    """The functions timed side by side for one (L, mode)."""
    scale = q.shape[-1] ** -0.5
    candidates = {
        "ela": lambda: ela_attention(q, k, v, kernel=kernel, causal=causal, scale=scale),
        "sdpa": lambda: F.scaled_dot_product_attention(q, k, v, is_causal=causal),
    }
    if with_naive:
        candidates["naive"] = lambda: naive_attention(q, k, v, kernel=kernel, causal=causal, scale=scale)
    return candidates


def run(settings: dict[str, Any]) -> dict[str, Any]:
    """Run the benchmark described by ``settings`` (see ``DEFAULTS``); returns the JSON record."""
    device = torch.device(settings["device"])
    dtype = getattr(torch, settings["dtype"])
    kernel = get_kernel(settings["kernel"]).name
    for mode in settings["modes"]:
        if mode not in ("bidirectional", "causal"):
            raise ArgumentError(f"modes: unknown mode {mode!r}; use bidirectional and/or causal")
    gen = torch.Generator(device="cpu").manual_seed(settings["seed"])
    rows = []
    for mode in settings["modes"]:
        causal = mode == "causal"
        for length in settings["lengths"]:
            shape = (settings["batch"], settings["heads"], int(length), settings["dim"])
            q, k, v = (torch.randn(shape, generator=gen).to(device, dtype) for _ in range(3))
            candidates = _candidates(q, k, v, kernel, causal, length <= settings["naive_max"])
            with torch.inference_mode():
                times = timing.interleaved_times(candidates, device, budget_s=settings["budget"], max_repeats=50)
                for method in METHODS:
                    row = {"mode": mode, "L": int(length), "method": method}
                    if method not in candidates:
                        row["status"] = f"skipped: L > naive_max={settings['naive_max']}"
                    else:
                        row.update(status="ok", **timing.summarize(times[method]))
                        if settings["memory"]:
                            row["peak_mib"] = timing.peak_memory_bytes(candidates[method], device) / 2**20
                    rows.append(row)
    exponents = {}
    for mode in settings["modes"]:
        for method in METHODS:
            pts = [
                (r["L"], r["median_ms"])
                for r in rows
                if r["mode"] == mode and r["method"] == method and r["status"] == "ok"
            ]
            if len(pts) >= 2:
                exponents[f"{mode}/{method}"] = timing.fit_exponent(*zip(*pts))
    return {
        "benchmark": "attention",
        "settings": {k: v for k, v in settings.items() if k != "out"},
        "environment": timing.environment(device),
        "method": "interleaved rounds (ela, sdpa, naive per round), median of rounds; "
        "peak memory = allocator peak during one call",
        "rows": rows,
        "time_exponent": exponents,
    }


def render(record: dict[str, Any]) -> str:
    """Table of the record: one row per (mode, L), one column group per method."""
    lookup = {(r["mode"], r["L"], r["method"]): r for r in record["rows"]}
    headers = ["mode", "L"]
    for method in METHODS:
        headers += [f"{method} ms", f"{method} MiB"]
    headers.append("ela speed-up vs sdpa")
    body = []
    for mode in record["settings"]["modes"]:
        for length in record["settings"]["lengths"]:
            line: list[object] = [mode, length]
            for method in METHODS:
                row = lookup[(mode, int(length), method)]
                ok = row["status"] == "ok"
                line.append(f"{row['median_ms']:.2f}" if ok else "-")
                line.append(f"{row['peak_mib']:.1f}" if ok and "peak_mib" in row else "-")
            ela, sdpa = lookup[(mode, int(length), "ela")], lookup[(mode, int(length), "sdpa")]
            line.append(f"{sdpa['median_ms'] / ela['median_ms']:.2f}x")
            body.append(line)
    fits = ", ".join(f"{k} {v:.2f}" for k, v in record["time_exponent"].items())
    env = record["environment"]
    head = (
        f"ELA attention benchmark ({record['settings']['kernel']}, B={record['settings']['batch']}, "
        f"H={record['settings']['heads']}, D={record['settings']['dim']}, {record['settings']['dtype']}, "
        f"{env['device']}, torch {env['torch']}, {env['threads']} threads)"
    )
    return f"{head}\n{timing.format_table(headers, body)}\ntime ~ L^k, fitted k: {fits}"


def command(settings: dict[str, Any]) -> int:
    """Handler of ``yolo-lat benchmark attention``: run with ``settings``, write ``out`` as JSON, print the table."""
    return finish(settings, run, render)
