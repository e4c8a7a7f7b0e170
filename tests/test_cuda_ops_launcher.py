"""cuda_ops/launcher.py: a direct launch is the launch Triton's own path would make.

The kernels are compiled for sm_90 with ``yolo_lat.bench.compile_check``'s stand-in driver and Triton's C
launcher records its calls instead of launching (no GPU here). For each call below, the launch
that Triton's binding makes (the ``direct_launch`` setting off) and the one the direct path makes must
name the same compiled kernel, grid and arguments; regular calls must skip Triton's binding, and
irregular ones (an unaligned tensor, an int Triton specializes differently) must go through it.
Runs in a subprocess: the rest of the suite uses the Triton interpreter.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

_SCRIPT = r"""
import json, sys
import torch
from triton.compiler.compiler import CompiledKernel
from triton.runtime.driver import driver
from triton.runtime.jit import JITFunction
from yolo_lat.bench.compile_check import HopperStandIn

driver.set_active(HopperStandIn())
LAUNCHES, BINDINGS = [], []
CompiledKernel._init_handles = lambda self: None
CompiledKernel.function = None
CompiledKernel.run = property(lambda self: lambda *args: LAUNCHES.append((self, args)))
bind = JITFunction.run
def counted(self, *args, **kwargs):
    BINDINGS.append(self.__name__)
    return bind(self, *args, **kwargs)
JITFunction.run = counted

from yolo_lat import settings
from yolo_lat.cuda_ops import launcher
from yolo_lat.cuda_ops.bidirectional import bidirectional_output
from yolo_lat.cuda_ops.causal import causal_forward
from yolo_lat.cuda_ops.decode import decode_step

def describe(launch):
    kernel, args = launch
    grid, launched = args[:3], args[9:]  # (grid, stream, function, metadata, launch metadata, 2 hooks)
    shown = [(str(a.dtype), a.data_ptr() % 16, tuple(a.shape), a.stride()) if isinstance(a, torch.Tensor)
             else repr(a) for a in launched]
    metadata = args[5] is kernel.packed_metadata
    return {"kernel": id(kernel), "grid": list(grid), "args": shown, "own metadata": metadata, "stream": args[3]}

def run(call, direct):
    settings.configure(direct_launch=direct)
    del LAUNCHES[:], BINDINGS[:]
    call()
    return [describe(launch) for launch in LAUNCHES], list(BINDINGS)

bf16, fp16 = torch.bfloat16, torch.float16
step = [torch.randn(8, 16, 64, dtype=bf16) for _ in range(3)]
state = [torch.zeros(8, 16, 64, 64), torch.zeros(8, 16, 64), torch.full((8, 16, 64), float("-inf"))]
wide = torch.randn(8, 16, 72, dtype=bf16)
q, k, v = (torch.randn(1, 2, 256, 32, dtype=bf16) for _ in range(3))
nchw = torch.randn(1, 64, 16, 16, dtype=bf16).view(1, 2, 32, 256).transpose(-1, -2)  # stride(-2) == 1
calls = {
    "decode bf16": lambda: decode_step(*step, *state, 0, 0.125),
    "decode fp16": lambda: decode_step(*(t.half() for t in step), *state, 0, 0.125),
    "decode, q unaligned": lambda: decode_step(wide[..., 1:65], step[1], step[2], *state, 0, 0.125),
    "decode, head stride 72": lambda: decode_step(wide[..., :64], step[1], step[2], *state, 0, 0.125),
    "decode, scale 1.0": lambda: decode_step(*step, *state, 0, 1.0),  # floats: no value specialization
    "short bf16": lambda: bidirectional_output(q, k, v, 0, 0.125),
    "short, channel-first": lambda: bidirectional_output(nchw, nchw, nchw, 1, 0.125),
    "causal inference": lambda: causal_forward(q, k, v, None, None, None, 0, 0.125, False),
}
report = {}
for name, call in calls.items():
    through_triton, _ = run(call, False)
    run(call, True)  # the first direct call binds through Triton and keeps the kernel
    direct, bindings = run(call, True)
    report[name] = {"triton": through_triton, "direct": direct, "bindings": bindings}

from triton import knobs
hook = lambda *args, **kwargs: None
knobs.runtime.launch_enter_hook.add(hook)  # a profiler: every launch through Triton
report["hooked"] = {"bindings": run(calls["decode bf16"], True)[1]}
knobs.runtime.launch_enter_hook.remove(hook)
from yolo_lat.cuda_ops.decode import _decode_step_kernel
_decode_step_kernel.add_pre_run_hook(hook)
report["pre-run hook"] = {"bindings": run(calls["decode bf16"], True)[1]}
_decode_step_kernel.pre_run_hooks.remove(hook)

