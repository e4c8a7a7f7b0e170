"""Handlers of ``yolo-lat text train|generate|experts`` and their argument tables.

The dispatcher, the help and the examples are :mod:`yolo_lat.cli`; ``train``'s argument table is
:data:`yolo_lat.text.train.DEFAULTS`.

Example:
    >>> from yolo_lat.text.cli import main
    >>> main(["train", "steps=20"])  # doctest: +SKIP
    0
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import torch

from yolo_lat.args import ArgumentError
from yolo_lat.cli import main as cli_main

from .checkpoint import find_latest_checkpoint, load_model
from .checks import SEED, Limit, check_device, check_values, read_text_file
from .experts import describe_experts, format_experts
from .generate import MAX_NEW_TOKENS, TEMPERATURE, TOP_K
from .train import default_corpus
from .train import train as train_model

__all__ = [
    "EXPERTS_DEFAULTS",
    "EXPERTS_LIMITS",
    "GENERATE_DEFAULTS",
    "GENERATE_LIMITS",
    "experts",
    "generate",
    "main",
    "train",
]

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
GENERATE_LIMITS = {"max_new_tokens": MAX_NEW_TOKENS, "temperature": TEMPERATURE, "top_k": TOP_K, "seed": SEED}
EXPERTS_DEFAULTS: dict[str, Any] = {"model": "", "top": 10, "sample": 4096, "device": "cpu"}
EXPERTS_DOCS = {
    "model": "checkpoint (empty: the latest runs/text/*/last.pt)",
    "top": "tokens listed per expert",
    "sample": "tokens of the training text: routing shares, and only tokens seen there are listed (0: off)",
    "device": "cpu or cuda[:N]",
}
EXPERTS_LIMITS = {"top": Limit(int, 1), "sample": Limit(int, 0)}


def _checkpoint(model: str) -> str:
    return model or str(find_latest_checkpoint())


def train(settings: dict[str, Any]) -> int:
    """``yolo-lat text train``: train (or resume) an ELA-GPT; prints the losses and the checkpoint paths.

    Args:
        settings: :data:`yolo_lat.text.train.DEFAULTS` with the given values.
    """
    summary = train_model(settings)
    print(
        f"trained {summary['parameters']:,} parameters to step {summary['step']} in {summary['seconds']:.1f} s: "
        f"train loss {summary['train_loss']:.3f}, val loss {summary['val_loss']:.3f} "
        f"(best {summary['best_val_loss']:.3f})"
    )
    print(f"checkpoints: {summary['last']} (latest), {summary['best']} (best validation)")
    return 0


def generate(settings: dict[str, Any]) -> int:
    """``yolo-lat text generate``: continue ``prompt`` with a trained model and print the text.

    Args:
        settings: :data:`GENERATE_DEFAULTS` with the given values.
    """
    check_values(settings, GENERATE_LIMITS)
    device = check_device(settings["device"])
    model, tokenizer, _ = load_model(_checkpoint(settings["model"]), device)
    prompt = tokenizer.encode(str(settings["prompt"]))
    if not prompt:
        raise ArgumentError("prompt must not be empty")
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


def experts(settings: dict[str, Any]) -> int:
    """``yolo-lat text experts``: list, per expert, the tokens nearest its label vector.

    Args:
        settings: :data:`EXPERTS_DEFAULTS` with the given values.
    """
    check_values(settings, EXPERTS_LIMITS)
    device = check_device(settings["device"])
    path = _checkpoint(settings["model"])
    model, tokenizer, record = load_model(path, device)
    sample = None
    if settings["sample"] > 0:
        data = record.get("settings", {}).get("data", "")
        if data and not Path(data).is_file():
            raise FileNotFoundError(f"{path} was trained on {data}, which is gone; pass sample=0 or restore the file")
        text = read_text_file(data) if data else default_corpus()
        ids = tokenizer.encode(text)[: settings["sample"]]
        sample = torch.tensor([ids], device=next(model.parameters()).device)
    print(f"experts of {path} (nearest tokens by cosine of embedding and label vector)")
    print(format_experts(describe_experts(model, tokenizer, settings["top"], sample)))
    return 0


def main(argv: list[str] | None = None) -> int:
    """``yolo-lat text`` with ``argv`` (the words after ``text``); returns the exit status (:func:`yolo_lat.cli.main`).

    Example:
        >>> main(["train", "--help"])  # doctest: +SKIP
        0
    """
    return cli_main(["text", *(sys.argv[1:] if argv is None else argv)])
