"""Decode benchmark: per-token latency and state vs KV-cache memory, ELA-GPT vs its softmax twin.

Both models have the same layers and parameter count (``attention=ela`` vs ``attention=softmax``).
For each context length L the model is put in the state it would have after reading L tokens, then
decode steps are timed, ``burst`` of them back to back per timed call (as decoding runs them; the
figures are per step), ELA and softmax interleaved in rounds.

``prefill=synthetic`` (default) reads a short real prompt, then sets the position to L and, for
softmax, fills the KV cache up to L with random keys and values: a decode step costs the same
whatever the cached numbers are, and the ELA state has the same size after 64 or 128k tokens.
``prefill=real`` runs the model over L random tokens in chunks instead (softmax is O(L^2) there).

``static=compile|cuda_graph|compile+cuda_graph|eager`` adds two columns: both models decoding with
a :class:`~yolo_lat.text.StaticDecoder` (fixed buffers updated in place; the step compiled into one
graph and/or replayed as one CUDA graph). ELA's state is the same; softmax's KV cache becomes a
:class:`~yolo_lat.text.attention.FixedKVCache` of ``L + burst`` positions, attended over in full
(masked) at every step and rewound after each timed call.

Run ``yolo-lat benchmark decode`` (or :func:`main` with the same words) with ``key=value``
overrides (``--help`` lists them). Prints a table and writes JSON.
"""

from __future__ import annotations

import sys
from typing import Any

import torch

from yolo_lat.args import ArgumentError
from yolo_lat.bench import timing
from yolo_lat.bench.runner import finish
from yolo_lat.cli import main as cli_main
from yolo_lat.text import ELAGPT, DecodeState, ELAGPTConfig, KVCache, StaticDecoder

DEFAULTS: dict[str, Any] = {
    "contexts": [1024, 4096, 16384, 65536],
    "d_model": 256,
    "n_layers": 4,
    "n_heads": 4,
    "kernel": "hadamard_exp",
    "vocab": 256,
    "batch": 1,
    "prefill": "synthetic",
    "prefill_chunk": 2048,
    "device": "cpu",
    "dtype": "float32",
    "budget": 1.5,
    "burst": 8,
    "memory": True,
    "static": "none",
    "out": "runs/benchmark/decode.json",
    "seed": 0,
}
DOCS = {
    "contexts": "context lengths L already read before the timed steps (the paper: 1k..128k)",
    "d_model": "model width",
    "n_layers": "layers",
    "n_heads": "heads (head dim = d_model / n_heads)",
    "kernel": "ELA kernel",
    "vocab": "vocabulary size",
    "batch": "sequences decoded together",
    "prefill": "synthetic (state/cache of the right size, see module doc) or real (run the model over L tokens)",
    "prefill_chunk": "tokens per chunk of a real prefill",
    "device": "cpu or cuda[:N]",
    "dtype": "float32, float16 or bfloat16 (ELA state stays fp32)",
    "budget": "seconds of timing per context; rounds are interleaved",
    "burst": "consecutive decode steps per timed call (decoding runs steps back to back); times are per step",
    "memory": "also measure the allocator's peak during one decode step",
    "static": "both models with fixed buffers too: none, eager, compile, cuda_graph or compile+cuda_graph",
    "out": "JSON output path",
    "seed": "random seed",
}
METHODS = ("ela", "softmax")
STATIC_MODES = ("none", "eager", "compile", "cuda_graph", "compile+cuda_graph")
PROMPT = 64  # tokens of real prompt before a synthetic extension


def _models(settings: dict[str, Any], device: torch.device, dtype: torch.dtype) -> dict[str, ELAGPT]:
    models = {}
    for attention in METHODS:
        torch.manual_seed(settings["seed"])
        config = ELAGPTConfig(
            vocab_size=settings["vocab"],
            d_model=settings["d_model"],
            n_layers=settings["n_layers"],
            n_heads=settings["n_heads"],
            kernel=settings["kernel"],
            attention=attention,
        )
        models[attention] = ELAGPT(config).to(device, dtype).eval()
    return models


