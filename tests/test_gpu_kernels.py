"""GPU correctness checks of the fused ELA kernels against float64 references (marker ``gpu``).

Every case draws fresh random inputs, fills every kernel buffer with NaN first (so an element a
kernel forgets to write is caught), runs the fused forward and backward through
``yolo_lat.ela.ela_attention`` / ``ela_step`` with the ``kernels='triton'`` setting, and compares
``||out - ref|| / ||ref||`` for the output, the gradients and the state against the PyTorch path
run in float64 on the same rounded inputs (itself checked against the explicit L x L reference).

Pass criteria:

* float32: every relative error <= 2e-5;
* float16 / bfloat16: every error <= 2x PyTorch's own error at that precision (or <= 1e-4, for
  references that are exactly zero), PyTorch's error being the error of the PyTorch ELA path on
  the same low-precision inputs (it computes in float32 and rounds the result); the error of a
  dense PyTorch attention at that precision (weights rounded to the dtype before the product
  with V, as SDPA does) is recorded too;
* no NaN anywhere, shapes/dtypes as the PyTorch path's.

On a CUDA device every case runs at full size, each in a pytest-xdist worker::

    python -m pytest -m gpu -n 8 --timeout 120 tests/test_gpu_kernels.py --gpu-report gpu_check.json

A CUDA error is sticky (every later CUDA call of that process fails), so a case that hits one ends
its worker (``tests/gpu_report.py``): xdist reports it as crashed and starts a fresh worker, and
the other cases still run. ``--gpu-report`` writes every case's errors and status as JSON (the
layout of ``benchmarks/results/gpu_check.json``). Without CUDA the tiny cases run in Triton's
interpreter on CPU tensors and the others are skipped. ``GPU_CHECK_FAULT="<regex>=<crash|abort|hang>;..."``
makes the cases whose id matches fail that way (a testing aid for the crash handling).
"""

# ruff: noqa: I001 (the interpreter setting, when there is no GPU, comes before Triton and the kernels
# are imported: see yolo_lat/cuda_ops/__init__.py)
import sys

import torch

from yolo_lat import settings

if not torch.cuda.is_available() and "yolo_lat.cuda_ops" not in sys.modules:
    settings.configure(interpreter=True)

from yolo_lat import cuda_ops
from yolo_lat.cuda_ops import KERNEL_IDS, buffers, causal_backward, ela_dispatch, ela_step_fused
from yolo_lat.cuda_ops.aot import single_launch_forward

import json
import math
import os
import re
import subprocess
import time
import traceback
from pathlib import Path

import pytest

from yolo_lat.ela import ELAState, ela_attention, ela_step, get_kernel, naive_attention

ROOT = Path(__file__).resolve().parents[1]
KERNELS = ("hadamard_exp", "sum_sq_euclid", "sub_sq_euclid", "modulated_dot")
FP32_TOL = 2e-5
RATIO = 2.0
#: Low-precision errors below this pass whatever the ratio (half fp16's output rounding, 2e-4).
NEGLIGIBLE = 1e-4
#: Where the kernels run: CUDA, or CPU tensors in Triton's interpreter (tiny cases only).
DEVICE = "cpu" if cuda_ops.INTERPRETED else "cuda"
RUNNABLE = DEVICE == "cpu" or torch.cuda.is_available()

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")  # numpy log(0) / exp(-inf) in the interpreter


