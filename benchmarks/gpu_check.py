"""GPU correctness check of the fused ELA kernels against float64 references.

Every case draws fresh random inputs, fills every kernel buffer with NaN first (so an element a
kernel forgets to write is caught), runs the fused forward and backward through
``yolo_lat.ela.ela_attention`` / ``ela_step`` with ``YOLO_LAT_KERNELS=triton``, and compares
``||out - ref|| / ||ref||`` for the output, the gradients and the state against the PyTorch path
run in float64 on the same rounded inputs (itself checked against the explicit L x L reference).

Pass criteria:

* float32: every relative error <= 2e-5;
* float16 / bfloat16: every error <= 2x PyTorch's own error at that precision (or <= 1e-4, for
  references that are exactly zero), PyTorch's error being the error
  of the PyTorch ELA path on the same low-precision inputs (it computes in float32 and rounds the
  result); the error of a dense PyTorch attention at that precision (weights rounded to the
  dtype before the product with V, as SDPA does) is recorded too;
* no NaN anywhere, shapes/dtypes as the PyTorch path's.

Cases run in ``--jobs`` worker subprocesses (Triton compiles in parallel), each fed one case at a
time. A CUDA error is sticky (every later CUDA call of that process fails), so a worker that hits
one reports the case as ``crash`` and exits, and the next case gets a fresh worker: one crash
cannot fail the other cases. Every record has a ``status``: ``pass``, ``fail`` (a check out of
tolerance), ``crash`` (a CUDA error, or the worker died), ``error`` (any other exception) or
``timeout``. The JSON is rewritten after every case, so an outer time limit keeps what ran.
Usage::

    python benchmarks/gpu_check.py --out $OUT/gpu_check.json --jobs 8 --budget-s 85
    python benchmarks/gpu_check.py --only "causal.*sum_sq" --jobs 2   # a subset (regex on the case line)
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import re
import select
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path

from _checkout import use_checkout

use_checkout()

KERNELS = ("hadamard_exp", "sum_sq_euclid", "sub_sq_euclid", "modulated_dot")
FP32_TOL = 2e-5
RATIO = 2.0
#: Low-precision errors below this pass whatever the ratio (half fp16's output rounding, 2e-4).
NEGLIGIBLE = 1e-4
#: "cuda"; "cpu" runs a smoke test of this script under TRITON_INTERPRET=1 (tiny cases only).
DEVICE = "cuda"


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
    # the causal gradient kernel's other launch shape at these dims (see causal._split_by_default)
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


@contextlib.contextmanager
def _launch_settings(case: dict):
    """A case's ``split_grad`` forces ``causal.SPLIT_GRAD`` while it runs (workers run many cases)."""
    if "split_grad" not in case:
        yield
        return
    from yolo_lat.cuda_ops import causal

    saved, causal.SPLIT_GRAD = causal.SPLIT_GRAD, case["split_grad"]
    try:
        yield
    finally:
        causal.SPLIT_GRAD = saved


@contextlib.contextmanager
def kernels_env(value: str):
    saved = os.environ.get("YOLO_LAT_KERNELS")
    os.environ["YOLO_LAT_KERNELS"] = value
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("YOLO_LAT_KERNELS", None)
        else:
            os.environ["YOLO_LAT_KERNELS"] = saved


def _rel(actual, expected, floor_rms: float = 1e-3) -> float:
    """``||actual - expected|| / ||expected||``, the norm floored at an rms of ``floor_rms``.

    The floor only matters for references that are exactly zero, such as the gradients of q and
    k with a single key (the output is that key's value whatever q and k are).
    """
    actual, expected = actual.double(), expected.double()
    denominator = max(expected.norm().item(), floor_rms * math.sqrt(expected.numel()))
    return (actual - expected).norm().item() / denominator


def _inputs(case: dict, torch, generator):
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


def _dense_low_precision(q, k, v, kernel, causal, scale, torch):
    """Dense attention at the inputs' precision: weights from float32 scores, rounded to the dtype."""
    from yolo_lat.ela import get_kernel

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


