"""Training curves of ELA-GPT vs its softmax twin, per layer variant (Hyper-Link forms, Memory Lobe forms).

For every variant in ``variants`` two models are trained with :func:`yolo_lat.text.train.train`
(same size, data, tokens, schedule and seed): ELA attention and the softmax twin of the same
config (``attention="softmax"``; the parameter counts must be equal, checked for every pair). Each
run's validation loss is recorded every ``val_every`` steps with the smoothed training loss
(exponential moving average, factor 0.9). The record (JSON), a PNG of the curves (one panel per
variant, ELA vs softmax) and a table (final and best validation loss, loss at a quarter and half
of the steps, steps to reach a target validation loss, ELA minus softmax) are written.

Run ``yolo-lat benchmark curves`` (or :func:`main` with the same words) with ``key=value``
overrides (``--help`` lists them).
"""

from __future__ import annotations

import math
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch

from yolo_lat.args import ArgumentError
from yolo_lat.bench import timing
from yolo_lat.bench.runner import finish
from yolo_lat.cli import main as cli_main
from yolo_lat.text.train import train

#: Layer variants: the model settings each one sets on top of :data:`yolo_lat.text.train.DEFAULTS`.
VARIANTS: dict[str, dict[str, Any]] = {
    "standard": {"hyperlink": False, "memory_lobe": False},
    "hyperlink_paper": {"hyperlink": True, "hyperlink_form": "paper", "memory_lobe": False},
    "hyperlink_reference": {"hyperlink": True, "hyperlink_form": "reference", "memory_lobe": False},
    "lobe_project": {"hyperlink": True, "hyperlink_form": "paper", "memory_lobe": True, "lobe_form": "project"},
    "lobe_reference": {"hyperlink": True, "hyperlink_form": "paper", "memory_lobe": True, "lobe_form": "reference"},
    "gate_linear": {"hyperlink": True, "hyperlink_form": "paper", "memory_lobe": False, "moe_gate": "linear"},
}
METHODS = ("ela", "softmax")

DEFAULTS: dict[str, Any] = {
    "variants": ["standard", "hyperlink_paper", "hyperlink_reference", "lobe_project", "lobe_reference"],
    "data": "",
    "kernel": "hadamard_exp",
    "d_model": 64,
    "n_layers": 2,
    "n_heads": 4,
    "block": 64,
    "batch": 16,
    "steps": 400,
    "lr": 3e-3,
    "val_every": 20,
    "val_batches": 4,
    "target": 0.0,
    "device": "cpu",
    "seed": 0,
    "out": "runs/benchmark/curves.json",
}
DOCS = {
    "variants": f"layer variants to train: {', '.join(VARIANTS)}",
    "data": "text file to train on (empty: the embedded default corpus)",
    "kernel": "ELA kernel of the ELA runs",
    "d_model": "model width (equal for every run)",
    "n_layers": "layers",
    "n_heads": "heads",
    "block": "context length of a training window",
    "batch": "windows per step",
    "steps": "training steps per run (cosine schedule, 15 warm-up steps, AdamW)",
    "lr": "peak learning rate",
    "val_every": "record the validation loss every this many steps",
    "val_batches": "batches of validation windows per point",
    "target": "validation loss for the steps-to-reach column (0: the highest final validation loss of all runs)",
    "device": "cpu or cuda[:N]",
    "seed": "random seed (same weights seed and batch order for every run)",
    "out": "JSON output path (the PNG is written next to it, same name, .png)",
}


def _train_one(variant: str, method: str, settings: dict[str, Any], project: str) -> dict[str, Any]:
    overrides = {key: settings[key] for key in ("data", "kernel", "d_model", "n_layers", "n_heads", "block", "batch")}
    overrides.update({key: settings[key] for key in ("steps", "lr", "val_every", "val_batches", "device", "seed")})
    summary = train(
        **overrides,
        **VARIANTS[variant],
        attention=method,
        project=project,
        name=f"{variant}_{method}",
        progress=False,
    )
    return {
        "variant": variant,
        "method": method,
        "parameters": summary["parameters"],
        "tokens_seen": summary["step"] * settings["batch"] * settings["block"],
        "seconds": summary["seconds"],
        "final_val_loss": summary["val_loss"],
        "best_val_loss": summary["best_val_loss"],
        "curve": [[h["step"], h["train_loss"], h["val_loss"]] for h in summary["history"]],
    }


def steps_to_reach(curve: list[list[float]], target: float) -> int | None:
    """First recorded step whose validation loss is at most ``target`` (None if never).

    Example:
        >>> steps_to_reach([[10, 3.0, 2.9], [20, 2.5, 2.4], [30, 2.2, 2.1]], 2.5)
        20
    """
    return next((int(step) for step, _, val in curve if val <= target), None)


def _loss_at(curve: list[list[float]], step: int) -> float:
    """Validation loss at the first recorded step at or after ``step``."""
    return next((val for s, _, val in curve if s >= step), curve[-1][2])