def build_cases() -> list[dict]:
    """The case matrix: kernels, dtypes, head dims, odd lengths, layouts, state, exact path."""
    cases = []

    def add(op, kernel="hadamard_exp", dtype="bfloat16", dim=64, value_dim=None, length=1000, **extra):
        cases.append({"op": op, "kernel": kernel, "dtype": dtype, "dim": dim, "value_dim": value_dim or dim,
                      "length": length, **extra})  # fmt: skip

    for op in ("bidirectional", "causal"):
        for length in (1, 63, 1000, 4097):
            add(op, length=length)
        for dtype in ("float16", "float32"):
            add(op, dtype=dtype)
        for dim in (16, 32, 128):
            add(op, dim=dim)
        add(op, dim=32, value_dim=128, length=63)
        for kernel in KERNELS[1:]:
            add(op, kernel=kernel, length=63)
            add(op, kernel=kernel, length=4097)
            if kernel != "sum_sq_euclid":  # float32 compiles slowly; sub_sq differs from it by a sign only
                add(op, kernel=kernel, dtype="float32")
        add(op, kernel="sum_sq_euclid", dtype="float16")
    for op in ("bidirectional", "causal"):  # float16 with many keys: normalised weights near its subnormals
        add(op, dtype="float16", length=4097)
    # linear-domain kernels (F = D + 2) at other head sizes, unequal lengths and in the decode step
    add("bidirectional", kernel="sub_sq_euclid", dim=128, length=77, key_length=1000)
    add("causal", kernel="modulated_dot", dim=32, value_dim=128, length=63)
    add("decode", kernel="sum_sq_euclid", dim=32, value_dim=128, length=1)
    add("bidirectional", length=77, key_length=1000)
    add("bidirectional", layout="channel_first", dim=32, length=1000)
    add("bidirectional", layout="channel_first", dtype="float16", length=4096)
    add("bidirectional", kernel="modulated_dot", layout="channel_first", dim=32, length=1000)
    add("causal", initial_state=True)
    add("causal", kernel="modulated_dot", initial_state=True, dtype="float32")
    add("causal", inputs="jump")
    add("causal", inputs="jump", dtype="float16")
    add("causal", inputs="uniform50")
    add("causal", forward_only=True, length=4097)
    # the causal gradient kernel's other launch shape at these dims (see causal_backward._split_by_default)
    add("causal", split_grad=True)
    add("causal", dtype="float16", split_grad=False)
    for kernel in KERNELS:
        add("decode", kernel=kernel, length=1)
    add("decode", dtype="float32", length=1)
    add("decode", dim=128, length=1)
    # the single-launch kernel that TensorRT's AOT plugin embeds (cuda_ops/aot.py), forward only
    add("aot", dtype="float16", dim=32, length=6400)  # yolo-lat-n's P3 stage at 640 px
    add("aot", dim=64, length=1000, key_length=4097)
    add("aot", kernel="sum_sq_euclid", dtype="float32", dim=16, length=63)
    add("aot", kernel="modulated_dot", dim=128, length=77)
    return cases


def case_id(case: dict) -> str:
    """``op-kernel-dtype-D<dim>x<value dim>-L<length>`` and the case's other fields as ``key=value``."""
    shown = ("op", "kernel", "dtype", "dim", "value_dim", "length")
    extras = [f"{key}={value}" for key, value in case.items() if key not in shown]
    head = [case["op"], case["kernel"], case["dtype"], f"D{case['dim']}x{case['value_dim']}", f"L{case['length']}"]
    return "-".join(head + extras)


def tiny(case: dict) -> bool:
    """Cases the interpreter runs without a GPU: one-token attention, decode steps (a small batch) and
    the AOT kernel (clamped lengths)."""
    return case["length"] <= 1 or case["op"] == "aot"


CASES = build_cases()


def _params(*ops: str) -> list:
    reason = "needs a CUDA device (without one the interpreter runs the tiny cases only)"
    if torch.cuda.is_available():  # but an earlier test module turned the interpreter on in this process
        reason = "the kernels run in Triton's interpreter in this process: run tests/test_gpu_kernels.py alone"
    needs_cuda = pytest.mark.skipif(DEVICE == "cpu", reason=reason)
    unusable = pytest.mark.skip(reason="no CUDA, and yolo_lat.cuda_ops was imported without the interpreter")
    params = []
    for case in CASES:
        if case["op"] in ops:
            marks = [needs_cuda] if not tiny(case) else []
            params.append(pytest.param(case, id=case_id(case), marks=marks if RUNNABLE else [unusable]))
    return params


def _rel(actual, expected, floor_rms: float = 1e-3) -> float:
    """``||actual - expected|| / ||expected||``, the norm floored at an rms of ``floor_rms``.

    The floor only matters for references that are exactly zero, such as the gradients of q and
    k with a single key (the output is that key's value whatever q and k are).
    """
    actual, expected = actual.double(), expected.double()
    denominator = max(expected.norm().item(), floor_rms * math.sqrt(expected.numel()))
    return (actual - expected).norm().item() / denominator


def _generator(case: dict) -> tuple[torch.Generator, int]:
    seed = hash(json.dumps(case, sort_keys=True)) % 2**31  # fresh data every run (str hashes are salted)
    return torch.Generator(device=DEVICE).manual_seed(seed), seed