def run_attention_case(case: dict, torch) -> dict:
    from yolo_lat.cuda_ops import buffers
    from yolo_lat.ela import ELAState, ela_attention, get_kernel, naive_attention

    seed = hash(json.dumps(case, sort_keys=True)) % 2**31  # fresh data every run (str hashes are salted)
    generator = torch.Generator(device=DEVICE).manual_seed(seed)
    leaves, views, scale = _inputs(case, torch, generator)
    q, k, v = views(*leaves)
    causal = case["op"] == "causal"
    kernel = case["kernel"]
    initial = initial64 = None
    if case.get("initial_state"):
        prefix = [t[:, :, :50].double() for t in (q, k, v)]
        with kernels_env("torch"):
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
            if DEVICE == "cpu" and os.environ["YOLO_LAT_KERNELS"] == "triton":  # smoke test: no CUDA dispatch
                from yolo_lat.cuda_ops import ela_dispatch

                kern = get_kernel(kernel)
                return ela_dispatch(q, k, v, kern, causal, None, scale, True, state, strict=True)
            return ela_attention(
                q, k, v, kernel=kernel, causal=causal, scale=scale, return_state=True, initial_state=state
            )

        return attention

    buffers.POISON_OUTPUTS = True
    with kernels_env("triton"):
        out, state, grads = _forward_backward(call(initial), fused_leaves, views, grad_out)
        if DEVICE == "cuda":
            torch.cuda.synchronize()
    buffers.POISON_OUTPUTS = False
    with kernels_env("torch"):
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
            dense = _dense_low_precision(q.detach(), k.detach(), v.detach(), kernel, causal, scale, torch)
            record["dense_low_precision_error"] = _rel(dense, ref_out)
    record["checks"] = _judge(case, errors, torch_errors, nan, same_inf, out.dtype == v.dtype)
    if case.get("layout") == "channel_first":
        record["checks"]["channel_first_output"] = out.stride(-2) == 1
    return record


def _judge(case, errors, torch_errors, nan, same_inf, dtype_ok) -> dict:
    checks = {"no_nan": not nan, "dtype": dtype_ok, "shift_pattern": same_inf}
    state_errors = [errors["S"], errors["C"]]
    checks["state"] = max(state_errors) <= FP32_TOL * 10 and errors["shift_abs"] <= 1e-4
    for name in ("out", "dq", "dk", "dv", "dfeature_map"):
        if name not in errors:
            continue
        if case["dtype"] == "float32":
            checks[name] = errors[name] <= FP32_TOL
        else:
            checks[name] = errors[name] <= max(RATIO * torch_errors[name], NEGLIGIBLE)
    return checks


