"""Host-side cost of the fused ops' eager calls, measured on a machine without a GPU.

An eager decode step or a short attention is bound by its Python side (checks, allocations,
Triton's argument binding), not by the GPU (compare an eager decode step with its CUDA-graph replay
in ``benchmarks/results/gpu_bench.json``). That Python side runs the same
without a GPU, so this script measures it here: the kernels are compiled for sm_90 with
:mod:`yolo_lat.bench.compile_check`'s stand-in driver, and the C launcher is replaced by a no-op,
so each call does everything but the launch itself. Times are reported as multiples of a minimal Triton launch
(one pointer argument) timed in the same run; absolute microseconds of this CPU are in the JSON
too, for reference only.

Run ``yolo-lat benchmark launch_overhead`` with ``key=value`` overrides (``--help`` lists them)::

    yolo-lat benchmark launch_overhead out=benchmarks/results/launch_overhead_cpu.json

Prints one table, then the number of module-level globals Triton re-checks on every launch of
each kernel that ran, and writes JSON (unless ``out`` is empty).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import torch
import triton
import triton.language as tl
from triton.compiler.compiler import CompiledKernel
from triton.runtime.driver import driver
from triton.runtime.jit import JITFunction

from yolo_lat import settings
from yolo_lat.args import ArgumentError
from yolo_lat.bench.compile_check import HopperStandIn
from yolo_lat.cuda_ops import bidirectional, causal, decode, dispatch
from yolo_lat.cuda_ops.bidirectional import bidirectional_forward, bidirectional_output
from yolo_lat.cuda_ops.causal import causal_forward
from yolo_lat.cuda_ops.decode import decode_step
from yolo_lat.ela import ELAState, backend, ela_attention, ela_step, get_kernel

DEFAULTS: dict[str, Any] = {"calls": 2000, "repeats": 7, "out": "runs/benchmark/launch_overhead.json"}
DOCS = {
    "calls": "calls per timing",
    "repeats": "interleaved rounds (each entry's best is kept)",
    "out": "JSON output path (empty: print only)",
}


@triton.jit
def _minimal_kernel(x_ptr):
    tl.store(x_ptr, 1.0)


def _stub_launcher() -> None:
    """Compile for sm_90 without a GPU and make every launch a no-op after the Python side."""
    if settings.get().interpreter:
        raise RuntimeError("timing compiled launches needs real kernels: turn the interpreter setting off")
    driver.set_active(HopperStandIn())
    CompiledKernel._init_handles = lambda self: None
    CompiledKernel.function = None
    CompiledKernel.run = property(lambda self: lambda *args: None)


def _best_us(calls: dict, n_calls: int, repeats: int) -> dict[tuple[str, bool], float]:
    """Best time per call of each entry, in us, with direct launches on and off: ``repeats``
    rounds, each timing ``n_calls`` calls of every (entry, mode) in turn (interleaved, so a slow
    spell of the machine hits all entries alike)."""
    for fn in calls.values():
        fn()  # compile
    best = {(name, direct): float("inf") for name in calls for direct in (True, False)}
    for _ in range(repeats):
        for name, direct in best:
            fn = calls[name]
            with settings.override(direct_launch=direct):
                begin = time.perf_counter()
                for _ in range(n_calls):
                    fn()
                best[name, direct] = min(best[name, direct], (time.perf_counter() - begin) / n_calls * 1e6)
    return best


def _calls() -> dict:
    """The eager entry points, as zero-argument callables (bf16, D = Dv = 64, Hadamard Exp)."""
    dispatch._device_reason = lambda *tensors: None  # the tensors are on the CPU: accept them
    backend._on_gpu = lambda q: True  # and send the public entry points to the fused kernels
    kernel = get_kernel("hadamard_exp")
    bf16 = torch.bfloat16
    step = [torch.randn(8, 16, 64, dtype=bf16) for _ in range(3)]  # the decode shape
    state = ELAState(torch.zeros(8, 16, 64, 64), torch.zeros(8, 16, 64), torch.zeros(8, 16, 64), kernel.name, 1)
    q, k, v = (torch.randn(1, 8, 1024, 64, dtype=bf16) for _ in range(3))
    x = torch.empty(1)
    return {
        "minimal Triton launch (1 argument)": lambda: _minimal_kernel[(1,)](x),
        "decode step: kernel launch": lambda: decode_step(*step, state.S, state.C, state.shift, 0, 0.125),
        "decode step: ela_step_fused (checks + launch)": lambda: dispatch.ela_step_fused(*step, state, kernel, 0.125),
        "bidirectional output, one launch (L=1k)": lambda: bidirectional_output(q, k, v, 0, 0.125),
        "bidirectional forward with state, 3 launches (L=1k)": lambda: bidirectional_forward(q, k, v, 0, 0.125),
        "causal forward, inference (L=1k)": lambda: causal_forward(q, k, v, None, None, None, 0, 0.125, False),
        "public ela_step (decode step)": lambda: ela_step(*step, state, scale=0.125),
        "public ela_attention, bidirectional (L=1k)": lambda: ela_attention(q, k, v, scale=0.125),
    }


def checked_globals() -> dict[str, int]:
    """Per kernel launched so far: module-level names Triton re-checks on every launch of it
    (0 when the kernels read their constants as ``const.NAME``, see ``cuda_ops/const.py``)."""
    kernels = {}
    for module in (bidirectional, causal, decode):
        for name, value in vars(module).items():
            launched = isinstance(value, JITFunction) and any(c[0] for c in value.device_caches.values())
            if launched and name.endswith("_kernel"):
                kernels[name] = len(value.used_global_vals)
    return kernels


def command(args: dict[str, Any]) -> int:
    """Handler of ``yolo-lat benchmark launch_overhead``: time every eager entry point with the C launcher
    stubbed, print the table and write ``out`` as JSON (nothing written when ``out`` is empty).

    Args:
        args: :data:`DEFAULTS` with the given values: ``calls`` per timing, ``repeats`` rounds, ``out``.

    Returns:
        The exit status, 0.
    """
    if args["calls"] < 1 or args["repeats"] < 1:
        raise ArgumentError(f"calls={args['calls']} repeats={args['repeats']}: both must be at least 1")
    torch.set_num_threads(1)
    _stub_launcher()
    best = _best_us(_calls(), args["calls"], args["repeats"])
    unit = best["minimal Triton launch (1 argument)", True]
    rows = []
    for (name, direct), us in best.items():
        if direct:
            through_triton = best[name, False]
            rows.append({"call": name, "host_us": round(us, 2), "minimal_launches": round(us / unit, 2),
                         "host_us_triton_binding": round(through_triton, 2),
                         "minimal_launches_triton_binding": round(through_triton / unit, 2)})  # fmt: skip
    record = {
        "benchmark": "launch_overhead",
        "method": f"best of {args['repeats']} interleaved rounds of {args['calls']} eager calls per entry; Triton's C "
        "launcher stubbed (no GPU), kernels compiled for sm_90; ratios to the minimal launch of the same run; "
        "each entry with cuda_ops' direct launches (host_us) and through Triton's own binding on every call "
        "(direct_launch=False, *_triton_binding)",
        "torch": torch.__version__,
        "triton": triton.__version__,
        "rows": rows,
        "checked_globals_per_launch": checked_globals(),
    }
    if args["out"]:
        out = Path(args["out"])
        out.parent.mkdir(parents=True, exist_ok=True)
        partial = out.with_suffix(out.suffix + ".partial")
        partial.write_text(json.dumps(record, indent=1) + "\n")
        partial.replace(out)
    width = max(len(r["call"]) for r in rows)
    print(f"{'call':{width}s}  host us  x minimal launch  x minimal, Triton binding")
    for r in rows:
        print(f"{r['call']:{width}s}  {r['host_us']:7.1f}  {r['minimal_launches']:16.2f}  "
              f"{r['minimal_launches_triton_binding']:25.2f}")  # fmt: skip
    print(f"module-level globals Triton checks per launch: {record['checked_globals_per_launch']}")
    return 0