def _inputs(case: dict, generator):
    """Leaf tensors and a function of them giving ``q, k, v`` (views for the channel-first layout)."""
    dtype = getattr(torch, case["dtype"])
    batch, heads = (1, 4) if case["length"] >= 4000 else (2, 3)
    lq = case["length"]
    lk = case.get("key_length", lq)
    dim, value_dim = case["dim"], case["value_dim"]

    def randn(*shape):
        return torch.randn(*shape, generator=generator, device=DEVICE)

    if case.get("layout") == "channel_first":
        side = int(math.sqrt(lq))
        height, width = side, lq // side
        pixels = height * width
        fmap = randn(batch, 2 * heads * dim + heads * value_dim, height, width).to(dtype)

        def views(fmap):
            q, k = fmap[:, : 2 * heads * dim].reshape(batch, 2, heads, dim, pixels).transpose(-1, -2).unbind(1)
            v = fmap[:, 2 * heads * dim :].reshape(batch, heads, value_dim, pixels).transpose(-1, -2)
            return q, k, v

        return [fmap], views, dim**-0.5
    q, k, v = randn(batch, heads, lq, dim), randn(batch, heads, lk, dim), randn(batch, heads, lk, value_dim)
    if case.get("inputs") == "uniform50":
        q, k = q.uniform_(-50, 50, generator=generator), k.uniform_(-50, 50, generator=generator)
    elif case.get("inputs") == "jump":
        k[:, :, lk // 2 + 10 :] += 60.0
        k[:, :, lk // 2 + 20 :] += 40.0
    scale = None if case.get("inputs") else dim**-0.5
    return [q.to(dtype), k.to(dtype), v.to(dtype)], (lambda q, k, v: (q, k, v)), scale


def _dense_low_precision(q, k, v, kernel, causal, scale):
    """Dense attention at the inputs' precision: weights from float32 scores, rounded to the dtype."""
    kern = get_kernel(kernel)
    factor = 1.0 if scale is None else scale
    a, b = q.float() * factor, k.float() * factor
    scores = kern.pairwise_scores(a, b)
    if not kern.log_domain:
        scores = scores.clamp_min(1e-30).log()
    if causal:
        mask = torch.ones(q.shape[2], k.shape[2], dtype=torch.bool, device=q.device).tril()
        scores = scores.masked_fill(~mask, float("-inf"))
    return torch.softmax(scores, -1).to(v.dtype) @ v


def _forward_backward(fn, leaves, views, grad_out):
    result = fn(*views(*leaves))
    out, state = result if isinstance(result, tuple) else (result, None)
    if grad_out is not None:
        out.backward(grad_out)
    grads = [t.grad for t in leaves] if grad_out is not None else []
    for t in leaves:
        t.grad = None
    return out, state, grads


def _poisoned(fn, *args, **kwargs):
    """``fn(*args, **kwargs)`` with every kernel buffer NaN-filled first, synchronised on CUDA."""
    buffers.POISON_OUTPUTS = True
    try:
        result = fn(*args, **kwargs)
        if DEVICE == "cuda":
            torch.cuda.synchronize()
    finally:
        buffers.POISON_OUTPUTS = False
    return result


def _judge(case, errors, torch_errors, nan, same_inf, dtype_ok) -> dict:
    checks = {"no_nan": not nan, "dtype": dtype_ok, "shift_pattern": same_inf}
    checks["state"] = max(errors["S"], errors["C"]) <= FP32_TOL * 10 and errors["shift_abs"] <= 1e-4
    for name in ("out", "dq", "dk", "dv", "dfeature_map"):
        if name in errors:
            low = max(RATIO * torch_errors[name], NEGLIGIBLE)
            checks[name] = errors[name] <= (FP32_TOL if case["dtype"] == "float32" else low)
    return checks


def run_attention_case(case: dict) -> dict:
    """A bidirectional or causal case: output, gradients and state against float64."""
    generator, seed = _generator(case)
    leaves, views, scale = _inputs(case, generator)
    q, k, v = views(*leaves)
    causal = case["op"] == "causal"
    kernel = case["kernel"]
    initial = initial64 = None
    if case.get("initial_state"):
        prefix = [t[:, :, :50].double() for t in (q, k, v)]
        with settings.override(kernels="torch"):
            _, initial64 = ela_attention(*prefix, kernel=kernel, causal=True, scale=scale, return_state=True)
        initial = ELAState(initial64.S.float(), initial64.C.float(), initial64.shift.float(), kernel, 50)
    training = not case.get("forward_only")
    fused_leaves = [t.detach().clone().requires_grad_(training) for t in leaves]
    reference = [t.detach().double().requires_grad_(training) for t in leaves]
    baseline = [t.detach().clone().requires_grad_(training) for t in leaves]
    grad_out = torch.randn(*q.shape[:3], v.shape[-1], device=DEVICE, generator=generator).to(v.dtype)
    grad_out = grad_out if training else None

    def call(state):
        def attention(q, k, v):
            if DEVICE == "cpu" and settings.get().kernels == "triton":  # CPU tensors: no CUDA dispatch
                return ela_dispatch(q, k, v, get_kernel(kernel), causal, None, scale, True, state, strict=True)
            return ela_attention(
                q, k, v, kernel=kernel, causal=causal, scale=scale, return_state=True, initial_state=state
            )

        return attention

    with settings.override(kernels="triton"):
        out, state, grads = _poisoned(_forward_backward, call(initial), fused_leaves, views, grad_out)
    with settings.override(kernels="torch"):
        grad64 = None if grad_out is None else grad_out.double()
        ref_out, ref_state, ref_grads = _forward_backward(call(initial64), reference, views, grad64)
        base_out, _, base_grads = _forward_backward(call(initial), baseline, views, grad_out)
    record = {"shape": {"q": list(q.shape), "k": list(k.shape), "v": list(v.shape)}, "q_stride": list(q.stride())}
    record["seed"] = seed
    names = ("dq", "dk", "dv") if len(leaves) == 3 else ("dfeature_map",)
    outputs = {"out": (out, ref_out, base_out)}
    for name, g, r, b in zip(names, grads, ref_grads, base_grads):
        outputs[name] = (g, r, b)
    nan = [name for name, (x, _, _) in outputs.items() if x is None or x.isnan().any().item()]
    nan += [n for n, t in (("S", state.S), ("C", state.C), ("shift", state.shift)) if t.isnan().any().item()]
    errors = {name: _rel(x, r) for name, (x, r, _) in outputs.items() if x is not None}
    torch_errors = {name: _rel(b, r) for name, (_, r, b) in outputs.items() if b is not None}
    errors["S"] = _rel(state.S, ref_state.S)
    errors["C"] = _rel(state.C, ref_state.C)
    finite = torch.isfinite(ref_state.shift)
    shift_error = (state.shift.double() - ref_state.shift).abs()[finite]
    errors["shift_abs"] = shift_error.max().item() if shift_error.numel() else 0.0
    same_inf = torch.equal(torch.isfinite(state.shift), finite)
    record.update(errors=errors, torch_path_errors=torch_errors, nan_outputs=nan, shift_inf_pattern_ok=same_inf)
    if q.shape[2] * k.shape[2] <= 4097 * 4097 and case.get("inputs") != "uniform50" and not case.get("initial_state"):
        naive = naive_attention(*(t.detach().double() for t in (q, k, v)), kernel=kernel, causal=causal, scale=scale)
        record["reference_vs_naive"] = _rel(ref_out, naive)
        if v.dtype != torch.float32:
            dense = _dense_low_precision(q.detach(), k.detach(), v.detach(), kernel, causal, scale)
            record["dense_low_precision_error"] = _rel(dense, ref_out)
    record["checks"] = _judge(case, errors, torch_errors, nan, same_inf, out.dtype == v.dtype)
    if case.get("layout") == "channel_first":
        record["checks"]["channel_first_output"] = out.stride(-2) == 1
    return record


def run_decode_case(case: dict) -> dict:
    """Eight fused decode steps after a context, against float64 ``ela_step``."""
    generator, seed = _generator(case)
    dtype = getattr(torch, case["dtype"])
    batch, heads, dim, value_dim, context = 8, 16, case["dim"], case["value_dim"], 300
    if DEVICE == "cpu":
        batch, heads, context = 2, 2, 20
    q, k = (torch.randn(batch, heads, context + 8, dim, device=DEVICE, generator=generator) for _ in range(2))
    v = torch.randn(batch, heads, context + 8, value_dim, device=DEVICE, generator=generator)
    q, k, v = q.to(dtype), k.to(dtype), v.to(dtype)
    scale = dim**-0.5
    with settings.override(kernels="torch"):
        _, state = ela_attention(
            q[:, :, :context], k[:, :, :context], v[:, :, :context], kernel=case["kernel"], causal=True,
            scale=scale, return_state=True,
        )  # fmt: skip
    ref_state, base_state, fused_state = state.to(torch.float64), state, state
    errors, torch_errors, nan = [], [], False
    for t in range(context, context + 8):
        qt, kt, vt = q[:, :, t], k[:, :, t], v[:, :, t]
        kern = get_kernel(case["kernel"])
        y, fused_state = _poisoned(ela_step_fused, qt, kt, vt, fused_state, kern, scale, strict=True)
        with settings.override(kernels="torch"):
            y_ref, ref_state = ela_step(qt.double(), kt.double(), vt.double(), ref_state, scale=scale)
            y_base, base_state = ela_step(qt, kt, vt, base_state, scale=scale)
        nan = nan or bool(y.isnan().any().item() or fused_state.S.isnan().any().item())
        errors.append(_rel(y, y_ref))
        torch_errors.append(_rel(y_base, y_ref))
    error, torch_error = max(errors), max(torch_errors)
    state_error = _rel(fused_state.S, ref_state.S)
    ok = error <= FP32_TOL if dtype == torch.float32 else error <= max(RATIO * torch_error, NEGLIGIBLE)
    return {
        "seed": seed,
        "errors": {"y": error, "S": state_error},
        "torch_path_errors": {"y": torch_error},
        "checks": {"no_nan": not nan, "y": ok, "state": state_error <= FP32_TOL * 10},
    }


def run_aot_case(case: dict) -> dict:
    """The TensorRT AOT plugin's single-launch kernel against float64, judged like the others."""
    generator, seed = _generator(case)
    dtype = getattr(torch, case["dtype"])
    batch, heads = (2, 4) if DEVICE == "cuda" else (1, 2)
    lq, lk = case["length"], case.get("key_length", case["length"])
    if DEVICE == "cpu":
        lq, lk = min(lq, 70), min(lk, 130)
    q = torch.randn(batch, heads, lq, case["dim"], device=DEVICE, generator=generator).to(dtype)
    k = torch.randn(batch, heads, lk, case["dim"], device=DEVICE, generator=generator).to(dtype)
    v = torch.randn(batch, heads, lk, case["value_dim"], device=DEVICE, generator=generator).to(dtype)
    scale = case["dim"] ** -0.5
    out = _poisoned(single_launch_forward, q, k, v, KERNEL_IDS[case["kernel"]], scale)
    with settings.override(kernels="torch"):
        ref = ela_attention(q.double(), k.double(), v.double(), kernel=case["kernel"], scale=scale)
        base = ela_attention(q, k, v, kernel=case["kernel"], scale=scale)
    errors, torch_errors = {"out": _rel(out, ref)}, {"out": _rel(base, ref)}
    nan = ["out"] if out.isnan().any().item() else []
    limit = FP32_TOL if dtype == torch.float32 else max(RATIO * torch_errors["out"], NEGLIGIBLE)
    checks = {"no_nan": not nan, "dtype": out.dtype == dtype, "out": errors["out"] <= limit}
    return {"shape": {"q": list(q.shape), "k": list(k.shape), "v": list(v.shape)}, "seed": seed, "errors": errors,
            "torch_path_errors": torch_errors, "nan_outputs": nan, "checks": checks}  # fmt: skip


#: Substrings of an exception that mean the CUDA context is broken (the error is sticky).
_CUDA_FAILURES = (
    "CUDA error",
    "illegal memory access",
    "Triton Error [CUDA]",
    "cudaError",
    "unspecified launch failure",
)


def _is_cuda_failure(err: BaseException) -> bool:
    return type(err).__name__ == "AcceleratorError" or any(text in str(err) for text in _CUDA_FAILURES)


def _cuda_broken() -> bool:
    """Whether this process's CUDA context is unusable (a sticky error from an earlier launch)."""
    try:
        torch.cuda.synchronize()
        torch.ones(1, device="cuda").sum().item()
    except Exception:  # any failure here means the context is gone
        return True
    return False


def _injected_fault(case: dict) -> str | None:
    """``GPU_CHECK_FAULT="<regex>=<crash|abort|hang>;..."``: how the cases whose id matches fail."""
    for spec in filter(None, os.environ.get("GPU_CHECK_FAULT", "").split(";")):
        pattern, _, kind = spec.rpartition("=")
        if pattern and re.search(pattern, case_id(case)):
            return kind
    return None


def _check(kernel_case, case: dict, runner, monkeypatch) -> None:
    """Run one case, hand its record to the report, and fail on any check out of tolerance."""
    handle = kernel_case(case)
    begin = time.perf_counter()
    if "split_grad" in case:
        monkeypatch.setattr(causal_backward, "SPLIT_GRAD", case["split_grad"])
    try:
        fault = _injected_fault(case)
        if fault == "abort":
            os.abort()
        if fault == "hang":
            time.sleep(3600)
        if fault == "crash":
            raise RuntimeError("CUDA error: an illegal memory access was encountered (injected by GPU_CHECK_FAULT)")
        record = runner(case)
    except Exception as err:
        if _is_cuda_failure(err) or (DEVICE == "cuda" and _cuda_broken()):
            handle.crash(err, traceback.format_exc())
        raise
    record["device"] = torch.cuda.get_device_name() if DEVICE == "cuda" else "cpu (Triton interpreter)"
    record["case_seconds"] = round(time.perf_counter() - begin, 2)
    handle.record(record)
    failed = sorted(name for name, ok in record["checks"].items() if not ok)
    assert not failed, f"out of tolerance: {failed}; errors {record['errors']}, PyTorch's {record['torch_path_errors']}"


@pytest.mark.gpu
@pytest.mark.parametrize("case", _params("bidirectional", "causal"))
def test_attention_matches_float64(kernel_case, case, monkeypatch):
    _check(kernel_case, case, run_attention_case, monkeypatch)


@pytest.mark.gpu
@pytest.mark.parametrize("case", _params("decode"))
def test_decode_step_matches_float64(kernel_case, case, monkeypatch):
    _check(kernel_case, case, run_decode_case, monkeypatch)


@pytest.mark.gpu
@pytest.mark.parametrize("case", _params("aot"))
def test_aot_kernel_matches_float64(kernel_case, case, monkeypatch):
    _check(kernel_case, case, run_aot_case, monkeypatch)


def test_case_ids_are_unique_and_cover_every_variant():
    """One id per case; every built-in kernel and dtype has attention and decode cases."""
    ids = [case_id(case) for case in CASES]
    assert len(set(ids)) == len(ids) == 65
    for op in ("bidirectional", "causal", "decode"):
        assert {c["kernel"] for c in CASES if c["op"] == op} == set(KERNELS), op
        assert {c["dtype"] for c in CASES if c["op"] == op} == {"bfloat16", "float16", "float32"} - (
            {"float16"} if op == "decode" else set()
        ), op


@pytest.mark.slow
def test_a_crashing_case_fails_alone_and_the_report_says_so(tmp_path):
    """The checks in one xdist worker on the CPU, with faults injected: a CUDA-style error and a
    native abort each end their worker and come back as crashes of their own cases, a hang as a
    timeout; fresh workers run the other cases, which pass, and the report has every case."""
    out = tmp_path / "gpu_check.json"
    faults = (
        "decode-sum_sq_euclid-bfloat16-D64x64=crash;decode-modulated_dot=abort;decode-hadamard_exp-bfloat16-D128=hang"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("TRITON_INTERPRET", "PYTEST_XDIST_WORKER")}
    args = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-m", "gpu", "-n", "1", "--timeout", "30",
            "tests/test_gpu_kernels.py", "-k", "decode and (bfloat16-D64x64 or D32x128 or D128x128)",
            "--gpu-report", str(out)]  # fmt: skip
    result = subprocess.run(
        args, capture_output=True, text=True, timeout=900, cwd=ROOT, env={**env, "GPU_CHECK_FAULT": faults}
    )
    assert result.returncode == 1, result.stdout[-3000:] + result.stderr[-2000:]
    record = json.loads(out.read_text())
    status = {(r["case"]["kernel"], r["case"]["dim"]): r["status"] for r in record["results"]}
    assert status == {
        ("sum_sq_euclid", 32): "pass",
        ("hadamard_exp", 64): "pass",
        ("sum_sq_euclid", 64): "crash",
        ("sub_sq_euclid", 64): "pass",
        ("modulated_dot", 64): "crash",
        ("hadamard_exp", 128): "timeout",
    }, status
    results = {r["case"]["kernel"]: r for r in record["results"] if r["case"]["dim"] == 64}
    assert "illegal memory access" in results["sum_sq_euclid"]["error"]
    assert "crashed while running" in results["modulated_dot"]["worker"]
    assert results["hadamard_exp"]["errors"]["y"] < 1e-2 and results["hadamard_exp"]["checks"]["y"]
    summary = record["summary"]
    assert (summary["passed"], summary["crash"], summary["timeout"], summary["not_run"]) == (3, 2, 1, 0), summary
    assert summary["worker_restarts"] == 2 and summary["device"] == "cpu (Triton interpreter)", summary
    assert result.stdout.count("node down: Not properly terminated") == 2, result.stdout[-3000:]
