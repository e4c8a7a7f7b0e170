"""CPU-side guarantees around the GPU kernels: torch.compile of ela_attention, imports without
Triton, and the kernels still compiling for a Hopper GPU (sm_90) with Triton's own toolchain.

Runs without the Triton interpreter (the compile check needs real JIT functions), so every check
that imports yolo_lat.cuda_ops does it in a subprocess.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import rel_err

from yolo_lat.ela import ela_attention

ROOT = Path(__file__).resolve().parents[1]


def _run(code_or_args, timeout=300, env=None):
    args = [sys.executable, "-c", code_or_args] if isinstance(code_or_args, str) else [sys.executable, *code_or_args]
    environment = {**os.environ, **(env or {})}
    environment.pop("TRITON_INTERPRET", None)
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout, cwd=ROOT, env=environment)


@pytest.mark.slow
@pytest.mark.parametrize("causal", [False, True])
def test_ela_attention_compiles_fullgraph_on_cpu(causal):
    """Inductor, fullgraph: the PyTorch path traces without graph breaks and matches eager
    (measured difference <= 1.2e-7 in float32, so 1e-5 relative)."""
    torch._dynamo.reset()
    compiled = torch.compile(
        lambda q, k, v: ela_attention(q, k, v, causal=causal, scale=0.3, chunk_size=8), fullgraph=True
    )
    q, k, v = (torch.randn(1, 2, 16, 8) for _ in range(3))
    assert rel_err(compiled(q, k, v), ela_attention(q, k, v, causal=causal, scale=0.3, chunk_size=8)) <= 1e-5


@pytest.mark.parametrize(("kernel", "causal"), [("hadamard_exp", True), ("sub_sq_euclid", False)])
def test_compiled_shapes_that_recompile(kernel, causal):
    """New lengths (a partial chunk, then 1) recompile, with dynamic shapes, and still match."""
    torch._dynamo.reset()

    def attention(q, k, v):
        return ela_attention(q, k, v, kernel=kernel, causal=causal, scale=0.5, chunk_size=8)

    compiled = torch.compile(attention, fullgraph=True, backend="aot_eager")
    for length in (16, 9, 1):
        q, k, v = (torch.randn(2, 2, length, 8, requires_grad=True) for _ in range(3))
        out = compiled(q, k, v)
        expected = attention(*(t.detach().clone() for t in (q, k, v)))
        assert out.shape == (2, 2, length, 8) and rel_err(out, expected) <= 1e-5
        out.sum().backward()
        assert all(torch.isfinite(t.grad).all() for t in (q, k, v))


def test_yolo_lat_imports_and_falls_back_without_triton():
    """With Triton missing, yolo_lat.ela works, cuda_ops reports unavailable, and the dispatch name
    raises ImportError (which yolo_lat.ela.backend turns into the PyTorch fallback)."""
    code = """
import sys
sys.modules["triton"] = None  # as if Triton were not installed
import torch
from yolo_lat.ela import ela_attention
import yolo_lat.cuda_ops as cuda_ops
assert cuda_ops.available() is False
try:
    from yolo_lat.cuda_ops import ela_dispatch
except ImportError as err:
    print("ImportError:", err)
else:
    raise SystemExit("expected ImportError")
q = torch.randn(1, 1, 5, 4)
print("out", tuple(ela_attention(q, q, q, causal=True).shape))
"""
    result = _run(code, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "ImportError:" in result.stdout and "out (1, 1, 5, 4)" in result.stdout


@pytest.mark.slow
def test_kernels_compile_for_hopper_without_a_gpu():
    """Every operation of one configuration builds to an sm_90 cubin (benchmarks/compile_check.py)."""
    result = _run(["benchmarks/compile_check.py", "--kernels", "0", "--dtypes", "bfloat16", "--dims", "64x64"])
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    assert result.stdout.count("\nok ") + result.stdout.startswith("ok ") == 6
    assert "0 failure(s)" in result.stdout
