"""CPU-side guarantees around the GPU kernels: torch.compile of ela_attention, imports without
Triton, and the kernels still compiling for a Hopper GPU (sm_90) with Triton's own toolchain.

Runs without the Triton interpreter (the compile check needs real JIT functions), so every check
that imports yolo_lat.cuda_ops does it in a subprocess.
"""

import ast
import json
import os
import re
import subprocess
import sys
from collections import Counter
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


#: Compiles every operation of Hadamard Exp (0) and the modulated dot (3, a linear-domain kernel)
#: for sm_90 in bfloat16, D = Dv = 64, and prints the tensor-core products (M x K x N) that
#: Triton's GPU IR holds for each Triton kernel, as JSON.
_TENSOR_CORE_PRODUCTS = r"""
import json, re, sys
import torch
from yolo_lat.bench import compile_check

compile_check.install_compile_only()
product = re.compile(r"(?:tt\.dot|ttng\.warp_group_dot) .*?: \S*<(\d+)x(\d+)x\w+.*?\* \S*<\d+x(\d+)x")
report = {}
for kernel_id in (0, 3):
    for operation, launch in compile_check.operations(kernel_id, torch.bfloat16, 64, 64).items():
        compile_check.COMPILED[:] = []
        launch()
        for function, compiled in compile_check.COMPILED:
            shapes = sorted("x".join(m.groups()) for m in product.finditer(compiled.asm["ttgir"]))
            report[f"{kernel_id}|{operation}|{function}"] = shapes
print(json.dumps(report))
"""


@pytest.mark.slow
def test_kernels_compile_for_hopper_with_the_same_tensor_core_products():
    """Every operation builds to an sm_90 cubin, and the linear-domain kernels use exactly the
    tensor-core products of Hadamard Exp.

    On the first H200 run the linear-domain kernels in bfloat16/float16 (and only they) failed:
    wrong key gradients (bidirectional backward) and illegal memory accesses (causal), while
    their float32 variants (no tensor cores) and every Hadamard Exp variant were right, and the
    interpreter finds no out-of-bounds access (test_cuda_ops_bounds.py). What set them apart was
    the extra-feature tile: 16-wide ``tl.dot`` products beside the 64-wide ones, lowered to mixed
    MMAv2/wgmma code that Triton 3.6 miscompiles. The extra features now use float32 rank-2
    updates (``extra_*`` in _common.py); this test fails if a product that Hadamard Exp does not
    have (such as the old 64x16x64) comes back.
    """
    result = _run(["-c", _TENSOR_CORE_PRODUCTS], timeout=600)
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    operations = {key.split("|")[1] for key in report}
    assert len(operations) == 7, operations
    hadamard = {key.split("|", 1)[1]: shapes for key, shapes in report.items() if key.startswith("0|")}
    linear = {key.split("|", 1)[1]: shapes for key, shapes in report.items() if key.startswith("3|")}
    assert hadamard.keys() == linear.keys()
    assert hadamard["causal backward|_chunk_grad_kernel"], "no tensor-core product found: the IR pattern is stale"
    for function, shapes in linear.items():
        # Hadamard Exp has more: the exact path for keys that jump inside a chunk (log domain only)
        unmatched = Counter(shapes) - Counter(hadamard[function])
        assert not unmatched, (function, dict(unmatched), hadamard[function])


@pytest.mark.slow
def test_ptxas_gets_a_register_limit_where_it_would_starve_a_kernel():
    """Without ``.maxnreg``, ptxas (Triton 3.8's) built the float32 one-launch forward (64 x 64)
    with 32 registers and 6.1 KB of spill stores per thread, and the modulated-dot causal
    gradients at D=32, Dv=128 in bfloat16 with 128 registers and 6.2 KB; ``launch_options`` sets
    the limit there (measured with it: 255 registers, 1.5 KB and 3.6 KB)."""
    args = ["-m", "yolo_lat.cli", "benchmark", "compile_check", "registers=True"]
    runs = [
        _run([*args, "kernels=0", "dtypes=float32", "dims=64x64"], timeout=600),
        _run([*args, "kernels=3", "dtypes=bfloat16", "dims=32x128"], timeout=600),
    ]
    reports = []
    for result in runs:
        assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
        reports += re.findall(r"(\w+): regs (\d+) spill-stores (\d+)B", result.stdout)
    assert len(reports) >= 2 * 14, reports  # every launch of the seven operations, twice
    starved = [(name, regs, spill) for name, regs, spill in reports if int(regs) <= 128 and int(spill) > 1024]
    assert not starved, starved
    short = [int(spill) for name, _, spill in reports if name == "_short_kernel"]
    assert short and max(short) <= 2048, short


