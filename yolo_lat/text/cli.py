"""``yolo-lat text train|generate|experts key=value ...``: the command line of the text models.

Examples:
    yolo-lat text train                          # small ELA-GPT on the embedded corpus, < 1 min on CPU
    yolo-lat text train data=book.txt steps=2000 d_model=256 n_layers=6 n_heads=8
    yolo-lat text train resume=True steps=400    # continue the latest run up to 400 steps
    yolo-lat text generate prompt="The lamp" max_new_tokens=200 temperature=0.8 top_k=40
    yolo-lat text experts top=12
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from yolo_lat.args import ArgumentError, closest, format_defaults, split_pairs, typed

__all__ = ["EXPERTS_DEFAULTS", "GENERATE_DEFAULTS", "main"]

GENERATE_DEFAULTS: dict[str, Any] = {
    "model": "",
    "prompt": "The ",
    "max_new_tokens": 200,
    "temperature": 0.0,
    "top_k": 0,
    "seed": 0,
    "device": "cpu",
    "compile": False,
    "cuda_graph": False,
}
GENERATE_DOCS = {
    "model": "checkpoint (empty: the latest runs/text/*/last.pt)",
    "prompt": "text to continue",
    "max_new_tokens": "tokens to generate",
    "temperature": "0: greedy; > 0: sample",
    "top_k": "sample among the k most likely tokens (0: all)",
    "seed": "random seed for sampling",
    "device": "cpu or cuda[:N]",
    "compile": "compile the fixed-shape decode step (torch.compile; the first token waits for it)",
    "cuda_graph": "CUDA: capture the decode step once and replay it per token",
}
EXPERTS_DEFAULTS: dict[str, Any] = {"model": "", "top": 10, "sample": 4096, "device": "cpu"}
EXPERTS_DOCS = {
    "model": "checkpoint (empty: the latest runs/text/*/last.pt)",
    "top": "tokens listed per expert",
    "sample": "tokens of the training text: routing shares, and only tokens seen there are listed (0: off)",
    "device": "cpu or cuda[:N]",
}


def _wants_help(argv: list[str]) -> bool:
    return any(a in ("-h", "--help", "help") for a in argv)


def _usage(sub: str, summary: str, defaults: dict[str, Any], docs: dict[str, str]) -> str:
    return f"usage: yolo-lat text {sub} [key=value ...]\n\n{summary}\n\narguments:\n{format_defaults(defaults, docs)}"


def _checkpoint(model: str) -> str:
    from .checkpoint import find_latest_checkpoint

    return model or str(find_latest_checkpoint())


def _train(argv: list[str]) -> int:
    from .train import DEFAULTS, DOCS, train

    if _wants_help(argv):
        print(
            _usage(
                "train", "Train (or resume) an ELA-GPT on a text file; checkpoints under project/name.", DEFAULTS, DOCS
            )
        )
        return 0
    settings = typed(DEFAULTS, split_pairs(argv), "text train")
    summary = train(settings)
    print(
        f"trained {summary['parameters']:,} parameters to step {summary['step']} in {summary['seconds']:.1f} s: "
        f"train loss {summary['train_loss']:.3f}, val loss {summary['val_loss']:.3f} "
        f"(best {summary['best_val_loss']:.3f})"
    )
    print(f"checkpoints: {summary['last']} (latest), {summary['best']} (best validation)")
    return 0


def _generate(argv: list[str]) -> int:
    import torch

    from .checkpoint import load_model

    if _wants_help(argv):
        print(
            _usage(
                "generate",
                "Continue a prompt with a trained model (O(1) per token for ELA).",
                GENERATE_DEFAULTS,
                GENERATE_DOCS,
            )
        )
        return 0
    settings = typed(GENERATE_DEFAULTS, split_pairs(argv), "text generate")
    model, tokenizer, _ = load_model(_checkpoint(settings["model"]), settings["device"])
    prompt = tokenizer.encode(str(settings["prompt"]))
    if not prompt:
        raise ArgumentError("prompt must not be empty")
    device = next(model.parameters()).device
    generator = torch.Generator(device=device).manual_seed(settings["seed"])
    ids = torch.tensor([prompt], device=device)
    out = model.generate(
        ids,
        settings["max_new_tokens"],
        temperature=settings["temperature"],
        top_k=settings["top_k"] or None,
        generator=generator,
        compile=settings["compile"],
        cuda_graph=settings["cuda_graph"],
    )
    print(tokenizer.decode(out[0].tolist()))
    return 0


def _experts(argv: list[str]) -> int:
    import torch

    from .checkpoint import load_model
    from .experts import describe_experts, format_experts
    from .train import default_corpus

    if _wants_help(argv):
        print(
            _usage(
                "experts",
                "List, per expert, the tokens whose embeddings are nearest its label vector.",
                EXPERTS_DEFAULTS,
                EXPERTS_DOCS,
            )
        )
        return 0
    settings = typed(EXPERTS_DEFAULTS, split_pairs(argv), "text experts")
    path = _checkpoint(settings["model"])
    model, tokenizer, record = load_model(path, settings["device"])
    sample = None
    if settings["sample"] > 0:
        data = record.get("settings", {}).get("data", "")
        text = Path(data).read_text(encoding="utf-8") if data else default_corpus()
        ids = tokenizer.encode(text)[: settings["sample"]]
        sample = torch.tensor([ids], device=next(model.parameters()).device)
    print(f"experts of {path} (nearest tokens by cosine of embedding and label vector)")
    print(format_experts(describe_experts(model, tokenizer, settings["top"], sample)))
    return 0


SUBMODES: dict[str, tuple[str, Callable[[list[str]], int]]] = {
    "train": ("train or resume an ELA-GPT text model", _train),
    "generate": ("continue a prompt with a trained model", _generate),
    "experts": ("list the tokens nearest each expert's label vector", _experts),
}


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``yolo-lat text``; returns the exit status.

    Args:
        argv: ``[SUBMODE, key=value, ...]``.

    Returns:
        0 on success; bad arguments raise :class:`~yolo_lat.args.ArgumentError` (exit status 2 in
        the ``yolo-lat`` command).

    Example:
        >>> main(["train", "--help"])  # doctest: +SKIP
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    listing = "\n".join(f"  {name:<10} {doc}" for name, (doc, _) in SUBMODES.items())
    if not argv or argv[0] in ("-h", "--help", "help"):
        examples = __doc__.split("Examples:")[1]
        print(f"usage: yolo-lat text SUBMODE [key=value ...]\n\nsubmodes:\n{listing}\n\nexamples:{examples}")
        return 0
    sub, rest = argv[0], argv[1:]
    if sub not in SUBMODES:
        raise ArgumentError(f"unknown text submode '{sub}'.{closest(sub, SUBMODES)} Choose from: {', '.join(SUBMODES)}")
    return SUBMODES[sub][1](rest)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (ValueError, FileNotFoundError) as err:  # ArgumentError included
        print(f"yolo-lat text: error: {err}", file=sys.stderr)
        sys.exit(2)
