"""Which fused variants a GPU run verified, for the kernel source as it is now.

On CUDA, the default (``kernels='auto'``) runs a call fused only when its *variant* passed the GPU
correctness check (``tests/test_gpu_kernels.py`` on a GPU) with the current kernel source; every
other call runs the PyTorch path. ``kernels='triton'`` runs the fused kernels regardless (that is
how the check itself exercises them).

A variant is ``op/kernel/dtype/D<head dim>/forward|backward``, e.g.
``bidirectional/hadamard_exp/float16/D64/backward``; ``op`` is ``bidirectional``, ``causal`` or
``decode``, and ``backward`` means a call that will be differentiated (autograd records it).

The record is data, never edited by hand: the GPU check's report plugin (``--gpu-report PATH``)
writes ``verified.json`` beside its report; committing that file here as
``cuda_ops/verified.json`` turns the variants on. It holds the SHA-256 of this folder's kernel
source (every ``.py`` file but this one); when the source changes, the hash no longer matches and
no variant counts as verified until the check runs again.

Example:
    >>> variant("causal", "hadamard_exp", "bfloat16", 64, grad=True)
    'causal/hadamard_exp/bfloat16/D64/backward'
    >>> record = verified_record([
    ...     {"case": {"op": "causal", "kernel": "hadamard_exp", "dtype": "float16", "dim": 64}, "status": "pass",
    ...      "device": "NVIDIA H200"}], source="abc")
    >>> record["verified"]
    ['causal/hadamard_exp/float16/D64/backward', 'causal/hadamard_exp/float16/D64/forward']
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

__all__ = ["OPS", "RECORD", "source_hash", "variant", "verified_record", "verified_variants"]

_FOLDER = Path(__file__).resolve().parent
#: Where the CUDA default reads the record (shipped with the package).
RECORD = _FOLDER / "verified.json"
#: The ops whose variants the default dispatch checks (the TensorRT AOT kernel is not dispatched).
OPS = ("bidirectional", "causal", "decode")


def source_hash(folder: Path = _FOLDER) -> str:
    """SHA-256 over the kernel source: every ``.py`` file of ``folder`` but this module, by name."""
    digest = hashlib.sha256()
    for file in sorted(folder.glob("*.py")):
        if file.name != Path(__file__).name:
            digest.update(file.name.encode() + b"\0" + file.read_bytes() + b"\0")
    return digest.hexdigest()


def variant(op: str, kernel: str, dtype: str, head_dim: int, grad: bool) -> str:
    """The variant name of a call (see the module docstring); ``dtype`` without ``torch.``."""
    return f"{op}/{kernel}/{dtype.removeprefix('torch.')}/D{head_dim}/{'backward' if grad else 'forward'}"


def _case_variants(case: dict[str, Any]) -> list[str]:
    """The variants one check case exercises: forward always, backward unless forward only."""
    op = case.get("op")
    if op not in OPS:
        return []
    parts = (op, case["kernel"], case["dtype"], int(case["dim"]))
    grads = (False,) if op == "decode" or case.get("forward_only") else (False, True)
    return [variant(*parts, grad=grad) for grad in grads]


def verified_record(results: Iterable[dict[str, Any]], source: str | None = None) -> dict[str, Any]:
    """The record a GPU check run supports: a variant is verified when at least one case ran it on
    CUDA and every case that ran it passed (a crash, failure, error or timeout of any case
    withholds every variant that case exercises).

    Args:
        results: the report's per-case records (``{"case": {...}, "status": ..., "device": ...}``).
        source: the kernel source hash the run checked (default: the source as it is now).
    """
    seen: dict[str, bool] = {}
    devices = set()
    for result in results:
        device = str(result.get("device") or "")
        if not device or device.startswith("cpu"):
            continue  # the interpreter on the CPU verifies nothing about a GPU
        devices.add(device)
        for name in _case_variants(result.get("case", {})):
            seen[name] = seen.get(name, True) and result.get("status") == "pass"
    return {
        "source_sha256": source or source_hash(),
        "devices": sorted(devices),
        "verified": sorted(name for name, passed in seen.items() if passed),
        "not_verified": sorted(name for name, passed in seen.items() if not passed),
    }


@functools.cache
def verified_variants(record: Path = RECORD) -> frozenset[str]:
    """The variants the committed record verifies for the current source (empty when there is no
    record, or it was written for other source)."""
    if not record.is_file():
        return frozenset()
    data = json.loads(record.read_text())
    if data.get("source_sha256") != source_hash():
        return frozenset()
    return frozenset(data.get("verified", ()))