def run_decode_case(case: dict, torch) -> dict:
    from yolo_lat.cuda_ops import buffers, ela_step_fused
    from yolo_lat.ela import ela_attention, ela_step, get_kernel

    seed = hash(json.dumps(case, sort_keys=True)) % 2**31
    generator = torch.Generator(device=DEVICE).manual_seed(seed)
    dtype = getattr(torch, case["dtype"])
    batch, heads, dim, value_dim, context = 8, 16, case["dim"], case["value_dim"], 300
    if DEVICE == "cpu":
        batch, heads, context = 2, 2, 20
    q, k = (torch.randn(batch, heads, context + 8, dim, device=DEVICE, generator=generator) for _ in range(2))
    v = torch.randn(batch, heads, context + 8, value_dim, device=DEVICE, generator=generator)
    q, k, v = q.to(dtype), k.to(dtype), v.to(dtype)
    scale = dim**-0.5
    with kernels_env("torch"):
        _, state = ela_attention(
            q[:, :, :context], k[:, :, :context], v[:, :, :context], kernel=case["kernel"], causal=True,
            scale=scale, return_state=True,
        )  # fmt: skip
    ref_state, base_state, fused_state = state.to(torch.float64), state, state
    errors, torch_errors, nan = [], [], False
    buffers.POISON_OUTPUTS = True
    for t in range(context, context + 8):
        qt, kt, vt = q[:, :, t], k[:, :, t], v[:, :, t]
        y, fused_state = ela_step_fused(qt, kt, vt, fused_state, get_kernel(case["kernel"]), scale, strict=True)
        with kernels_env("torch"):
            y_ref, ref_state = ela_step(qt.double(), kt.double(), vt.double(), ref_state, scale=scale)
            y_base, base_state = ela_step(qt, kt, vt, base_state, scale=scale)
        nan = nan or bool(y.isnan().any().item() or fused_state.S.isnan().any().item())
        errors.append(_rel(y, y_ref))
        torch_errors.append(_rel(y_base, y_ref))
    buffers.POISON_OUTPUTS = False
    error, torch_error = max(errors), max(torch_errors)
    state_error = _rel(fused_state.S, ref_state.S)
    ok = error <= FP32_TOL if dtype == torch.float32 else error <= max(RATIO * torch_error, NEGLIGIBLE)
    return {
        "seed": seed,
        "errors": {"y": error, "S": state_error},
        "torch_path_errors": {"y": torch_error},
        "checks": {"no_nan": not nan, "y": ok, "state": state_error <= FP32_TOL * 10},
    }


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
    import torch

    try:
        torch.cuda.synchronize()
        torch.ones(1, device="cuda").sum().item()
    except Exception:  # any failure here means the context is gone
        return True
    return False


def _injected_fault(case: dict) -> str | None:
    """Testing aid for the crash handling: ``GPU_CHECK_FAULT="<regex>=<crash|abort|hang>;..."`` makes
    the cases whose line matches fail that way (a CUDA-style error, a native abort, no answer)."""
    for spec in filter(None, os.environ.get("GPU_CHECK_FAULT", "").split(";")):
        pattern, _, kind = spec.rpartition("=")
        if pattern and re.search(pattern, _describe(case)):
            return kind
    return None


def run_aot_case(case: dict, torch) -> dict:
    """The TensorRT AOT plugin's single-launch kernel against float64, judged like the others."""
    from yolo_lat.cuda_ops import KERNEL_IDS, buffers
    from yolo_lat.cuda_ops.aot import single_launch_forward
    from yolo_lat.ela import ela_attention

    seed = hash(json.dumps(case, sort_keys=True)) % 2**31
    generator = torch.Generator(device=DEVICE).manual_seed(seed)
    dtype = getattr(torch, case["dtype"])
    batch, heads = (2, 4) if DEVICE == "cuda" else (1, 2)
    lq, lk = case["length"], case.get("key_length", case["length"])
    if DEVICE == "cpu":
        lq, lk = min(lq, 70), min(lk, 130)
    q = torch.randn(batch, heads, lq, case["dim"], device=DEVICE, generator=generator).to(dtype)
    k = torch.randn(batch, heads, lk, case["dim"], device=DEVICE, generator=generator).to(dtype)
    v = torch.randn(batch, heads, lk, case["value_dim"], device=DEVICE, generator=generator).to(dtype)
    scale = case["dim"] ** -0.5
    buffers.POISON_OUTPUTS = True
    out = single_launch_forward(q, k, v, KERNEL_IDS[case["kernel"]], scale)
    if DEVICE == "cuda":
        torch.cuda.synchronize()
    buffers.POISON_OUTPUTS = False
    with kernels_env("torch"):
        ref = ela_attention(q.double(), k.double(), v.double(), kernel=case["kernel"], scale=scale)
        base = ela_attention(q, k, v, kernel=case["kernel"], scale=scale)
    errors, torch_errors = {"out": _rel(out, ref)}, {"out": _rel(base, ref)}
    nan = ["out"] if out.isnan().any().item() else []
    limit = FP32_TOL if dtype == torch.float32 else max(RATIO * torch_errors["out"], NEGLIGIBLE)
    checks = {"no_nan": not nan, "dtype": out.dtype == dtype, "out": errors["out"] <= limit}
    return {"shape": {"q": list(q.shape), "k": list(k.shape), "v": list(v.shape)}, "seed": seed, "errors": errors,
            "torch_path_errors": torch_errors, "nan_outputs": nan, "checks": checks}  # fmt: skip


