"""The default text model against two of its design alternatives: tied embeddings, the linear gate.

Trains the model ``yolo-lat text train`` trains by default (Hyper-Link layers, causal Memory Lobe,
4 label-routed experts, 200 steps on the embedded corpus) three times with the same seed and
batches: as it is (``default``), with ``tie_embeddings=True`` (``tied``), and with the reference
code's linear gate, which routes on the expert input instead of the residual stream
(``linear_gate``). For each it records the validation loss along training and, on held-out
windows, per MoE layer:

* the routing shares: the share of tokens whose first choice is each expert;
* how alike the vectors a router could score are from position to position: the mean cosine
  similarity over all pairs of tokens of the expert input (in a Hyper-Link layer, the attention
  output) and of the residual stream (the layer's input).

Usage: ``python scripts/text_design.py [steps=200] [out=runs/text/text_design.json]``; the committed
run is ``OMP_NUM_THREADS=1 python scripts/text_design.py out=benchmarks/results/text_design_cpu.json``.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from yolo_lat.args import format_defaults, split_pairs, typed
from yolo_lat.bench.report import render
from yolo_lat.text.checkpoint import load_model
from yolo_lat.text.experts import routing_shares
from yolo_lat.text.model import ELAGPT
from yolo_lat.text.moe import LabelRoutedMoE
from yolo_lat.text.tokenizer import ByteTokenizer
from yolo_lat.text.train import DEFAULTS as TRAIN_DEFAULTS
from yolo_lat.text.train import default_corpus, split_tokens, train

#: The runs: what each changes in the default ``yolo-lat text train`` settings.
RUNS: dict[str, dict[str, Any]] = {
    "default": {},
    "tied": {"tie_embeddings": True},
    "linear_gate": {"moe_gate": "linear"},
}
DEFAULTS: dict[str, Any] = {
    "steps": TRAIN_DEFAULTS["steps"],
    "windows": 32,
    "seed": 0,
    "out": "runs/text/text_design.json",
}
DOCS = {
    "steps": "training steps per run (the other training settings are those of `yolo-lat text train`)",
    "windows": "held-out windows routed for the shares and similarities",
    "seed": "random seed (shared by every run)",
    "out": "JSON output path",
}


def mean_pairwise_cosine(vectors: torch.Tensor) -> float:
    """Mean cosine similarity over all pairs of distinct rows.

    Args:
        vectors: ``(N, D)`` with ``N >= 2``.

    Returns:
        The mean over the ``N (N - 1)`` ordered pairs ``i != j`` (1: all rows point the same way).

    Example:
        >>> mean_pairwise_cosine(torch.tensor([[1.0, 0.0], [2.0, 0.0], [0.0, 3.0]]))
        0.3333333432674408
    """
    unit = F.normalize(vectors.double(), dim=-1)
    total = unit.sum(dim=0)
    n = unit.shape[0]
    return ((total @ total - n) / (n * (n - 1))).item()


@torch.no_grad()
def router_inputs(model: ELAGPT, ids: torch.Tensor) -> dict[int, dict[str, float]]:
    """Per MoE layer, the mean pairwise cosine similarity of the expert input and of the stream.

    Args:
        model: a model with MoE layers.
        ids: ``(B, L)`` token ids.

    Returns:
        ``{layer: {"expert_input": c, "stream": c}}`` over the ``B * L`` tokens.
    """
    seen: dict[int, dict[str, float]] = {}
    hooks = []
    for index, block in enumerate(model.blocks):
        if not isinstance(block.ffn, LabelRoutedMoE):
            continue

        def stream(module: torch.nn.Module, args: tuple, index: int = index) -> None:
            seen.setdefault(index, {})["stream"] = mean_pairwise_cosine(args[0].reshape(-1, args[0].shape[-1]))

        def expert_input(module: torch.nn.Module, args: tuple, index: int = index) -> None:
            seen.setdefault(index, {})["expert_input"] = mean_pairwise_cosine(args[0].reshape(-1, args[0].shape[-1]))

        hooks += [block.register_forward_pre_hook(stream), block.ffn.register_forward_pre_hook(expert_input)]
    try:
        model(ids)
    finally:
        for hook in hooks:
            hook.remove()
    return seen


def run(settings: dict[str, Any]) -> dict[str, Any]:
    """Train every run in :data:`RUNS` and measure it; returns the JSON record."""
    tokens = torch.tensor(ByteTokenizer().encode(default_corpus()))
    block = TRAIN_DEFAULTS["block"]
    _, val_tokens = split_tokens(tokens, block, TRAIN_DEFAULTS["val_fraction"])
    starts = torch.linspace(0, val_tokens.numel() - block, settings["windows"]).long()
    windows = torch.stack([val_tokens[s : s + block] for s in starts.tolist()])
    runs = {}
    with tempfile.TemporaryDirectory(prefix="yolo_lat_text_design_") as project:  # checkpoints are not kept
        for name, changes in RUNS.items():
            summary = train(
                steps=settings["steps"], seed=settings["seed"], project=project, name=name, progress=False, **changes
            )
            model, _, _ = load_model(summary["last"])
            shares = routing_shares(model, windows)
            runs[name] = {
                "changes": changes,
                "parameters": summary["parameters"],
                "seconds": summary["seconds"],
                "final_val_loss": summary["val_loss"],
                "best_val_loss": summary["best_val_loss"],
                "history": summary["history"],
                "routing": {str(layer): [round(v, 4) for v in share.tolist()] for layer, share in shares.items()},
                "cosine": {str(k): v for k, v in router_inputs(model, windows).items()},
            }
            print(f"{name}: {summary['seconds']:.0f} s, validation loss {summary['val_loss']:.3f}", file=sys.stderr)
    command = "OMP_NUM_THREADS=1 python scripts/text_design.py"
    command += "".join(f" {k}={v}" for k, v in settings.items() if v != DEFAULTS[k])
    return {"benchmark": "text_design", "command": command, "settings": dict(settings), "runs": runs}


def main(argv: list[str] | None = None) -> int:
    """Entry point: ``python scripts/text_design.py [key=value ...]``."""
    argv = sys.argv[1:] if argv is None else argv
    if any(a in ("-h", "--help", "help") for a in argv):
        print(__doc__ + "\narguments:\n" + format_defaults(DEFAULTS, DOCS))
        return 0
    settings = typed(DEFAULTS, split_pairs(argv), "text_design.py")
    record = run(settings)
    out = Path(settings["out"])
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=2))
    print(render(record))
    print(f"results: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
