"""Bidirectional ELA forward as one kernel launch, compiled ahead of time to PTX for TensorRT.

TensorRT's ahead-of-time plugin interface (``tensorrt.plugin.aot_impl``, TensorRT >= 10.8)
embeds one compiled kernel in the engine and launches it itself, so an engine with
``yolo_lat::ELA`` nodes runs without Python or PyTorch. That interface allows a single launch
whose arguments are the input pointers, then int32 scalars, then the output pointers, over
contiguous tensors. :func:`bidirectional_forward` of :mod:`.bidirectional` needs three launches
(split-key partial states, combine, readout), so this module's kernel is the one-launch form
(:func:`~.bidirectional.attend_tile`, which the PyTorch side also runs for short key sequences):
each program folds *all* keys of its (batch, head) into a state (the same online per-feature
shift) and reads it out for one tile of queries. Programs of one head re-read that head's keys
and values (from L2 for the vision blocks' sizes). The scale is compiled in (TensorRT passes only
int32 scalars).

Example:
    >>> kernel = compile_for_tensorrt(0, "fp16", 32, 32, scale=32**-0.5)  # doctest: +SKIP
    >>> kernel.name, kernel.num_warps  # doctest: +SKIP
    ('_single_launch_kernel', 4)
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch
import triton
import triton.language as tl
from torch import Tensor

from ._common import TL_DTYPES, kernel_flags, launch_options, state_warps
from .bidirectional import attend_tile
from .buffers import cdiv, empty
from .dispatch import SUPPORTED_DIMS
from .ops import KERNEL_IDS

__all__ = ["BLOCK_ROWS", "AOTKernel", "compile_for_tensorrt", "single_launch_forward", "strip_unused_trailing_params"]

#: Query rows per program (and key rows per step of the fold).
BLOCK_ROWS = 64
#: The kernel's dtypes by Triton name (its pointer type is ``*`` + the name).
DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
_NAMES = {dtype: name for name, dtype in DTYPES.items()}


@triton.jit
def _single_launch_kernel(
    q_ptr, k_ptr, v_ptr, length_q, length_k, out_ptr,
    SCALE: tl.constexpr, D: tl.constexpr, DV: tl.constexpr, BL: tl.constexpr, KERNEL: tl.constexpr,
    LOG_DOMAIN: tl.constexpr, HAS_EXTRA: tl.constexpr, EW: tl.constexpr, DT: tl.constexpr,
):  # fmt: skip
    # contiguous (B, H, L, D) tensors: one (batch, head) is a block of L rows, bh = b * H + h
    bh = tl.program_id(1).to(tl.int64)
    attend_tile(
        q_ptr + bh * length_q * D, k_ptr + bh * length_k * D, v_ptr + bh * length_k * DV, out_ptr + bh * length_q * DV,
        D, 1, D, 1, DV, 1, DV, 1, tl.program_id(0), length_q, length_k, SCALE,
        D, DV, BL, KERNEL, LOG_DOMAIN, HAS_EXTRA, EW, DT,
    )  # fmt: skip


def _constants(kernel_id: int, dtype: str, head_dim: int, value_dim: int, scale: float) -> dict:
    if dtype not in DTYPES:
        raise ValueError(f"dtype {dtype!r}: the ELA kernel is built for {', '.join(DTYPES)}")
    if kernel_id not in KERNEL_IDS.values():
        raise ValueError(f"kernel_id {kernel_id}: use 0 (Hadamard Exp) .. 3 (modulated dot)")
    for name, dim in (("head dim", head_dim), ("value dim", value_dim)):
        if dim not in SUPPORTED_DIMS:
            raise ValueError(f"{name} {dim}: the ELA kernel is built for 16, 32, 64 or 128")
    flags = kernel_flags(kernel_id, head_dim)
    return {"SCALE": float(scale), **flags, "DV": value_dim, "BL": BLOCK_ROWS, "DT": TL_DTYPES[DTYPES[dtype]]}


def single_launch_forward(q: Tensor, k: Tensor, v: Tensor, kernel_id: int, scale: float) -> Tensor:
    """Run the single-launch kernel through Triton (tests, and the interpreter on a CPU).

    Args:
        q: ``(B, H, Lq, D)``; k: ``(B, H, Lk, D)``; v: ``(B, H, Lk, Dv)``; one dtype among
            float32/float16/bfloat16 (made contiguous here; TensorRT's tensors already are).
        kernel_id: 0 Hadamard Exp, 1 sum / 2 sub squared Euclidean, 3 modulated dot.
        scale: multiplies q and k before the feature maps.

    Returns:
        ``(B, H, Lq, Dv)`` in v's dtype.
    """
    q, k, v = (t.contiguous() for t in (q, k, v))
    batch, heads, length_q, head_dim = q.shape
    constants = _constants(kernel_id, _NAMES[v.dtype], head_dim, v.shape[-1], scale)
    out = empty(batch, heads, length_q, v.shape[-1], device=q.device, dtype=v.dtype)  # NaN when poisoned
    if out.numel():
        grid = (cdiv(length_q, BLOCK_ROWS), batch * heads)
        options = _launch_options(head_dim, v.shape[-1], v.dtype)
        _single_launch_kernel[grid](q, k, v, length_q, k.shape[2], out, **constants, **options)
    return out


def _launch_options(head_dim: int, value_dim: int, dtype: torch.dtype) -> dict:
    """Warps of the key pass the kernel runs, and the register limit of the fused kernels."""
    return launch_options("_single_launch_kernel", state_warps(head_dim, value_dim, dtype), dtype, head_dim, value_dim)


@dataclass(frozen=True)
class AOTKernel:
    """A compiled kernel as TensorRT's AOT plugin interface wants it."""

    name: str
    ptx: str
    num_warps: int
    shared_bytes: int


def compile_for_tensorrt(
    kernel_id: int, dtype: str, head_dim: int, value_dim: int, scale: float, arch: int = 90
) -> AOTKernel:
    """Compile the single-launch kernel to PTX for ``sm_<arch>`` (no GPU needed).

    Args:
        kernel_id: 0 Hadamard Exp, 1 sum / 2 sub squared Euclidean, 3 modulated dot.
        dtype: ``fp32``, ``fp16`` or ``bf16`` (q, k, v and the output).
        head_dim, value_dim: 16, 32, 64 or 128.
        scale: multiplies q and k before the feature maps (compiled in).
        arch: compute capability as an integer (90 for Hopper, 80 for Ampere).

    Returns:
        :class:`AOTKernel` with the PTX and the launch configuration: grid
        ``(ceil(Lq / BLOCK_ROWS), B * H)``, ``num_warps * 32`` threads per program.

    Raises:
        ValueError: an unsupported dtype, kernel or dimension.
    """
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    constants = _constants(kernel_id, dtype, head_dim, value_dim, scale)
    pointer = f"*{dtype}"
    signature = {
        "q_ptr": pointer,
        "k_ptr": pointer,
        "v_ptr": pointer,
        "length_q": "i32",
        "length_k": "i32",
        "out_ptr": pointer,
        **{name: "constexpr" for name in constants},
    }
    source = ASTSource(fn=_single_launch_kernel, signature=signature, constexprs=constants)
    options = _launch_options(head_dim, value_dim, DTYPES[dtype])
    compiled = triton.compile(source, target=GPUTarget("cuda", arch, 32), options=options)
    own_args = sum(1 for kind in signature.values() if kind != "constexpr")
    return AOTKernel(
        name=compiled.metadata.name,
        ptx=strip_unused_trailing_params(compiled.asm["ptx"], compiled.metadata.name, own_args),
        num_warps=compiled.metadata.num_warps,
        shared_bytes=compiled.metadata.shared,
    )


def strip_unused_trailing_params(ptx: str, name: str, keep: int) -> str:
    """Drop the parameters after the first ``keep`` from the PTX entry ``name``, if none is read.

    Triton appends hidden parameters to every kernel (global and profile scratch pointers, Triton
    3.3+); TensorRT launches an AOT kernel with exactly the plugin's inputs, scalars and outputs.
    A kernel that never reads the hidden parameters (no ``ld.param`` of them) keeps the same
    code with a shorter signature.

    Raises:
        ValueError: the entry is missing, has fewer than ``keep`` parameters, or reads a
            parameter that would be dropped.
    """
    entry = re.search(rf"\.entry {re.escape(name)}\((.*?)\)", ptx, re.S)
    if entry is None:
        raise ValueError(f"PTX has no entry {name!r}")
    params = [p.strip() for p in entry.group(1).split(",") if p.strip()]
    if len(params) < keep:
        raise ValueError(f"PTX entry {name!r} has {len(params)} parameters, expected at least {keep}")
    body = ptx[entry.end() :]
    for param in params[keep:]:
        param_name = param.split()[-1]
        if f"[{param_name}]" in body:
            raise ValueError(f"PTX entry {name!r} reads its hidden parameter {param_name}; it cannot run as AOT")
    kept = ",\n".join(f"\t{p}" for p in params[:keep])
    return ptx[: entry.start(1)] + "\n" + kept + "\n" + ptx[entry.end(1) :]
