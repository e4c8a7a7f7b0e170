"""Compile the fused ELA kernels for a Hopper GPU (sm_90) on a machine without one.

Triton compiles through its own LLVM and the ``ptxas`` bundled in its wheel, so every kernel
variant can be built to a cubin on the CPU: a compile error (a shape ``tl.dot`` refuses, a type
mismatch, a lowering failure) shows up here instead of on the GPU. A stand-in driver reports the
target and the launches are turned into ``warmup`` calls (compile, do not run). With
``registers=True``, ``ptxas -v`` reports registers and spills of each kernel; with ``ir=True``, also
what one iteration of each kernel's loops costs in the sm_90 IR (:func:`ir_report`): a proxy for
speed that needs no GPU, used to compare kernel variants before a GPU run times them.

Run ``yolo-lat benchmark compile_check`` with ``key=value`` overrides (``--help`` lists them)::

    yolo-lat benchmark compile_check                      # the default matrix
    yolo-lat benchmark compile_check kernels=0 dtypes=bfloat16 dims=64x64 registers=True
    yolo-lat benchmark compile_check kernels=0 dtypes=bfloat16 dims=64x64 ir=True
    # with another Triton release (for example the one on the GPU machine) instead of the installed one:
    pip install --target /tmp/triton36 triton==3.6.0
    PYTHONPATH=/tmp/triton36 yolo-lat benchmark compile_check registers=True

:class:`HopperStandIn` and :func:`install_compile_only` also serve :mod:`yolo_lat.bench.launch_overhead`
and the launcher test, which compile for sm_90 the same way.

Prints one line per (configuration, operation) and exits 1 if any compile failed.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
import time
from typing import Any

import torch
from triton import knobs
from triton.backends.compiler import GPUTarget
from triton.runtime.driver import driver
from triton.runtime.jit import JITFunction

from yolo_lat import settings
from yolo_lat.args import ArgumentError
from yolo_lat.cuda_ops.bidirectional import attend_short, bidirectional_forward
from yolo_lat.cuda_ops.bidirectional_backward import bidirectional_backward
from yolo_lat.cuda_ops.buffers import feature_count
from yolo_lat.cuda_ops.causal import causal_forward
from yolo_lat.cuda_ops.causal_backward import causal_backward
from yolo_lat.cuda_ops.decode import decode_step

DEFAULTS: dict[str, Any] = {
    "kernels": [0, 1, 2, 3],
    "dtypes": ["bfloat16", "float16", "float32"],
    "dims": ["64x64", "16x16", "128x128", "32x128"],
    "registers": False,
    "ir": False,
}
DOCS = {
    "kernels": "kernel ids: 0 hadamard_exp, 1 sum_sq_euclid, 2 sub_sq_euclid, 3 modulated_dot",
    "dtypes": "input dtypes: bfloat16, float16, float32",
    "dims": "head dims as DxDv pairs",
    "registers": "report registers and spills of each kernel (ptxas -v)",
    "ir": "report registers, shared memory and per-loop IR costs",
}
DTYPES = ("bfloat16", "float16", "float32")

#: ``(kernel name, compiled kernel)`` of every compilation since it was last cleared.
COMPILED: list = []


class HopperStandIn:
    """Just enough of a Triton driver to compile for sm_90 without a GPU."""

    def get_current_target(self):
        return GPUTarget("cuda", 90, 32)

    def get_current_device(self):
        return 0

    def get_current_stream(self, device=None):
        return 0

    def get_active_torch_device(self):
        return torch.device("cpu")


def install_compile_only() -> None:
    """Compile for sm_90 from now on: the stand-in driver, direct launches off (every call must reach
    Triton's binding), and every launch turned into a compile recorded in :data:`COMPILED`."""
    if settings.get().interpreter:
        raise RuntimeError("compiling for sm_90 needs real kernels: turn the interpreter setting off")
    driver.set_active(HopperStandIn())
    settings.configure(direct_launch=False)
    run = JITFunction.run

    def compile_only(self, *args, grid, warmup, **kwargs):
        kernel = run(self, *args, grid=grid, warmup=True, **kwargs)
        COMPILED.append((self.__name__, kernel))
        return kernel

    JITFunction.run = compile_only


def _register_report(kernel) -> str:
    """``ptxas -v`` of the kernel's PTX: registers and spill bytes."""
    ptxas = knobs.nvidia.ptxas.path
    with tempfile.NamedTemporaryFile("w", suffix=".ptx", delete=False) as handle:
        handle.write(kernel.asm["ptx"])
    try:
        result = subprocess.run(
            [ptxas, "-arch=sm_90a", "-v", "-o", os.devnull, handle.name], capture_output=True, text=True, check=False
        )
    finally:
        os.unlink(handle.name)
    registers = re.findall(r"Used (\d+) registers", result.stderr)
    spills = re.findall(r"(\d+) bytes spill stores", result.stderr)
    return f"regs {registers[-1] if registers else '?'} spill-stores {spills[-1] if spills else '?'}B"


#: Operations counted per loop iteration by :func:`ir_report`, by short name.
IR_OPS = {
    "dot": r"ttng\.warp_group_dot |tt\.dot ",
    "wait": r"ttng\.warp_group_dot_wait",
    "reduce": r'"tt\.reduce"',
    "convert": r"ttg\.convert_layout",
    "to_smem": r"ttg\.local_alloc %",
    "exp": r"math\.exp2? |math\.log2? ",
}


def _loop_bodies(ttgir: str) -> list[str]:
    """Text of every outermost ``scf.for`` body of a TTGIR listing (nested loops included)."""
    bodies, depth, current = [], 0, None
    for line in ttgir.splitlines():
        if current is None and re.search(r"= scf\.for |^\s*scf\.for ", line):
            current, depth = [], 0
        if current is not None:
            current.append(line)
            depth += line.count("{") - line.count("}")
            if depth <= 0 and len(current) > 1:
                bodies.append("\n".join(current))
                current = None
    return bodies


def ir_report(kernel) -> str:
    """Static costs of a compiled kernel: registers, spills and shared memory from ``ptxas``, the
    PTX barriers, and per iteration of each loop the tensor-core products, their waits, the
    reductions (cross-thread), layout conversions (through shared memory), register tiles stored
    to shared memory and the exp/log calls on tensors."""
    ttgir = kernel.asm["ttgir"]
    loops = []
    for body in _loop_bodies(ttgir):
        counts = {name: len(re.findall(pattern, body)) for name, pattern in IR_OPS.items()}
        loops.append(" ".join(f"{name} {count}" for name, count in counts.items()))
    barriers = len(re.findall(r"\bbar\.sync|barrier\.sync", kernel.asm["ptx"]))
    shared = getattr(kernel.metadata, "shared", "?")
    loop_text = " | ".join(f"loop{i}: {text}" for i, text in enumerate(loops)) or "no loop"
    return f"{_register_report(kernel)} smem {shared}B bar.sync {barriers} | {loop_text}"


def operations(kernel_id: int, dtype: torch.dtype, head_dim: int, value_dim: int) -> dict:
    """The launches of every fused operation for one configuration, as zero-argument callables."""
    q, k = (torch.randn(1, 2, 100, head_dim, dtype=dtype) for _ in range(2))
    v = torch.randn(1, 2, 100, value_dim, dtype=dtype)
    features = feature_count(head_dim, kernel_id)
    s = torch.zeros(1, 2, features, value_dim)
    c, shift = torch.zeros(1, 2, features), torch.zeros(1, 2, features)
    saved = {}

    def causal_training():
        saved["forward"] = causal_forward(q, k, v, s, c, shift, kernel_id, 0.1, True)

    def causal_gradients():
        r = saved["forward"]
        causal_backward(v.clone(), s, c, q, k, v, r[0], r[8], r[4], r[5], r[6], r[7], kernel_id, 0.1, True)

    return {
        "bidirectional forward": lambda: bidirectional_forward(q, k, v, kernel_id, 0.1),
        "bidirectional inference (one launch)": lambda: attend_short(q, k, v, kernel_id, 0.1),
        "bidirectional backward": lambda: bidirectional_backward(
            v.clone(), None, None, q, k, v, s, c, shift, kernel_id, 0.1
        ),
        "causal forward (training)": causal_training,
        "causal forward (inference)": lambda: causal_forward(q, k, v, None, None, None, kernel_id, 0.1, False),
        "causal backward": causal_gradients,
        "decode step": lambda: decode_step(q[:, :, 0], k[:, :, 0], v[:, :, 0], s, c, shift, kernel_id, 0.1),
    }


def compile_matrix(
    kernel_ids: list[int], dtypes: list[str], dims: list[tuple[int, int]], registers: bool, ir: bool = False
) -> int:
    """Compile every operation for every configuration; return the number of failures."""
    failures = 0
    for kernel_id in kernel_ids:
        for dtype_name in dtypes:
            for head_dim, value_dim in dims:
                launches = operations(kernel_id, getattr(torch, dtype_name), head_dim, value_dim)
                for name, operation in launches.items():
                    label = f"kernel {kernel_id} {dtype_name:8s} D={head_dim:3d} Dv={value_dim:3d} {name}"
                    begin, COMPILED[:] = time.perf_counter(), []
                    try:
                        operation()
                    except Exception as err:  # report every failure, keep compiling the rest
                        failures += 1
                        print(f"FAIL {label}: {type(err).__name__}: {str(err)[:1500]}", flush=True)
                        continue
                    detail = ""
                    if ir:
                        detail = "".join(f"\n     {n}: {ir_report(kern)}" for n, kern in COMPILED)
                    elif registers:
                        detail = "; ".join(f"{n}: {_register_report(kern)}" for n, kern in COMPILED)
                    print(f"ok   {label} ({time.perf_counter() - begin:.1f} s) {detail}", flush=True)
    return failures


def _matrix(args: dict[str, Any]) -> tuple[list[int], list[str], list[tuple[int, int]]]:
    """``(kernel ids, dtype names, (D, Dv) pairs)`` of the arguments; a bad one is an :class:`ArgumentError`."""
    kernel_ids = args["kernels"]
    if not all(isinstance(k, int) and not isinstance(k, bool) and 0 <= k <= 3 for k in kernel_ids):
        raise ArgumentError(f"kernels={','.join(map(str, kernel_ids))}: expected kernel ids 0 to 3")
    dtypes = [str(d) for d in args["dtypes"]]
    for name in dtypes:
        if name not in DTYPES:
            raise ArgumentError(f"dtypes: unknown dtype {name!r}; choose from {', '.join(DTYPES)}")
    dims = []
    for pair in args["dims"]:
        match = re.fullmatch(r"(\d+)x(\d+)", str(pair))
        if match is None:
            raise ArgumentError(f"dims: expected DxDv pairs such as 64x64, got {pair!r}")
        dims.append((int(match[1]), int(match[2])))
    return kernel_ids, dtypes, dims


def command(args: dict[str, Any]) -> int:
    """Handler of ``yolo-lat benchmark compile_check``: compile the matrix for sm_90, print one line per
    (configuration, operation) and the failure count; returns 1 if any compile failed, else 0.

    Example:
        >>> from yolo_lat.cli import main
        >>> main(["benchmark", "compile_check", "dims=64"])
        Traceback (most recent call last):
        ...
        yolo_lat.args.ArgumentError: dims: expected DxDv pairs such as 64x64, got 64
    """
    kernel_ids, dtypes, dims = _matrix(args)
    install_compile_only()
    failures = compile_matrix(kernel_ids, dtypes, dims, args["registers"], args["ir"])
    print(f"{failures} failure(s)")
    return 1 if failures else 0