import triton, triton.language as tl
@triton.jit
def constexpr_first(BLOCK: tl.constexpr, x_ptr):
    pass
try:
    launcher.DirectLaunch(constexpr_first)
except ValueError as err:
    report["order"] = str(err)
print(json.dumps(report))
"""


@pytest.mark.slow
def test_direct_launch_is_the_launch_triton_makes(tmp_path):
    script = tmp_path / "launches.py"  # (a file: Triton reads the source of its kernels)
    script.write_text(_SCRIPT)
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    result = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=900, cwd=ROOT, env=env
    )
    assert result.returncode == 0, result.stderr[-4000:]
    report = json.loads(result.stdout.splitlines()[-1])
    assert report.pop("order") == "constexpr_first: DirectLaunch needs the constexprs after the runtime arguments"
    assert report.pop("hooked")["bindings"] == ["_decode_step_kernel"]
    assert report.pop("pre-run hook")["bindings"] == ["_decode_step_kernel"]
    for name, entry in report.items():
        assert entry["triton"], f"{name}: nothing launched"
        assert entry["direct"] == entry["triton"], f"{name}: the direct launch differs from Triton's"
        assert all(launch["own metadata"] for launch in entry["direct"]), name
    regular = ["decode bf16", "decode fp16", "decode, scale 1.0", "short bf16", "short, channel-first"]
    regular.append("causal inference")
    for name in regular:
        assert report[name]["bindings"] == [], f"{name}: still bound by Triton ({report[name]['bindings']})"
    for name in ("decode, q unaligned", "decode, head stride 72"):  # 2 bytes off; not a multiple of 16
        assert report[name]["bindings"] == ["_decode_step_kernel"], name
    kernels = {name: {launch["kernel"] for launch in report[name]["direct"]} for name in report}
    assert kernels["decode bf16"].isdisjoint(kernels["decode fp16"])  # dtypes are part of the key
    assert kernels["decode bf16"].isdisjoint(kernels["decode, q unaligned"] | kernels["decode, head stride 72"])
    assert kernels["short bf16"].isdisjoint(kernels["short, channel-first"])  # a unit stride moved


_DEFAULTS = """
from yolo_lat import settings
import yolo_lat.cuda_ops as cuda_ops
current = settings.get()
print(current.kernels, current.direct_launch, current.interpreter, cuda_ops.INTERPRETED)
"""


def test_environment_variables_give_the_defaults():
    """YOLO_LAT_KERNELS, YOLO_LAT_DIRECT_LAUNCH and TRITON_INTERPRET give the settings' defaults in a
    fresh process (cuda_ops takes the interpreter setting when imported); a bad kernels value names
    the variable."""
    names = ("YOLO_LAT_KERNELS", "YOLO_LAT_DIRECT_LAUNCH", "TRITON_INTERPRET")
    cases = [
        ({}, "auto True False False"),
        ({"YOLO_LAT_DIRECT_LAUNCH": "0"}, "auto False False False"),
        ({"YOLO_LAT_DIRECT_LAUNCH": "1", "YOLO_LAT_KERNELS": " Triton "}, "triton True False False"),
        ({"YOLO_LAT_KERNELS": "", "TRITON_INTERPRET": "1"}, "auto True True True"),
        ({"YOLO_LAT_KERNELS": "torch"}, "torch True False False"),
    ]
    for values, expected in cases:
        env = {k: v for k, v in os.environ.items() if k not in names}
        result = subprocess.run(
            [sys.executable, "-c", _DEFAULTS], capture_output=True, text=True, cwd=ROOT, env={**env, **values}
        )
        assert result.stdout.strip() == expected, (values, result.stderr[-2000:])
    env = {k: v for k, v in os.environ.items() if k not in names}
    result = subprocess.run(
        [sys.executable, "-c", _DEFAULTS], capture_output=True, text=True, cwd=ROOT, env={**env, names[0]: "cuda"}
    )
    assert result.returncode != 0
    assert "YOLO_LAT_KERNELS must be one of auto, torch, triton; got 'cuda'" in result.stderr


def test_host_code_launches_directly_and_avoids_triton_cdiv():
    """Every launch of the eager paths goes through launcher.direct, and no host code calls
    triton.cdiv (a ConstexprFunction: about 2 us per call on the host, Triton 3.8)."""
    import re

    names = ("bidirectional", "bidirectional_backward", "causal", "causal_backward", "decode", "ops", "dispatch")
    for name in (*names, "buffers"):
        text = (ROOT / "cuda_ops" / f"{name}.py").read_text()
        assert "triton.cdiv(" not in text, name
        bare = re.findall(r"^\s+(_\w+_kernel)\[", text, flags=re.M)
        assert not bare, f"cuda_ops/{name}.py launches {bare} through Triton's binding; use direct(kernel)[grid]"