def _state_at(
    model: ELAGPT, context: int, settings: dict[str, Any], gen: torch.Generator, device: torch.device
) -> DecodeState:
    """The decode state after ``context`` tokens (see the module docstring for the two modes)."""
    batch, vocab = settings["batch"], settings["vocab"]
    if settings["prefill"] == "real":
        tokens = torch.randint(0, vocab, (batch, context), generator=gen).to(device)
        state = None
        for chunk in tokens.split(settings["prefill_chunk"], dim=1):
            _, state = model.prefill(chunk, state)
        return state
    prompt = torch.randint(0, vocab, (batch, min(PROMPT, context)), generator=gen).to(device)
    _, state = model.prefill(prompt)
    extra = context - prompt.shape[1]
    for layer in state.layers:
        cache = layer.attention
        if isinstance(cache, KVCache) and extra > 0:
            # a buffer with room for the timed steps, so appending never reallocates
            grown = KVCache.allocate(cache.k, cache.v, context + 64)
            grown.append(cache.keys, cache.values)
            shape = (*cache.k.shape[:2], extra, cache.k.shape[-1])
            fill = torch.randn(shape, generator=gen).to(device, cache.k.dtype)
            grown.append(fill, torch.randn(shape, generator=gen).to(device, cache.v.dtype))
            layer.attention = grown
    state.position = context
    return state


def _stepper(model: ELAGPT, state: DecodeState, token: torch.Tensor):
    """A call that decodes one token from ``state`` and leaves it unchanged (KV caches reset to L)."""
    lengths = [layer.attention.length for layer in state.layers if isinstance(layer.attention, KVCache)]

    def step() -> None:
        caches = [layer.attention for layer in state.layers if isinstance(layer.attention, KVCache)]
        for cache, length in zip(caches, lengths):
            cache.length = length
        model.step(token, state)

    return step


def _repeated(step, times: int):
    def run() -> None:
        for _ in range(times):
            step()

    return run


def _static_burst(model: ELAGPT, state: DecodeState, token: torch.Tensor, mode: str, burst: int):
    """A call that decodes ``burst`` tokens with a :class:`StaticDecoder`. An ELA state advances
    (at a cost that does not depend on it); a KV cache of ``L + burst`` positions is rewound after
    each call, so every call attends over the same L. Compiling and capturing happen here."""
    kv = model.config.attention == "softmax"
    decoder = StaticDecoder(
        model,
        state,
        compile="compile" in mode,
        cuda_graph="cuda_graph" in mode,
        max_length=state.position + burst if kv else None,
    )

    def run() -> None:
        for _ in range(burst):
            decoder.step(token)
        if kv:
            decoder.rewind(burst)

    run()
    return run


def run(settings: dict[str, Any]) -> dict[str, Any]:
    """Run the benchmark described by ``settings`` (see ``DEFAULTS``); returns the JSON record."""
    if settings["prefill"] not in ("synthetic", "real"):
        raise ArgumentError(f"prefill={settings['prefill']!r}: use synthetic or real")
    static = str(settings["static"])
    if static not in STATIC_MODES:
        raise ArgumentError(f"static={static!r}: use one of {', '.join(STATIC_MODES)}")
    device = torch.device(settings["device"])
    if "cuda_graph" in static and device.type != "cuda":
        raise ArgumentError(f"static={static} needs device=cuda, got device={settings['device']}")
    dtype = getattr(torch, settings["dtype"])
    gen = torch.Generator(device="cpu").manual_seed(settings["seed"])
    models = _models(settings, device, dtype)
    weights = {m: sum(p.numel() * p.element_size() for p in model.parameters()) for m, model in models.items()}
    rows = []
    with torch.inference_mode():
        for context in (int(c) for c in settings["contexts"]):
            states = {m: _state_at(model, context, settings, gen, device) for m, model in models.items()}
            token = torch.randint(0, settings["vocab"], (settings["batch"],), generator=gen).to(device)
            state_bytes = {m: states[m].nbytes for m in METHODS}  # before the steps add a token
            steps = {m: _stepper(models[m], states[m], token) for m in METHODS}
            burst = max(1, int(settings["burst"]))
            bursts = {name: _repeated(step, burst) for name, step in steps.items()}
            if static != "none":
                if "compile" in static:
                    torch._dynamo.reset()  # a KV cache's shape changes with L: one graph per length
                for m in METHODS:
                    bursts[f"{m}_static"] = _static_burst(models[m], states[m], token, static, burst)
            times = timing.interleaved_times(bursts, device, budget_s=settings["budget"], max_repeats=200)
            times = {name: [t / burst for t in samples] for name, samples in times.items()}
            row: dict[str, Any] = {"context": context}
            for method in bursts:
                base = method.removesuffix("_static")
                row[method] = {
                    **timing.summarize(times[method]),
                    "state_bytes": state_bytes[base],
                    "total_bytes": state_bytes[base] + weights[base],
                }
                if settings["memory"] and method in steps:
                    row[method]["step_peak_bytes"] = timing.peak_memory_bytes(steps[method], device)
            row["speedup"] = row["softmax"]["median_ms"] / row["ela"]["median_ms"]
            if "ela_static" in row:
                row["static_speedup"] = row["softmax_static"]["median_ms"] / row["ela_static"]["median_ms"]
            row["state_saving"] = 1 - row["ela"]["state_bytes"] / row["softmax"]["state_bytes"]
            row["total_saving"] = 1 - row["ela"]["total_bytes"] / row["softmax"]["total_bytes"]
            rows.append(row)
            del states, steps
    config = models["ela"].config
    return {
        "benchmark": "decode",
        "settings": {k: v for k, v in settings.items() if k != "out"},
        "environment": timing.environment(device),
        "parameters": models["ela"].num_parameters(),
        "weight_bytes": weights["ela"],
        "formula": {
            "ela_state_bytes": "n_layers * heads * F * (head_dim + 2) * 4   (S, C, shift in fp32; F = kernel features)",
            "kv_cache_bytes": f"2 * L * d_model * n_layers * batch * {torch.tensor([], dtype=dtype).element_size()}",
            "head_dim": config.head_dim,
        },
        "method": f"decode steps after L tokens, {settings['burst']} back to back per timed call (time per step), "
        "ELA and softmax (eager, and static when asked) interleaved per round, median of rounds",
        "paper_claim": "up to 6x faster decoding and 75% less memory than full attention (long context)",
        "rows": rows,
    }