def run_case(case: dict, device: str = "cuda") -> dict:
    """Run one case in this process; never raises (the error is recorded with its status)."""
    global DEVICE
    DEVICE = device
    if device == "cpu":
        os.environ["TRITON_INTERPRET"] = "1"
    begin = time.perf_counter()
    try:
        import torch

        import yolo_lat.cuda_ops  # noqa: F401

        fault = _injected_fault(case)
        if fault == "abort":
            os.abort()
        if fault == "hang":
            time.sleep(3600)
        if fault == "crash":
            raise RuntimeError("CUDA error: an illegal memory access was encountered (injected by GPU_CHECK_FAULT)")
        runner = {"decode": run_decode_case, "aot": run_aot_case}.get(case["op"], run_attention_case)
        with _launch_settings(case):
            record = runner(case, torch)
        record["passed"] = all(record["checks"].values())
        record["status"] = "pass" if record["passed"] else "fail"
    except Exception as err:  # one broken case must not stop the check
        crashed = _is_cuda_failure(err) or (device == "cuda" and _cuda_broken())
        record = {
            "passed": False,
            "status": "crash" if crashed else "error",
            "error": f"{type(err).__name__}: {err}",
            "traceback": traceback.format_exc()[-3000:],
        }
    record["case"] = case
    record["seconds"] = round(time.perf_counter() - begin, 2)
    return record


def _compile_key(case: dict) -> tuple:
    """The fields that select compiled kernel variants (lengths and input values do not)."""
    fields = ("op", "kernel", "dtype", "dim", "value_dim", "layout", "initial_state", "forward_only")
    return tuple(case.get(field) for field in fields)


def _schedule(cases: list[dict]) -> list[dict]:
    """Order for the workers: the first case of every compiled variant, dearest first, then the
    other cases of each variant (their kernels are in Triton's disk cache by then), so 8 workers
    rarely compile the same kernels at the same time on a fresh machine."""
    seen, first, repeats = set(), [], []
    for case in cases:
        key = _compile_key(case)
        (repeats if key in seen else first).append(case)
        seen.add(key)
    return sorted(first, key=_expected_cost, reverse=True) + sorted(repeats, key=_expected_cost, reverse=True)


def _expected_cost(case: dict) -> float:
    """Rough seconds of a case on a fresh machine, mostly Triton compilation: float32 kernels
    (IEEE products) compile slowest, then the causal ones. Starting the dearest cases first keeps
    the 8 workers busy to the end."""
    cost = 10.0 + (10.0 if case["dtype"] == "float32" else 0.0) + (5.0 if case["op"] == "causal" else 0.0)
    return cost + (3.0 if case["length"] >= 4000 else 0.0) - (8.0 if case["op"] == "decode" else 0.0)


def _describe(case: dict) -> str:
    shown = ("op", "kernel", "dtype", "dim", "value_dim", "length")
    extras = " ".join(f"{key}={value}" for key, value in case.items() if key not in shown)
    head = f"{case['op']:13s} {case['kernel']:13s} {case['dtype']:8s}"
    return f"{head} D={case['dim']}/{case['value_dim']} L={case['length']} {extras}"


def _line(record: dict) -> str:
    """One console line: ``PASS ...`` or ``FAIL[status] ...`` (so ``grep ^FAIL`` finds every problem)."""
    status = record.get("status", "pass" if record["passed"] else "fail")
    head = "PASS" if status == "pass" else f"FAIL[{status}]"
    errors = {key: round(value, 7) for key, value in record.get("errors", {}).items() if isinstance(value, float)}
    return f"{head} {_describe(record['case'])} {json.dumps(errors)} {record.get('error', '')[:300]}"


