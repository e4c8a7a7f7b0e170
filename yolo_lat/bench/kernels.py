"""GPU benchmark of the fused ELA kernels against plain-PyTorch ELA, SDPA and fla.

Times (median of ``triton.testing.do_bench``, which clears the L2 cache before every run, so
inputs that fit in L2 are not served from it) and achieved bandwidth against the floor of
reading the inputs and writing the outputs once at the copy bandwidth measured in the same run.

Parts (``part=``):

* ``ours``: bidirectional forward (L = 1k .. 256k, eager and CUDA-graph replay), bidirectional
  forward + backward, the channel-first vision layout, causal forward and forward + backward,
  the output-only forward in one launch and in three (up to 4k), the decode step (eager and graph
  replay, two context lengths), each launch of the forwards
  timed on its own (stages), a small sweep of launch settings (programs per multiprocessor,
  warps, scan rows); against plain-PyTorch ELA (the ``kernels='torch'`` setting) and torch SDPA
  (FlashAttention).
* ``fla``: fla's chunked linear attention (``fla.ops.linear_attn.chunk_linear_attn``,
  normalised) at the causal shapes, forward and forward + backward. Run separately: its Triton
  autotuning compiles many configurations, and a failure must not cost the other rows.
* ``summary``: merge the JSON files, evaluate the issue's targets, print a compact table.

Run ``yolo-lat benchmark kernels`` with ``key=value`` overrides (``--help`` lists them)::

    yolo-lat benchmark kernels part=ours out=$OUT/gpu_bench.json
    yolo-lat benchmark kernels part=fla out=$OUT/gpu_bench_fla.json
    yolo-lat benchmark kernels part=summary out=$OUT/gpu_bench.json fla=$OUT/gpu_bench_fla.json
    yolo-lat benchmark kernels smoke=True sections=stages,tuning   # CPU, tiny sizes: checks the plumbing
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
import triton
from torch.nn.attention import SDPBackend, sdpa_kernel
from triton.runtime.autotuner import Autotuner

from yolo_lat import settings
from yolo_lat.args import ArgumentError
from yolo_lat.cuda_ops import _common, bidirectional, bidirectional_backward, causal, causal_backward, ela_step_fused
from yolo_lat.ela import ela_attention, ela_step, get_kernel

DEFAULTS: dict[str, Any] = {
    "part": "ours",
    "out": "runs/benchmark/gpu_bench.json",
    "fla": "",
    "budget": 150.0,
    "smoke": False,
    "sections": [],
}
DOCS = {
    "part": "ours (fused kernels vs torch ELA and SDPA), fla (fla's linear attention) or summary (merge, targets)",
    "out": "JSON output path (part=summary: the part=ours file, completed in place)",
    "fla": "part=summary: the part=fla JSON to merge",
    "budget": "seconds after which part=ours skips the rest of the tuning sweep",
    "smoke": "CPU, tiny sizes: checks the plumbing only",
    "sections": "sections of part=ours (empty: all): bidirectional, vision, causal, decode, stages, tuning",
}
PARTS = ("ours", "fla", "summary")
SECTIONS = ("bidirectional", "vision", "causal", "decode", "stages", "tuning")

BATCH, HEADS, DIM = 1, 8, 64
BIDIRECTIONAL_LENGTHS = (1024, 4096, 16384, 65536, 262144)
CAUSAL_LENGTHS = (1024, 4096, 16384, 65536)
DECODE_CONTEXTS = (1024, 32768)
SWEEP_LENGTHS = {"bidirectional": 65536, "causal": 65536}
STAGE_LENGTHS = (16384, 65536, 262144)
TORCH_CAUSAL_MAX = 16384  # the PyTorch causal path loops over chunks in Python: slow beyond this
GRAPH_MAX = 16384  # CUDA-graph replay rows (launch overhead matters at short lengths)
SHORT_COMPARE_MAX = 4096  # one-launch vs three-launch rows up to this length
#: "cuda"; ``smoke=True`` runs the plumbing on the CPU at tiny sizes (rows needing CUDA record errors).
DEVICE = "cuda"


def timed(fn, *, graph: bool = False, grad_to_none=None) -> float:
    """Median milliseconds of ``fn`` (or of replaying a CUDA graph of it)."""
    if DEVICE == "cpu":  # smoke test of the script: a host clock
        fn()
        samples = []
        for _ in range(3):
            start = time.perf_counter()
            fn()
            samples.append((time.perf_counter() - start) * 1e3)
        return sorted(samples)[1]
    if graph:
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            for _ in range(3):
                fn()
        torch.cuda.current_stream().wait_stream(stream)
        cuda_graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(cuda_graph):
            fn()
        fn = cuda_graph.replay
    return triton.testing.do_bench(fn, warmup=25, rep=100, grad_to_none=grad_to_none, return_mode="median")


class Rows:
    """Collects result rows; a failing measurement becomes a row with its error."""

    def __init__(self, copy_gbps: float | None):
        self.rows: list[dict] = []
        self.copy_gbps = copy_gbps

    def add(self, section: str, impl: str, length: int, fn, *, bytes_moved=None, flops=None, graph=False,
            grad_to_none=None, **extra):  # fmt: skip
        row = {"section": section, "impl": impl, "L": length, "graph": graph, **extra}
        try:
            ms = timed(fn, graph=graph, grad_to_none=grad_to_none)
            row["ms"] = round(ms, 5)
            if bytes_moved:
                row["GBps"] = round(bytes_moved / ms / 1e6, 1)
                if self.copy_gbps:
                    row["floor_ms"] = round(bytes_moved / self.copy_gbps / 1e6, 5)
                    row["pct_of_copy"] = round(100 * row["GBps"] / self.copy_gbps, 1)
            if flops:
                row["TFLOPs"] = round(flops / ms / 1e9, 2)
        except Exception as err:  # record and go on
            row["error"] = f"{type(err).__name__}: {str(err)[:400]}"
            row["traceback"] = traceback.format_exc()[-1500:]
        self.rows.append(row)
        print(json.dumps({k: v for k, v in row.items() if k != "traceback"}), flush=True)
        return row


def copy_bandwidth() -> float:
    """GB/s of a device-to-device copy of 1 GiB (bytes read + written)."""
    src = torch.empty(1 << (12 if DEVICE == "cpu" else 29), dtype=torch.float16, device=DEVICE).normal_()
    dst = torch.empty_like(src)
    ms = timed(lambda: dst.copy_(src))
    return 2 * src.numel() * src.element_size() / ms / 1e6


def _qkv(length: int, dtype, requires_grad: bool = False, heads: int = HEADS, dim: int = DIM):
    return [
        torch.randn(BATCH, heads, length, dim, device=DEVICE, dtype=dtype).requires_grad_(requires_grad)
        for _ in range(3)
    ]


def _call(fn, *args, **kwargs):
    """``fn(*args, **kwargs)`` as a zero-argument callable."""
    return functools.partial(fn, *args, **kwargs)


def _train(fn, grad, *args, **kwargs):
    """Forward and backward of ``fn(*args, **kwargs)`` as a zero-argument callable."""

    def run():
        fn(*args, **kwargs).backward(grad)

    return run


def _ela(q, k, v, **options):
    return ela_attention(q, k, v, scale=q.shape[-1] ** -0.5, **options)


def _sdpa(q, k, v, causal=False):
    with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
        return F.scaled_dot_product_attention(q, k, v, is_causal=causal)


def _bidirectional_rows(rows: Rows, dtype) -> None:
    for length in BIDIRECTIONAL_LENGTHS:
        q, k, v = _qkv(length, dtype)
        io = 4 * BATCH * HEADS * length * DIM * 2
        ela_flops = 4 * BATCH * HEADS * length * DIM * (DIM + 1)
        sdpa_flops = 4 * BATCH * HEADS * length * length * DIM
        with settings.override(kernels="triton"):
            rows.add("bidirectional forward", "fused", length, _call(_ela, q, k, v), bytes_moved=io, flops=ela_flops)
            if length <= GRAPH_MAX:
                rows.add("bidirectional forward", "fused", length, _call(_ela, q, k, v), bytes_moved=io, graph=True)
                with settings.override(direct_launch=False):  # the eager host cost that direct launches remove
                    rows.add("bidirectional forward", "fused, Triton binding", length, _call(_ela, q, k, v),
                             bytes_moved=io)  # fmt: skip
        if length <= SHORT_COMPARE_MAX:  # the output-only forward in one launch or three, side by side
            for impl, short_keys in (("fused 1 launch", length), ("fused 3 launches", 0)):
                with settings.override(kernels="triton"), _short_keys(short_keys):
                    for graph in (False, True):
                        rows.add("bidirectional forward", impl, length, _call(_ela, q, k, v), bytes_moved=io,
                                 graph=graph)  # fmt: skip
        with settings.override(kernels="torch"):
            rows.add("bidirectional forward", "torch ELA", length, _call(_ela, q, k, v), bytes_moved=io)
        rows.add("bidirectional forward", "SDPA flash", length, _call(_sdpa, q, k, v), bytes_moved=io, flops=sdpa_flops)
        if length <= GRAPH_MAX:
            rows.add("bidirectional forward", "SDPA flash", length, _call(_sdpa, q, k, v), bytes_moved=io, graph=True)
    for length in BIDIRECTIONAL_LENGTHS[2:4] or BIDIRECTIONAL_LENGTHS:
        q, k, v = _qkv(length, dtype, requires_grad=True)
        grad = q.detach().clone().normal_()
        io = 8 * BATCH * HEADS * length * DIM * 2  # q k v out + dout dq dk dv
        for impl, env in (("fused", "triton"), ("torch ELA", "torch")):
            with settings.override(kernels=env):
                rows.add("bidirectional fwd+bwd", impl, length, _train(_ela, grad, q, k, v), bytes_moved=io,
                         grad_to_none=[q, k, v])  # fmt: skip
        rows.add("bidirectional fwd+bwd", "SDPA flash", length, _train(_sdpa, grad, q, k, v), bytes_moved=io,
                 grad_to_none=[q, k, v])  # fmt: skip


@contextlib.contextmanager
def _short_keys(value: int):
    """Route output-only forwards of up to ``value`` keys to the one-launch kernel."""
    saved = bidirectional.SHORT_KEYS
    bidirectional.SHORT_KEYS = value
    try:
        yield
    finally:
        bidirectional.SHORT_KEYS = saved


def _vision_rows(rows: Rows) -> None:
    """The vision blocks' layout: (B, heads, N, D) views of a (B, 3C, H, W) 1x1-conv output, fp16."""
    for side, channels, heads in ((80, 256, 8), (160, 128, 4)) if DEVICE == "cuda" else ((8, 64, 2),):
        fmap = torch.randn(BATCH, 3 * channels, side, side, device=DEVICE, dtype=torch.float16)
        pixels = side * side
        q, k, v = fmap.view(BATCH, 3, heads, channels // heads, pixels).transpose(-1, -2).unbind(1)
        io = 4 * BATCH * channels * pixels * 2
        for impl, env in (("fused", "triton"), ("torch ELA", "torch")):
            for graph in (False, True):
                with settings.override(kernels=env):
                    rows.add("vision NCHW views fp16", impl, pixels, _call(_ela, q, k, v), bytes_moved=io,
                             graph=graph, shape=f"{side}x{side}x{channels} heads={heads}")  # fmt: skip


def _causal_rows(rows: Rows, dtype) -> None:
    for length in CAUSAL_LENGTHS:
        q, k, v = _qkv(length, dtype, requires_grad=True)
        grad = q.detach().clone().normal_()
        io_forward = 4 * BATCH * HEADS * length * DIM * 2
        io_training = 8 * BATCH * HEADS * length * DIM * 2
        implementations = [("fused", "triton")] + ([("torch ELA", "torch")] if length <= TORCH_CAUSAL_MAX else [])
        for impl, env in implementations:
            with settings.override(kernels=env):
                with torch.no_grad():
                    rows.add("causal forward", impl, length, _call(_ela, q, k, v, causal=True), bytes_moved=io_forward)
                rows.add("causal fwd+bwd", impl, length, _train(_ela, grad, q, k, v, causal=True),
                         bytes_moved=io_training, grad_to_none=[q, k, v])  # fmt: skip
        with torch.no_grad():
            rows.add("causal forward", "SDPA flash", length, _call(_sdpa, q, k, v, True), bytes_moved=io_forward)
        rows.add("causal fwd+bwd", "SDPA flash", length, _train(_sdpa, grad, q, k, v, True),
                 bytes_moved=io_training, grad_to_none=[q, k, v])  # fmt: skip


def _decode_rows(rows: Rows, dtype) -> None:
    """One decode step at B=8, H=16, D=64 after contexts of two lengths (the state does not grow)."""
    kern = get_kernel("hadamard_exp")
    scale = DIM**-0.5
    for context in DECODE_CONTEXTS:
        q, k, v = (torch.randn(8, 16, context, DIM, device=DEVICE, dtype=dtype) for _ in range(3))
        with settings.override(kernels="triton"), torch.no_grad():
            _, state = _ela(q, k, v, causal=True, return_state=True)
        step = [torch.randn(8, 16, DIM, device=DEVICE, dtype=dtype) for _ in range(3)]
        state_bytes = 2 * state.nbytes
        for graph in (False, True):
            rows.add("decode step B=8 H=16", "fused", context, _call(ela_step_fused, *step, state, kern, scale),
                     bytes_moved=state_bytes, graph=graph)  # fmt: skip
            with settings.override(kernels="torch"):
                rows.add("decode step B=8 H=16", "torch ELA", context, _call(ela_step, *step, state, scale=scale),
                         bytes_moved=state_bytes, graph=graph)  # fmt: skip
        with settings.override(direct_launch=False):  # every launch through Triton's binding
            rows.add("decode step B=8 H=16", "fused, Triton binding", context,
                     _call(ela_step_fused, *step, state, kern, scale), bytes_moved=state_bytes)  # fmt: skip


def _stage_rows(rows: Rows, dtype) -> None:
    """Each launch of the bidirectional and causal forwards timed on its own (stage sums where a
    stage rewrites its input in place): which part is off the copy floor."""
    scale = DIM**-0.5
    for length in STAGE_LENGTHS:
        q, k, v = _qkv(length, dtype)
        bh = BATCH * HEADS
        qkv_bytes = BATCH * HEADS * length * DIM * 2  # one of q, k, v, out
        _, rows_per_part = bidirectional.sequence_slices(length, bh, q.device)
        parts = bidirectional.fold_key_slices(k, v, 0, scale, rows_per_part)
        state_bytes = parts[0].numel() * 4
        state = bidirectional.combine_slices(*parts, BATCH, HEADS)
        section = "bidirectional fwd stages"
        fold, combine = bidirectional.fold_key_slices, bidirectional.combine_slices
        rows.add(section, "1 key slices", length, _call(fold, k, v, 0, scale, rows_per_part),
                 bytes_moved=2 * qkv_bytes + state_bytes)  # fmt: skip
        rows.add(section, "2 combine", length, _call(combine, *parts, BATCH, HEADS), bytes_moved=state_bytes)
        rows.add(section, "3 readout", length, _call(bidirectional.read_out, q, *state, 0, scale, dtype),
                 bytes_moved=2 * qkv_bytes)  # fmt: skip
        block_t = causal.chunk_length(DIM, DIM)
        chunk_bytes = bh * -(-length // block_t) * DIM * DIM * 4  # one float32 state per chunk
        section = "causal fwd stages"
        rows.add(section, "1 chunk states", length, _call(fold, k, v, 0, scale, block_t, block_t),
                 bytes_moved=2 * qkv_bytes + chunk_bytes)  # fmt: skip
        rows.add(section, "1+2 and scan", length, _call(causal.chunk_states, k, v, None, None, None, 0, scale),
                 bytes_moved=2 * qkv_bytes + 3 * chunk_bytes)  # fmt: skip
        rows.add(section, "1+2+3 and outputs", length,
                 _call(causal.causal_forward, q, k, v, None, None, None, 0, scale, False),
                 bytes_moved=4 * qkv_bytes + 4 * chunk_bytes)  # fmt: skip


def _no_grad():
    return torch.no_grad()


#: Settings swept by :func:`_tuning_rows`: (label, module, attribute or ``WARPS`` key, values); each
#: row times the whole forward with one setting changed (the defaults were set without a GPU).
TUNING = (
    ("bidirectional", "bidirectional", "PROGRAMS_PER_SM", (2, 3, 4, 6)),
    ("bidirectional", "bidirectional", "READOUT_PROGRAMS_PER_SM", (2, 4, 8)),
    ("bidirectional", "warps", "_state_partial_kernel", (4, 8)),
    ("bidirectional", "warps", "_readout_kernel", (4, 8)),
    ("bidirectional training", "bidirectional_backward", "QUERY_GRAD_PROGRAMS_PER_SM", (1, 2)),
    ("causal", "causal", "SCAN_ROWS", (2, 4, 8)),
    ("causal", "warps", "_chunk_output_kernel", (4, 8)),
    ("causal training", "warps", "_chunk_grad_kernel", (4, 8)),
    ("causal training", "causal_backward", "SPLIT_GRAD", (False, True)),
)


#: The modules named in :data:`TUNING`.
_TUNED_MODULES = {
    module.__name__.rpartition(".")[2]: module
    for module in (bidirectional, bidirectional_backward, causal, causal_backward)
}


def _tuning_rows(rows: Rows, dtype, deadline: float) -> None:
    """A small sweep of the launch settings; a skipped one is reported."""
    for mode, where, name, values in TUNING:
        if time.perf_counter() > deadline:
            print(json.dumps({"skipped": f"tuning of {name} (time budget)"}), flush=True)
            continue
        causal, training = mode.startswith("causal"), mode.endswith("training")
        length = SWEEP_LENGTHS["causal" if causal else "bidirectional"]
        q, k, v = _qkv(length, dtype, requires_grad=training)
        grad = q.detach().clone().normal_()
        module = None if where == "warps" else _TUNED_MODULES[where]
        default = _common.WARPS.get(name) if module is None else getattr(module, name)
        for value in values:
            if module is None:
                _common.WARPS[name] = value
            else:
                setattr(module, name, value)
            run = _train(_ela, grad, q, k, v, causal=True) if training else _call(_ela, q, k, v, causal=causal)
            with settings.override(kernels="triton"), _no_grad() if not training else contextlib.nullcontext():
                rows.add(f"tuning {mode}", f"{name}={value}", length, run, grad_to_none=[q, k, v] if training else None)
        if module is None:
            _common.WARPS.pop(name, None)
        else:
            setattr(module, name, default)


def bench_ours(out_path: str, budget_s: float, only: set[str] | None = None) -> dict:
    """All rows of the fused kernels and their PyTorch competitors (or the sections named in
    ``only``); writes ``out_path``."""

    begin = time.perf_counter()
    dtype = torch.bfloat16
    copy_gbps = copy_bandwidth()
    print(json.dumps({"copy_GBps": round(copy_gbps, 1)}), flush=True)
    rows = Rows(copy_gbps)
    sections = (
        ("bidirectional", lambda: _bidirectional_rows(rows, dtype)),
        ("vision", lambda: _vision_rows(rows)),
        ("causal", lambda: _causal_rows(rows, dtype)),
        ("decode", lambda: _decode_rows(rows, dtype)),
        ("stages", lambda: _stage_rows(rows, dtype)),
        ("tuning", lambda: _tuning_rows(rows, dtype, begin + budget_s)),
    )
    for name, section in sections:
        if only is not None and name not in only:
            continue
        try:
            section()
        except Exception as err:  # a broken section must not lose the others
            rows.rows.append({"section": name, "impl": "-", "L": 0, "graph": False,
                              "error": f"{type(err).__name__}: {err}"})  # fmt: skip
        if DEVICE == "cuda":
            torch.cuda.empty_cache()
    device_name = torch.cuda.get_device_name() if DEVICE == "cuda" else "cpu (smoke test)"
    result = {"device": device_name, "torch": torch.__version__,
              "triton": triton.__version__, "copy_GBps": round(copy_gbps, 1),
              "shape": {"B": BATCH, "H": HEADS, "D": DIM, "dtype": "bfloat16"},
              "seconds": round(time.perf_counter() - begin, 1), "rows": rows.rows}  # fmt: skip
    with open(out_path, "w") as handle:
        json.dump(result, handle, indent=1)
    return result


def _fla_output(chunk_linear_attn, q, k, v):
    return chunk_linear_attn(q, k, v, normalize=True)[0]


def _limit_fla_autotuning(max_configs: int = 6) -> int:
    """Cut every fla autotuner to at most ``max_configs`` configurations (4/8 warps, 2/3 stages).

    fla autotunes up to 48 configurations per kernel; compiling them all takes minutes on a fresh
    machine, more than this run may spend. Returns the number of autotuners changed.
    """
    changed = 0
    for name, module in list(sys.modules.items()):
        if not name.startswith("fla."):
            continue
        for value in list(vars(module).values()):
            while value is not None and not isinstance(value, Autotuner):  # unwrap heuristics(...)
                value = getattr(value, "fn", None) if hasattr(value, "fn") and not callable(value) else None
            if isinstance(value, Autotuner) and len(value.configs) > max_configs:
                preferred = [c for c in value.configs if c.num_warps in (4, 8) and c.num_stages in (2, 3)]
                pool = preferred or value.configs
                picks = sorted({round(i * (len(pool) - 1) / (max_configs - 1)) for i in range(max_configs)})
                value.configs = [pool[i] for i in picks]  # spread over the grid, both ends included
                changed += 1
    return changed


def bench_fla(out_path: str) -> dict:
    """fla's normalised chunked linear attention at the causal shapes; writes ``out_path``."""
    result = {"rows": []}
    try:
        from fla.ops.linear_attn import chunk_linear_attn  # optional: the device script installs it from a wheel

        result["fla"] = getattr(__import__("fla"), "__version__", "unknown")
        result["autotuners_limited"] = _limit_fla_autotuning()
        result["note"] = "fla autotuning limited to <= 6 configurations per kernel (4/8 warps, 2/3 stages)"
    except Exception as err:
        result["error"] = f"fla not importable: {type(err).__name__}: {err}"
        with open(out_path, "w") as handle:
            json.dump(result, handle, indent=1)
        print(json.dumps(result), flush=True)
        return result
    rows = Rows(None)
    for length in CAUSAL_LENGTHS:
        # fla's layout is (B, T, H, D)
        q, k, v = (
            torch.randn(BATCH, length, HEADS, DIM, device=DEVICE, dtype=torch.bfloat16).requires_grad_()
            for _ in range(3)
        )
        grad = q.detach().clone().normal_()
        io_forward = 4 * BATCH * HEADS * length * DIM * 2
        with torch.no_grad():
            rows.add("causal forward", "fla chunk_linear_attn", length, _call(_fla_output, chunk_linear_attn, q, k, v),
                     bytes_moved=io_forward)  # fmt: skip
        rows.add("causal fwd+bwd", "fla chunk_linear_attn", length,
                 _train(_fla_output, grad, chunk_linear_attn, q, k, v), bytes_moved=2 * io_forward,
                 grad_to_none=[q, k, v])  # fmt: skip
    result["rows"] = rows.rows
    with open(out_path, "w") as handle:
        json.dump(result, handle, indent=1)
    return result


def _best(rows, section, impl, length, graph=None):
    found = [
        r["ms"]
        for r in rows
        if r["section"] == section and r["impl"] == impl and r["L"] == length and "ms" in r
        and (graph is None or r["graph"] == graph)
    ]  # fmt: skip
    return min(found) if found else None


def summarize(ours_path: str, fla_path: str | None) -> dict:
    """Merge the parts, evaluate the issue's targets, print a compact table (last)."""
    with open(ours_path) as handle:
        ours = json.load(handle)
    rows = list(ours["rows"])
    fla_note = None
    if fla_path and os.path.exists(fla_path):
        with open(fla_path) as handle:
            fla = json.load(handle)
        rows += fla.get("rows", [])
        fla_note = fla.get("error")
    else:
        fla_note = "fla part did not run"
    targets = {}
    bw = [
        (r["L"], r.get("pct_of_copy"))
        for r in rows
        if r["section"] == "bidirectional forward" and r["impl"] == "fused" and not r["graph"] and r["L"] >= 16384
    ]  # fmt: skip
    targets["bidirectional forward >= 50% of copy bandwidth, L >= 16k"] = {
        "values_pct": dict(bw),
        "met": bool(bw) and all(p is not None and p >= 50 for _, p in bw),
    }
    versus = {}
    for length in BIDIRECTIONAL_LENGTHS:
        ours_ms = _best(rows, "bidirectional forward", "fused", length, graph=False)
        sdpa_ms = _best(rows, "bidirectional forward", "SDPA flash", length, graph=False)
        ours_graph = _best(rows, "bidirectional forward", "fused", length, graph=True)
        sdpa_graph = _best(rows, "bidirectional forward", "SDPA flash", length, graph=True)
        versus[length] = {"fused_ms": ours_ms, "sdpa_ms": sdpa_ms, "fused_graph_ms": ours_graph,
                          "sdpa_graph_ms": sdpa_graph}  # fmt: skip
    targets["bidirectional forward faster than SDPA, every L >= 1k (eager)"] = {
        "values": versus,
        "met": all(v["fused_ms"] and v["sdpa_ms"] and v["fused_ms"] < v["sdpa_ms"] for v in versus.values()),
        "met_with_graphs_where_measured": all(
            (v["fused_graph_ms"] or v["fused_ms"] or 1e9) < (v["sdpa_graph_ms"] or v["sdpa_ms"] or 0)
            for v in versus.values()
        ),
    }
    causal = {}
    for length in CAUSAL_LENGTHS:
        causal[length] = {
            "fused_ms": _best(rows, "causal fwd+bwd", "fused", length),
            "fla_ms": _best(rows, "causal fwd+bwd", "fla chunk_linear_attn", length),
        }
    targets["causal fwd+bwd at least as fast as fla chunk_linear_attn"] = {
        "values": causal,
        "met": all(c["fused_ms"] and c["fla_ms"] and c["fused_ms"] <= c["fla_ms"] for c in causal.values()),
        "note": fla_note,
    }
    decode = {
        (context, graph): _best(rows, "decode step B=8 H=16", "fused", context, graph=graph)
        for context in DECODE_CONTEXTS
        for graph in (False, True)
    }
    contexts = DECODE_CONTEXTS

    def within(graph: bool) -> bool:
        return all(decode[(c, graph)] is not None and decode[(c, graph)] <= 0.020 for c in contexts)

    targets["decode step <= 20 us at B=8 H=16 D=64, flat in context"] = {
        "values_us": {
            f"context={c} graph={g}": None if ms is None else round(ms * 1e3, 1) for (c, g), ms in decode.items()
        },
        "met_with_graph_replay": within(True),
        "met_eager": within(False),
    }
    ours["targets"] = targets
    ours["fla_rows"] = [r for r in rows if r["impl"].startswith("fla")]
    with open(ours_path, "w") as handle:
        json.dump(ours, handle, indent=1)
    print(f"\n=== ELA kernels on {ours.get('device')} (copy {ours.get('copy_GBps')} GB/s); ms, median ===")
    header = f"{'section':24s} {'impl':24s} {'L':>7s} {'graph':>5s} {'ms':>10s} {'%copy':>6s}"
    print(header)
    for r in rows:
        if r["section"].startswith("tuning") and "ms" not in r:
            continue
        ms = f"{r['ms']:.4f}" if "ms" in r else "ERR"
        pct = f"{r['pct_of_copy']:.0f}" if r.get("pct_of_copy") is not None else ""
        print(f"{r['section'][:24]:24s} {r['impl'][:24]:24s} {r['L']:7d} {str(r['graph'])[:5]:>5s} {ms:>10s} {pct:>6s}")
    for name, target in targets.items():
        met = {k: v for k, v in target.items() if k.startswith("met")}
        print(f"TARGET {name}: {met}")
    return ours


def _smoke_sizes() -> None:
    """The CPU smoke test's device and tiny sizes (SHORT_COMPARE_MAX stays: the smoke lengths are below it)."""
    global DEVICE, BIDIRECTIONAL_LENGTHS, CAUSAL_LENGTHS, GRAPH_MAX, DECODE_CONTEXTS, SWEEP_LENGTHS, STAGE_LENGTHS
    DEVICE, BIDIRECTIONAL_LENGTHS, CAUSAL_LENGTHS, GRAPH_MAX = "cpu", (64, 128), (64, 128), 64
    DECODE_CONTEXTS, SWEEP_LENGTHS = (16, 32), {"bidirectional": 64, "causal": 64}
    STAGE_LENGTHS = (128,)


def command(args: dict[str, Any]) -> int:
    """Handler of ``yolo-lat benchmark kernels``: run ``part`` (ours, fla or summary), printing one JSON
    line per row (summary: a table and the targets), and write ``out``.

    Args:
        args: :data:`DEFAULTS` with the given values.

    Returns:
        The exit status, 0.

    Example:
        >>> from yolo_lat.cli import main
        >>> main(["benchmark", "kernels", "part=our"])
        Traceback (most recent call last):
        ...
        yolo_lat.args.ArgumentError: part='our': choose from ours, fla, summary
    """
    part, sections = args["part"], [str(name) for name in args["sections"]]
    if part not in PARTS:
        raise ArgumentError(f"part={part!r}: choose from {', '.join(PARTS)}")
    unknown = [name for name in sections if name not in SECTIONS]
    if unknown:
        raise ArgumentError(f"sections: unknown section {unknown[0]!r}; choose from {', '.join(SECTIONS)}")
    if args["smoke"]:
        _smoke_sizes()
    if part != "summary":
        Path(args["out"]).parent.mkdir(parents=True, exist_ok=True)
    if part == "ours":
        bench_ours(args["out"], args["budget"], set(sections) if sections else None)
    elif part == "fla":
        bench_fla(args["out"])
    else:
        summarize(args["out"], args["fla"] or None)
    return 0