def _mib(value: float) -> str:
    return f"{value / 2**20:.2f}"


def _static_cells(row: dict[str, Any]) -> list[str]:
    ela, soft = row["ela_static"]["median_ms"], row["softmax_static"]["median_ms"]
    return [f"{ela:.2f}", f"{soft:.2f}", f"{row['static_speedup']:.2f}x"]


def render(record: dict[str, Any]) -> str:
    """Table of the record: one row per context length."""
    headers = [
        "context",
        "ela ms/token",
        "softmax ms/token",
        "speed-up",
        "ELA state MiB",
        "KV cache MiB",
        "state saved",
        "total saved",
    ]
    with_static = any("ela_static" in row for row in record["rows"])
    if with_static:
        mode = record["settings"].get("static", "static")
        headers[4:4] = [f"ela {mode} ms/token", f"softmax {mode} ms/token", f"{mode} speed-up"]
    with_peak = any("step_peak_bytes" in row["ela"] for row in record["rows"])
    if with_peak:
        headers += ["ela step peak MiB", "softmax step peak MiB"]
    body = []
    for row in record["rows"]:
        ela, soft = row["ela"], row["softmax"]
        line: list[object] = [
            row["context"],
            f"{ela['median_ms']:.2f}",
            f"{soft['median_ms']:.2f}",
            f"{row['speedup']:.2f}x",
            *(_static_cells(row) if with_static else []),
            _mib(ela["state_bytes"]),
            _mib(soft["state_bytes"]),
            f"{row['state_saving']:.1%}",
            f"{row['total_saving']:.1%}",
        ]
        if with_peak:
            line += [_mib(ela.get("step_peak_bytes", 0)), _mib(soft.get("step_peak_bytes", 0))]
        body.append(line)
    s, env = record["settings"], record["environment"]
    head = (
        f"Decode benchmark: ELA-GPT ({s['kernel']}) vs softmax twin, {record['parameters']:,} parameters "
        f"(d_model={s['d_model']}, layers={s['n_layers']}, heads={s['n_heads']}, batch={s['batch']}, {s['dtype']}, "
        f"prefill={s['prefill']}, {env['device']}, torch {env['torch']}, {env['threads']} threads)"
    )
    foot = (
        f"weights {_mib(record['weight_bytes'])} MiB; 'total saved' counts weights + state. "
        f"Paper's claim: {record['paper_claim']}."
    )
    return f"{head}\n{timing.format_table(headers, body)}\n{foot}"


def command(settings: dict[str, Any]) -> int:
    """Handler of ``yolo-lat benchmark decode``: run with ``settings``, write ``out`` as JSON, print the table."""
    return finish(settings, run, render)


def main(argv: list[str] | None = None) -> int:
    """``yolo-lat benchmark decode`` with ``argv`` (``key=value`` words); returns the exit status."""
    return cli_main(["benchmark", "decode", *(sys.argv[1:] if argv is None else argv)])
