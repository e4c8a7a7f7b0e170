"""Multi-query associative recall (MQAR): can the model look a key up in its context?

Each sequence lists ``pairs`` key-value pairs, then asks for every key again in a random order:

    k1 v1 k2 v2 ... kN vN | kA vA kB vB ...

Keys come from one part of the vocabulary, values from another, both drawn at random per
sequence, so the only way to answer is to recall. The model is trained (fresh random sequences
every step) to predict the value after each *queried* key, and scored on the accuracy of those
predictions over held-out sequences. One model per ELA kernel plus the softmax baseline, all with
the same layers and parameter count. The layer variant (Hyper-Link and its form, Memory Lobe and its
form, mixture of experts and its gate) is the same for every method; for MoE models the record also
holds each layer's routing shares on the held-out sequences (the share of tokens whose first choice
is each expert).

Run ``yolo-lat benchmark mqar`` (or :func:`main` with the same words) with ``key=value``
overrides (``--help`` lists them). Prints a table and writes JSON.
"""

from __future__ import annotations

import math
import sys
import time
from typing import Any

import torch

from yolo_lat.args import ArgumentError
from yolo_lat.bench import timing
from yolo_lat.bench.runner import finish
from yolo_lat.cli import main as cli_main
from yolo_lat.ela import list_kernels
from yolo_lat.text import ELAGPT, ELAGPTConfig
from yolo_lat.text.experts import routing_shares

DEFAULTS: dict[str, Any] = {
    "methods": ["softmax", *list_kernels()],
    "pairs": 4,
    "keys": 16,
    "values": 16,
    "d_model": 64,
    "n_layers": 2,
    "n_heads": 2,
    "hyperlink": False,
    "hyperlink_form": "paper",
    "memory_lobe": False,
    "lobe_form": "project",
    "moe_experts": 0,
    "moe_top_k": 2,
    "moe_gate": "label",
    "steps": 1000,
    "batch": 64,
    "lr": 3e-3,
    "eval_sequences": 512,
    "device": "cpu",
    "seed": 0,
    "out": "runs/benchmark/mqar.json",
}
DOCS = {
    "methods": "softmax and/or ELA kernel names",
    "pairs": "key-value pairs per sequence (sequence length = 4 * pairs)",
    "keys": "size of the key vocabulary",
    "values": "size of the value vocabulary",
    "d_model": "model width (equal for every method)",
    "n_layers": "layers",
    "n_heads": "heads",
    "hyperlink": "Hyper-Link layers (default: standard pre-norm, to compare attention alone)",
    "hyperlink_form": "paper (x + ffn(a)) or reference (x + a + ffn(a)); needs hyperlink=True",
    "memory_lobe": "add a causal Memory Lobe to every layer",
    "lobe_form": "project (the flow x_k - x_{k-1}) or reference (the FFN step's update); needs memory_lobe=True",
    "moe_experts": "experts per layer (0: dense SwiGLU FFN)",
    "moe_top_k": "experts each token is routed to (with moe_experts > 0)",
    "moe_gate": "label (label vectors, routing on the stream) or linear (gate on the FFN input); needs moe_experts > 0",
    "steps": "training steps per model",
    "batch": "sequences per step",
    "lr": "peak learning rate (AdamW, cosine decay)",
    "eval_sequences": "held-out sequences scored",
    "device": "cpu or cuda[:N]",
    "seed": "random seed (same data and initialisation seed for every method)",
    "out": "JSON output path",
}