# ---------------------------------------------------------------- worker subprocesses

#: Prefix of the result lines a worker writes on its stdout.
_RESULT = "@@gpu_check_result "


def worker_main(device: str) -> int:
    """Worker loop: one JSON case per stdin line, one result line per case; exit after a crash.

    Stray output of libraries goes to stderr (the worker's log): the original stdout is kept
    for result lines only.
    """
    if device == "cpu":
        os.environ["TRITON_INTERPRET"] = "1"
    results = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    for line in sys.stdin:
        if not line.strip():
            continue
        record = run_case(json.loads(line), device)
        results.write(_RESULT + json.dumps(record, default=str) + "\n")
        results.flush()
        if record["status"] == "crash":
            return 3  # the CUDA context is broken: the parent starts a fresh worker
    return 0


class _Worker:
    """One worker subprocess, restarted when it crashed, died or timed out."""

    def __init__(self, device: str, log_path: Path):
        self.device = device
        self.log_path = log_path
        self.process: subprocess.Popen | None = None
        self.buffer = b""
        self.starts = 0

    def _start(self) -> None:
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        if self.device == "cpu":
            env["TRITON_INTERPRET"] = "1"
        log = open(self.log_path, "ab")  # noqa: SIM115 (the child keeps writing to it)
        log.write(f"\n===== worker start {self.starts}\n".encode())
        log.flush()
        self.process = subprocess.Popen(
            [sys.executable, __file__, "--worker", "--device", self.device],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, env=env,
        )  # fmt: skip
        log.close()
        self.buffer = b""
        self.starts += 1

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.process = None

    def _log_tail(self) -> str:
        try:
            return self.log_path.read_bytes()[-2000:].decode(errors="replace")
        except OSError:
            return ""

    def run(self, case: dict, timeout_s: float) -> dict:
        """Run one case in the worker; a record whatever happens."""
        if self.process is None or self.process.poll() is not None:
            self._start()
        begin = time.perf_counter()
        try:
            self.process.stdin.write((json.dumps(case) + "\n").encode())
            self.process.stdin.flush()
        except OSError:
            pass  # died already: reported below as a crash
        deadline = time.monotonic() + timeout_s
        stream = self.process.stdout
        while True:
            while b"\n" in self.buffer:
                line, self.buffer = self.buffer.split(b"\n", 1)
                text = line.decode(errors="replace")
                if text.startswith(_RESULT):
                    record = json.loads(text[len(_RESULT) :])
                    if record["status"] == "crash":
                        record["worker_log_tail"] = self._log_tail()
                        self.stop()
                    return record
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.stop()
                return self._failure(case, "timeout", f"no result within {timeout_s:.0f} s", begin)
            if not select.select([stream], [], [], min(remaining, 5.0))[0]:
                continue
            chunk = os.read(stream.fileno(), 1 << 16)
            if not chunk:  # EOF: the worker died (a signal, a native crash, an exit)
                code = self.process.wait()
                self.process = None
                return self._failure(case, "crash", f"worker exited with code {code}", begin)
            self.buffer += chunk

    def _failure(self, case: dict, status: str, error: str, begin: float) -> dict:
        return {
            "passed": False,
            "status": status,
            "error": error,
            "worker_log_tail": self._log_tail(),
            "case": case,
            "seconds": round(time.perf_counter() - begin, 2),
        }