def run(settings: dict[str, Any]) -> dict[str, Any]:
    """Train every variant in ``settings['variants']`` with ELA and softmax; returns the JSON record."""
    variants = list(settings["variants"])
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown or not variants:
        raise ArgumentError(
            f"variants: unknown variant {unknown[0]!r}; choose from {', '.join(VARIANTS)}"
            if unknown
            else f"variants: none given; choose from {', '.join(VARIANTS)}"
        )
    if not (settings["target"] >= 0 and math.isfinite(settings["target"])):
        raise ArgumentError(f"target={settings['target']}: expected a finite loss >= 0 (0: automatic)")
    runs = []
    with tempfile.TemporaryDirectory(prefix="yolo_lat_curves_") as project:  # checkpoints are not kept
        for variant in variants:
            pair = [_train_one(variant, method, settings, project) for method in METHODS]
            if pair[0]["parameters"] != pair[1]["parameters"]:
                raise RuntimeError(
                    f"{variant}: ELA has {pair[0]['parameters']} parameters, softmax {pair[1]['parameters']}"
                )
            runs.extend(pair)
    target = settings["target"] or max(r["final_val_loss"] for r in runs)
    for r in runs:
        r["steps_to_target"] = steps_to_reach(r["curve"], target)
    changed = [f"{k}={_word(v)}" for k, v in settings.items() if v != DEFAULTS[k]]
    return {
        "benchmark": "curves",
        "command": " ".join(["yolo-lat benchmark curves", *changed]),
        "settings": dict(settings),
        "environment": timing.environment(torch.device(settings["device"])),
        "target_val_loss": target,
        "plot": str(Path(settings["out"]).with_suffix(".png")),
        "runs": runs,
    }


def _word(value: Any) -> str:
    return ",".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)


def render(record: dict[str, Any]) -> str:
    """Table of the record: per variant, the ELA and softmax runs and their difference."""
    s = record["settings"]
    quarter, half = s["steps"] // 4, s["steps"] // 2
    headers = ["variant", "method", "parameters", f"val@{quarter}", f"val@{half}", "final val", "best val"]
    headers += [f"steps to {record['target_val_loss']:.3f}", "seconds"]
    body = []
    by_variant: dict[str, dict[str, dict[str, Any]]] = {}
    for r in record["runs"]:
        by_variant.setdefault(r["variant"], {})[r["method"]] = r
    for variant, pair in by_variant.items():
        cells = {}
        for method, r in pair.items():
            cells[method] = [_loss_at(r["curve"], quarter), _loss_at(r["curve"], half)]
            cells[method] += [r["final_val_loss"], r["best_val_loss"]]
            reach = r["steps_to_target"]
            losses = [f"{x:.3f}" for x in cells[method]]
            reached = str(reach) if reach is not None else "-"
            body.append([variant, method, f"{r['parameters']:,}", *losses, reached, f"{r['seconds']:.0f}"])
        if set(pair) == set(METHODS):
            ela, soft = pair["ela"], pair["softmax"]
            reach = (
                None
                if None in (ela["steps_to_target"], soft["steps_to_target"])
                else ela["steps_to_target"] - soft["steps_to_target"]
            )
            diff = [f"{a - b:+.3f}" for a, b in zip(cells["ela"], cells["softmax"])]
            body.append([variant, "ELA - softmax", "", *diff, f"{reach:+d}" if reach is not None else "-", ""])
    head = (
        f"Training curves: d_model={s['d_model']}, layers={s['n_layers']}, heads={s['n_heads']}, kernel={s['kernel']}, "
        f"{s['steps']} steps x {s['batch']} windows x {s['block']} tokens, lr={s['lr']:g}, seed={s['seed']}, "
        f"data={s['data'] or 'embedded corpus'}; validation loss in nats per byte-token"
    )
    return f"{head}\n{timing.format_table(headers, body)}"


def plot(record: dict[str, Any], path: Path) -> Path:
    """One panel per variant: validation (solid) and smoothed training (dashed) loss, ELA vs softmax."""
    import matplotlib  # heavy optional plotting dependency, only needed here

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    variants = list(dict.fromkeys(r["variant"] for r in record["runs"]))
    fig, axes = plt.subplots(1, len(variants), figsize=(4 * len(variants), 3.6), sharey=True, squeeze=False)
    colours = {"ela": "tab:blue", "softmax": "tab:orange"}
    for ax, variant in zip(axes[0], variants):
        for r in record["runs"]:
            if r["variant"] != variant:
                continue
            steps, train_loss, val_loss = zip(*r["curve"])
            ax.plot(steps, val_loss, color=colours[r["method"]], label=f"{r['method']} val")
            ax.plot(
                steps, train_loss, color=colours[r["method"]], linestyle="--", alpha=0.6, label=f"{r['method']} train"
            )
        ax.axhline(record["target_val_loss"], color="grey", linewidth=0.8, linestyle=":")
        ax.set_title(variant)
        ax.set_xlabel("step")
        ax.grid(True, alpha=0.3)
    axes[0][0].set_ylabel("loss (nats per token)")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _run_and_plot(settings: dict[str, Any]) -> dict[str, Any]:
    record = run(settings)
    plot(record, Path(record["plot"]))
    return record


def command(settings: dict[str, Any]) -> int:
    """Handler of ``yolo-lat benchmark curves``: train, write ``out`` (JSON) and its PNG, print the table."""
    return finish(settings, _run_and_plot, render)


def main(argv: list[str] | None = None) -> int:
    """``yolo-lat benchmark curves`` with ``argv`` (``key=value`` words); returns the exit status."""
    return cli_main(["benchmark", "curves", *(sys.argv[1:] if argv is None else argv)])


__all__ = ["DEFAULTS", "DOCS", "VARIANTS", "command", "main", "plot", "render", "run", "steps_to_reach"]