@pytest.mark.slow
def test_gpu_bench_times_every_stage_and_setting(tmp_path):
    """``yolo-lat benchmark kernels`` (CPU smoke mode, kernels in the interpreter): the per-launch stage
    rows and the settings sweep call the kernels' real entry points, so a renamed stage function
    or tuning constant fails here and not on the GPU, where the run is short and costly."""
    out = tmp_path / "bench.json"
    environment = {**os.environ, "TRITON_INTERPRET": "1"}
    args = [sys.executable, "-m", "yolo_lat.cli", "benchmark", "kernels", "part=ours", "smoke=True"]
    args += ["sections=stages,tuning"]
    result = subprocess.run([*args, f"out={out}"], capture_output=True, text=True, timeout=300, cwd=ROOT,
                            env=environment)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    rows = json.loads(out.read_text())["rows"]
    assert [r for r in rows if "ms" not in r] == [], "every row timed"
    stages = {(r["section"], r["impl"]) for r in rows if r["section"].endswith("stages")}
    assert stages == {
        ("bidirectional fwd stages", "1 key slices"),
        ("bidirectional fwd stages", "2 combine"),
        ("bidirectional fwd stages", "3 readout"),
        ("causal fwd stages", "1 chunk states"),
        ("causal fwd stages", "1+2 and scan"),
        ("causal fwd stages", "1+2+3 and outputs"),
    }
    swept = {r["impl"] for r in rows if r["section"].startswith("tuning")}
    from_table = {f"{name}={value}" for _, _, name, values in _bench_tuning() for value in values}
    assert swept == from_table and len(swept) == 22


def _bench_tuning():
    """``TUNING`` of yolo_lat.bench.kernels, read from its source (importing it would import the
    kernels, in whatever interpreter mode this process has)."""
    tree = ast.parse((ROOT / "yolo_lat" / "bench" / "kernels.py").read_text())
    (value,) = [n.value for n in tree.body if isinstance(n, ast.Assign) and ast.unparse(n.targets[0]) == "TUNING"]
    return ast.literal_eval(value)


_AOT_COMPILE = r"""
import json, os, re, subprocess, sys, tempfile
from triton import knobs
from yolo_lat.cuda_ops.aot import compile_for_tensorrt

report = {}
for kernel_id, dtype, dim in ((0, "fp16", 32), (1, "fp16", 32), (2, "fp32", 16), (3, "bf16", 64), (0, "bf16", 128)):
    kernel = compile_for_tensorrt(kernel_id, dtype, dim, dim, 0.125)
    params = re.search(r"\.entry (\w+)\((.*?)\)", kernel.ptx, re.S)
    with tempfile.NamedTemporaryFile("w", suffix=".ptx", delete=False) as handle:
        handle.write(kernel.ptx)
    ptxas = subprocess.run([knobs.nvidia.ptxas.path, "-arch=sm_90a", "-o", os.devnull, handle.name],
                           capture_output=True, text=True)
    report[f"{kernel_id}|{dtype}|{dim}"] = {
        "entry": params.group(1), "params": params.group(2).count(".param"), "name": kernel.name,
        "warps": kernel.num_warps, "ptxas": ptxas.returncode, "ptxas_err": ptxas.stderr[-300:],
    }
print(json.dumps(report))
"""


@pytest.mark.slow
def test_tensorrt_aot_kernel_compiles_to_ptx_without_a_gpu():
    """The single-launch kernel of the TensorRT AOT plugin builds to PTX for sm_90 on this CPU; the
    entry keeps exactly TensorRT's arguments (q, k, v, length_q, length_k, out: Triton's hidden
    scratch pointers are stripped) and ptxas assembles it."""
    result = _run(["-c", _AOT_COMPILE], timeout=600)
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert len(report) == 5
    for key, entry in report.items():
        assert entry["entry"] == entry["name"] == "_single_launch_kernel", key
        assert entry["params"] == 6, (key, entry)
        assert entry["ptxas"] == 0, (key, entry["ptxas_err"])
    assert report["3|bf16|64"]["warps"] == report["0|fp16|32"]["warps"] == 4 and report["2|fp32|16"]["warps"] == 8


@pytest.mark.slow
def test_launch_overhead_times_every_eager_entry_point(tmp_path):
    """``yolo-lat benchmark launch_overhead``: kernels built for sm_90, the C launcher stubbed; every row is
    timed, as a multiple of the minimal launch measured in the same run (the first row), and no
    kernel reads a constant that Triton would re-check on every launch (cuda_ops/const.py)."""
    out = tmp_path / "launch.json"
    result = _run(["-m", "yolo_lat.cli", "benchmark", "launch_overhead", "calls=20", "repeats=1", f"out={out}"])
    assert result.returncode == 0, result.stderr[-3000:]
    rows = json.loads(out.read_text())["rows"]
    assert rows[0]["call"] == "minimal Triton launch (1 argument)" and len(rows) == 8
    assert rows[0]["minimal_launches"] == 1.0
    assert all(r["host_us"] > 0 and r["minimal_launches"] > 0 for r in rows)
    assert all(r["host_us_triton_binding"] > 0 and r["minimal_launches_triton_binding"] > 0 for r in rows)
    assert result.stdout.splitlines()[-2].startswith("public ela_attention, bidirectional")
    checked = json.loads(out.read_text())["checked_globals_per_launch"]
    assert {"_decode_step_kernel", "_short_kernel", "_state_partial_kernel", "_chunk_output_kernel"} <= set(checked)
    assert set(checked.values()) == {0}, f"kernels read module-level constexprs by bare name: {checked}"
