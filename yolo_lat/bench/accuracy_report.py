"""The outputs of ``yolo-lat benchmark accuracy`` and ``ablate``: Markdown tables, two plots, the files.

:func:`markdown` renders a record written by :func:`yolo_lat.bench.accuracy.run` and
:func:`ablation_markdown` one written by :func:`yolo_lat.bench.ablate.run` (also for ``yolo-lat
benchmark report``, which needs neither torch nor Ultralytics to import this module);
:func:`plot` draws mAP50-95 against latency and against parameters; :func:`write` writes
``<name>.json``, ``<name>.md`` and the PNGs of an accuracy record.

Example:
    >>> settings = {"epochs": 1, "imgsz": 64, "batch": 2, "optimizer": "auto", "seeds": [0, 1], "data": "synth",
    ...             "latency_imgsz": 64, "latency_format": "onnx"}
    >>> model = {"model": "m", "params": 2e6, "gflops": 1.5, "latency_ms": 3.0, "latency_ratio": 1.0,
    ...          "latency_status": "ok", "map50_95_mean": 0.5, "map50_95_std": 0.1, "map50_mean": 0.8,
    ...          "train_s_mean": 9.0, "seeds": [{"seed": 0, "map50_95": 0.43}, {"seed": 1, "map50_95": 0.57}]}
    >>> record = {"settings": settings, "recipe": {"best_pt": "the final weights"}, "latency_method": "...",
    ...           "environment": {"device": "cpu"}, "models": [model]}
    >>> [c.strip() for c in markdown(record).splitlines()[-1].split("|")[1:-1]]
    ['m', '2.00', '1.5', '3.00', '1.00x', '0.500 ± 0.100', '0.800', '0.430 / 0.570', '9']
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from yolo_lat.bench import timing
from yolo_lat.bench.runner import write_json, write_text


def _number(value: float | None, form: str) -> str:
    return "-" if value is None else format(value, form)


def markdown(record: dict[str, Any]) -> str:
    """The recipe, the method and one table row per model (mean ± sample std over seeds, per-seed values)."""
    s, env = record["settings"], record["environment"]
    fmt = "ONNX" if s["latency_format"] == "onnx" else "PyTorch"
    seeds = ",".join(str(seed) for seed in s["seeds"])
    versions = ", ".join(f"{k} {v}" for k, v in env.items() if k not in ("device", "threads", "cpu", "gpu"))
    headers = ["model", "params (M)", f"GFLOPs @{s['latency_imgsz']}", f"{fmt} ms @{s['latency_imgsz']}"]
    headers += ["latency ratio", "mAP50-95 mean ± std", "mAP50 mean", f"mAP50-95 per seed ({seeds})", "train s"]
    body = []
    for m in record["models"]:
        ok = m.get("latency_status") == "ok"
        body.append(
            [
                m["model"],
                f"{m['params'] / 1e6:.2f}",
                _number(m.get("gflops"), ".1f"),
                _number(m.get("latency_ms"), ".2f") if ok else m.get("latency_status", "-"),
                _number(m.get("latency_ratio"), ".2f") + ("x" if m.get("latency_ratio") else ""),
                f"{m['map50_95_mean']:.3f} ± {m['map50_95_std']:.3f}",
                f"{m['map50_mean']:.3f}",
                " / ".join(f"{r['map50_95']:.3f}" for r in m["seeds"]),
                _number(m.get("train_s_mean"), ".0f"),
            ]
        )
    lines = [
        f"Recipe: every model trained from scratch, epochs={s['epochs']}, imgsz={s['imgsz']}, batch={s['batch']}, "
        f"optimizer={s['optimizer']}, deterministic, seeds {seeds}, data={s['data']}; best.pt is "
        f"{record['recipe']['best_pt']}; mAP on the val split; std is the sample standard deviation over seeds.",
        f"Latency: {record['latency_method']}; ratio to the first model.",
        f"Environment: {env.get('cpu') or env.get('device')}, {env.get('threads', '?')} threads; {versions}.",
        "",
        timing.format_table(headers, body),
    ]
    return "\n".join(lines)


def plot(record: dict[str, Any], prefix: Path) -> list[Path]:
    """``<prefix>_latency.png`` and ``<prefix>_params.png``: mean mAP50-95 per model, bars from the lowest
    to the highest seed, each point labelled with its model.

    Args:
        record: the accuracy record.
        prefix: output path without suffix (``runs/benchmark/accuracy``).

    Returns:
        The PNG paths written (no latency plot when no model was timed).
    """
    import matplotlib  # heavy optional plotting dependency, only needed here

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s = record["settings"]
    fmt = "ONNX Runtime" if s["latency_format"] == "onnx" else "PyTorch"
    axes = [
        ("latency", "latency_ms", f"{fmt} CPU latency at {s['latency_imgsz']} px (ms, median)"),
        ("params", "params", "parameters (M)"),
    ]
    written = []
    for suffix, key, label in axes:
        points = [m for m in record["models"] if m.get(key) is not None]
        if not points:
            continue
        fig, ax = plt.subplots(figsize=(7, 5))
        for m in points:
            x = m[key] / 1e6 if key == "params" else m[key]
            per_seed = [r["map50_95"] for r in m["seeds"]]
            low, high = m["map50_95_mean"] - min(per_seed), max(per_seed) - m["map50_95_mean"]
            ax.errorbar([x], [m["map50_95_mean"]], yerr=[[low], [high]], fmt="o", capsize=4)
            ax.annotate(m["model"], (x, m["map50_95_mean"]), textcoords="offset points", xytext=(6, 4), fontsize=8)
        ax.set_xlabel(label)
        ax.set_ylabel("mAP50-95 (mean over seeds; bars: lowest to highest seed)")
        ax.set_title(f"mAP50-95 vs {suffix}: {s['epochs']} epochs at {s['imgsz']} px, seeds {s['seeds']}")
        ax.grid(True, alpha=0.3)
        path = prefix.with_name(f"{prefix.name}_{suffix}.png")
        fig.savefig(path, dpi=120, bbox_inches="tight")
        plt.close(fig)
        written.append(path)
    return written


def ablation_markdown(record: dict[str, Any]) -> str:
    """The table of ``yolo-lat benchmark ablate``: the full model, each attention layer removed, all removed."""
    headers = ["layer", "module", "attention removed", "attention params", "mAP50-95", "delta vs full", "mAP50"]
    body = [
        [r["layer"], r["module"], r["removed"], f"{r['attention_params']:,}", f"{r['map50_95']:.3f}",
         f"{r['delta']:+.3f}", f"{r['map50']:.3f}"]
        for r in record["rows"]
    ]  # fmt: skip
    head = (
        f"Model {record['settings']['model']} ({record['model_yaml'] or 'unknown YAML'}, "
        f"{record['parameters']:,} parameters), data {record['data_yaml']}. Method: {record['method']}."
    )
    return f"{head}\n\n{timing.format_table(headers, body)}"


def write(record: dict[str, Any], project: str, name: str, plots: bool = True) -> list[Path]:
    """Write ``<project>/<name>.json``, ``<name>.md`` and (``plots``) the PNGs; returns the paths."""
    out = Path(project)
    out.mkdir(parents=True, exist_ok=True)
    written = [write_json(out / f"{name}.json", record), write_text(out / f"{name}.md", markdown(record) + "\n")]
    if plots:
        written += plot(record, out / name)
    return written


__all__ = ["ablation_markdown", "markdown", "plot", "write"]