def run_cases(cases: list[dict], args, on_record, lock: threading.Lock, stopping: threading.Event) -> dict:
    """Run ``cases`` on ``args.jobs`` workers; ``on_record(record)`` (under ``lock``) after each.

    Returns the run's bookkeeping. Once ``stopping`` is set no case starts and no record is kept.
    """
    begin = time.monotonic()
    pending = list(enumerate(cases))
    log_dir = Path(tempfile.mkdtemp(prefix="gpu_check_"))
    workers = [_Worker(args.device, log_dir / f"worker{i}.log") for i in range(max(1, args.jobs))]

    def serve(worker: _Worker) -> None:
        while True:
            with lock:
                if stopping.is_set() or not pending or time.monotonic() - begin > args.budget_s:
                    return
                _, case = pending.pop(0)
            try:
                record = worker.run(case, args.case_timeout_s)
            except Exception as err:  # a bug in this harness: report it, keep the other threads going
                record = worker._failure(case, "error", f"harness: {type(err).__name__}: {err}", time.perf_counter())
            with lock:
                if stopping.is_set():
                    return  # killed by the outer time limit, not a result
                on_record(record)

    threads = [threading.Thread(target=serve, args=(worker,), daemon=True) for worker in workers]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        for worker in workers:
            worker.stop()
    return {"worker_starts": sum(w.starts for w in workers), "worker_logs": str(log_dir)}


def _environment(device: str) -> dict:
    """Device, torch and Triton versions (the parent process never launches a kernel)."""
    info = {"device": "cpu (Triton interpreter)"}
    try:
        import torch

        info["torch"] = torch.__version__
        if device == "cuda":
            info["device"] = torch.cuda.get_device_name()
    except Exception as err:  # a broken driver still gets a report
        info["device"] = f"unknown ({type(err).__name__}: {err})"
    try:
        import triton

        info["triton"] = triton.__version__
    except ImportError:
        info["triton"] = None
    return info


def _summary(results: list[dict], total: int, seconds: float, environment: dict) -> dict:
    statuses = [r.get("status", "pass" if r["passed"] else "fail") for r in results]
    summary = {
        "passed": statuses.count("pass"),
        "failed": len(statuses) - statuses.count("pass"),
        **{status: statuses.count(status) for status in ("fail", "crash", "error", "timeout")},
        "not_run": total - len(results),
        "seconds": round(seconds, 1),
    }
    return {**summary, **environment}


def _write(path: str, summary: dict, results: list[dict]) -> None:
    temporary = f"{path}.tmp"
    with open(temporary, "w") as handle:
        json.dump({"summary": summary, "results": results}, handle, indent=1, default=str)
    os.replace(temporary, path)


def main(argv: list[str] | None = None) -> int:
    """Run the check; writes JSON (after every case) and prints one line per case and a summary."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="gpu_check.json")
    parser.add_argument("--jobs", type=int, default=8, help="worker subprocesses")
    parser.add_argument("--budget-s", type=float, default=85.0, help="stop starting new cases after this")
    parser.add_argument("--case-timeout-s", type=float, default=60.0, help="a case taking longer is a timeout")
    parser.add_argument("--max-length", type=int, default=None, help="only cases up to this length")
    parser.add_argument("--only", default=None, help="only cases whose line matches this regular expression")
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return worker_main(args.device)
    cases = build_cases()
    if args.max_length is not None:
        cases = [c for c in cases if c["length"] <= args.max_length and c.get("key_length", 0) <= args.max_length]
    if args.only:
        cases = [c for c in cases if re.search(args.only, _describe(c))]
    cases = _schedule(cases)
    begin = time.perf_counter()
    results: list[dict] = []
    lock, stopping = threading.Lock(), threading.Event()
    environment = _environment(args.device)

    def on_record(record: dict) -> None:
        results.append(record)
        print(_line(record), flush=True)
        _write(args.out, _summary(results, len(cases), time.perf_counter() - begin, environment), results)

    def terminate(signum, frame):  # an outer `timeout`: stop the workers, keep the JSON
        stopping.set()
        raise SystemExit(124)

    signal.signal(signal.SIGTERM, terminate)
    info = {}
    try:
        info = run_cases(cases, args, on_record, lock, stopping)
    finally:
        stopping.set()
        with lock:
            summary = _summary(results, len(cases), time.perf_counter() - begin, environment)
            summary.update(info)
            _write(args.out, summary, results)
        print(json.dumps(summary), flush=True)
    return 0 if summary["failed"] == 0 and summary["not_run"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