def make_batch(
    batch: int, pairs: int, keys: int, values: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Random MQAR sequences.

    Args:
        batch: number of sequences B.
        pairs: key-value pairs N (each sequence has length 4N).
        keys: key vocabulary size (ids ``0..keys-1``); must be >= ``pairs``.
        values: value vocabulary size (ids ``keys..keys+values-1``).
        generator: random generator.

    Returns:
        ``(inputs (B, 4N), targets (B, 4N), scored (B, 4N) bool)``: next-token targets, and the
        positions that hold a queried key (whose target is the recalled value).

    Example:
        >>> x, y, scored = make_batch(2, 4, 16, 16, torch.Generator().manual_seed(0))
        >>> x.shape, int(scored.sum())
        (torch.Size([2, 16]), 8)
    """
    if keys < pairs:
        raise ValueError(f"keys={keys} must be >= pairs={pairs} (keys are distinct within a sequence)")
    key_ids = torch.rand(batch, keys, generator=generator).argsort(dim=-1)[:, :pairs]
    value_ids = keys + torch.randint(0, values, (batch, pairs), generator=generator)
    order = torch.rand(batch, pairs, generator=generator).argsort(dim=-1)
    context = torch.stack([key_ids, value_ids], dim=-1).flatten(1)
    queries = torch.stack([key_ids.gather(1, order), value_ids.gather(1, order)], dim=-1).flatten(1)
    sequence = torch.cat([context, queries], dim=1)
    inputs, targets = sequence, torch.cat([sequence[:, 1:], sequence[:, :1]], dim=1)
    scored = torch.zeros_like(sequence, dtype=torch.bool)
    scored[:, 2 * pairs :: 2] = True
    return inputs, targets, scored


def _accuracy(model: ELAGPT, data: tuple[torch.Tensor, ...], device: torch.device) -> float:
    inputs, targets, scored = (t.to(device) for t in data)
    model.eval()
    with torch.no_grad():
        predictions = model(inputs).argmax(dim=-1)
    model.train()
    return (predictions[scored] == targets[scored]).float().mean().item()


#: Settings passed unchanged into :class:`~yolo_lat.text.ELAGPTConfig` (the layer variant).
VARIANT_FIELDS = ("hyperlink", "hyperlink_form", "memory_lobe", "lobe_form", "moe_experts", "moe_top_k", "moe_gate")


def model_config(method: str, settings: dict[str, Any]) -> ELAGPTConfig:
    """The model of one method: ``softmax`` or an ELA kernel, with the layer variant of ``settings``.

    Args:
        method: ``softmax`` or a registered ELA kernel name.
        settings: the benchmark settings (sizes, ``keys``/``values`` and :data:`VARIANT_FIELDS`).

    Returns:
        The config; the softmax twin differs from an ELA model only in ``attention`` (and the unused kernel).

    Raises:
        ArgumentError: a variant field out of range or a bad combination (the message names the argument,
            e.g. ``lobe_form='reference' needs memory_lobe=True``).

    Example:
        >>> model_config("softmax", {**DEFAULTS, "memory_lobe": True, "lobe_form": "reference"}).lobe_form
        'reference'
    """
    attention = "softmax" if method == "softmax" else "ela"
    try:
        return ELAGPTConfig(
            vocab_size=settings["keys"] + settings["values"],
            d_model=settings["d_model"],
            n_layers=settings["n_layers"],
            n_heads=settings["n_heads"],
            kernel="hadamard_exp" if attention == "softmax" else method,
            attention=attention,
            **{name: settings[name] for name in VARIANT_FIELDS},
        )
    except ValueError as err:
        raise ArgumentError(str(err)) from err


def train_one(method: str, settings: dict[str, Any], evaluation: tuple[torch.Tensor, ...]) -> dict[str, Any]:
    """Train one model on MQAR and score it; returns a result row.

    The training loss is the cross-entropy of the queried values plus the model's auxiliary loss
    (MoE load balancing; 0 without MoE). MoE rows also hold ``routing``: per layer, the share of the
    held-out tokens whose first choice is each expert.
    """
    device = torch.device(settings["device"])
    torch.manual_seed(settings["seed"])
    model = ELAGPT(model_config(method, settings)).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=settings["lr"], weight_decay=0.01, betas=(0.9, 0.95))
    data = torch.Generator().manual_seed(settings["seed"] + 1)
    began = time.perf_counter()
    loss_value = math.nan
    for step in range(settings["steps"]):
        for group in optimizer.param_groups:
            group["lr"] = settings["lr"] * 0.5 * (1 + math.cos(math.pi * step / settings["steps"]))
        inputs, targets, scored = (
            t.to(device)
            for t in make_batch(settings["batch"], settings["pairs"], settings["keys"], settings["values"], data)
        )
        logits, aux = model(inputs, return_aux=True)
        loss = torch.nn.functional.cross_entropy(logits[scored], targets[scored]) + aux
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        loss_value = loss.item()
    seconds = time.perf_counter() - began
    row = {
        "method": method,
        "accuracy": _accuracy(model, evaluation, device),
        "final_loss": loss_value,
        "parameters": model.num_parameters(),
        "train_seconds": seconds,
    }
    if settings["moe_experts"]:
        model.eval()
        shares = routing_shares(model, evaluation[0].to(device))
        row["routing"] = {str(layer): [round(v, 4) for v in share.tolist()] for layer, share in shares.items()}
    return row


def run(settings: dict[str, Any]) -> dict[str, Any]:
    """Train and score every method in ``settings['methods']``; returns the JSON record."""
    known = ["softmax", *list_kernels()]
    for method in settings["methods"]:
        if method not in known:
            raise ArgumentError(f"methods: unknown method {method!r}; choose from {', '.join(known)}")
        model_config(method, settings)  # a bad variant fails here, before any training
    evaluation = make_batch(
        settings["eval_sequences"],
        settings["pairs"],
        settings["keys"],
        settings["values"],
        torch.Generator().manual_seed(settings["seed"] + 10_000),
    )
    rows = [train_one(method, settings, evaluation) for method in settings["methods"]]
    changed = [f"{k}={_word(v)}" for k, v in settings.items() if v != DEFAULTS[k]]
    return {
        "benchmark": "mqar",
        "command": " ".join(["yolo-lat benchmark mqar", *changed]),
        "settings": {k: v for k, v in settings.items() if k != "out"},
        "environment": timing.environment(torch.device(settings["device"])),
        "chance": 1 / settings["values"],
        "rows": rows,
    }


def _word(value: Any) -> str:
    return ",".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)


def describe_variant(settings: dict[str, Any]) -> str:
    """The layer variant of a record's settings in words (records without the variant fields: their defaults).

    Example:
        >>> describe_variant({**DEFAULTS, "memory_lobe": True, "lobe_form": "reference"})
        'standard layers + lobe (reference)'
        >>> describe_variant({**DEFAULTS, "hyperlink": True, "moe_experts": 4, "moe_gate": "linear"})
        'Hyper-Link (paper) + MoE 4 experts, top 2, linear gate'
    """
    s = {**DEFAULTS, **settings}
    words = f"Hyper-Link ({s['hyperlink_form']})" if s["hyperlink"] else "standard layers"
    if s["memory_lobe"]:
        words += f" + lobe ({s['lobe_form']})"
    if s["moe_experts"]:
        words += f" + MoE {s['moe_experts']} experts, top {s['moe_top_k']}, {s['moe_gate']} gate"
    return words


def _largest_shares(row: dict[str, Any]) -> str:
    """Per MoE layer, the largest first-choice routing share (``-`` for a dense model)."""
    routing = row.get("routing")
    return " / ".join(f"{max(shares):.2f}" for shares in routing.values()) if routing else "-"


def render(record: dict[str, Any]) -> str:
    """Table of the record: one row per method (MoE records: with the largest routing share per layer)."""
    s = record["settings"]
    routed = any("routing" in r for r in record["rows"])
    headers = ["method", "accuracy", "final loss", "parameters", "train s"]
    headers += ["largest expert share per layer"] if routed else []
    body = [
        [
            r["method"],
            f"{r['accuracy']:.3f}",
            f"{r['final_loss']:.3f}",
            f"{r['parameters']:,}",
            f"{r['train_seconds']:.0f}",
            *([_largest_shares(r)] if routed else []),
        ]
        for r in record["rows"]
    ]
    head = (
        f"MQAR: {s['pairs']} pairs (length {4 * s['pairs']}), {s['keys']} keys, {s['values']} values, "
        f"d_model={s['d_model']}, layers={s['n_layers']}, heads={s['n_heads']}, {describe_variant(s)}, "
        f"{s['steps']} steps x {s['batch']} sequences; chance = {record['chance']:.3f}"
    )
    return f"{head}\n{timing.format_table(headers, body)}"


def variants_table(records: dict[str, dict[str, Any]]) -> str:
    """One table over several records: a row per record (its layer variant), a column per method's accuracy.

    Args:
        records: ``{file name: record}``, in the order of the rows.

    Returns:
        A Markdown table; a method a record did not train shows ``-``.

    Example:
        >>> row = {"method": "softmax", "accuracy": 1.0}
        >>> print(variants_table({"a.json": {"settings": DEFAULTS, "rows": [row]}}))
        | file | layers | softmax |
        |---|---|---|
        | `a.json` | standard layers | 1.000 |
    """
    methods = list(dict.fromkeys(r["method"] for record in records.values() for r in record["rows"]))
    lines = [f"| file | layers | {' | '.join(methods)} |", "|---|---|" + "---|" * len(methods)]
    for name, record in records.items():
        accuracy = {r["method"]: f"{r['accuracy']:.3f}" for r in record["rows"]}
        cells = [f"`{name}`", describe_variant(record["settings"]), *(accuracy.get(m, "-") for m in methods)]
        lines.append(f"| {' | '.join(cells)} |")
    return "\n".join(lines)


def command(settings: dict[str, Any]) -> int:
    """Handler of ``yolo-lat benchmark mqar``: run with ``settings``, write ``out`` as JSON, print the table."""
    return finish(settings, run, render)


def main(argv: list[str] | None = None) -> int:
    """``yolo-lat benchmark mqar`` with ``argv`` (``key=value`` words); returns the exit status."""
    return cli_main(["benchmark", "mqar", *(sys.argv[1:] if argv is None else argv)])
