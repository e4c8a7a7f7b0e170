"""Training loop of the text models: random windows of a text file, AdamW, validation, checkpoints, resume.

``train()`` with no settings trains a small ELA-GPT (Hyper-Link, causal Memory Lobe, 4 label-routed
experts) on the embedded corpus on a CPU and writes
``runs/text/train*/last.pt`` (and ``best.pt``, the lowest validation loss).
"""

from __future__ import annotations

import math
import time
from importlib import resources
from pathlib import Path
from typing import Any

import torch

from .checkpoint import FORMAT, find_latest_checkpoint, load_weights, read_checkpoint, save_checkpoint
from .checks import SEED, Limit, check_device, check_values, read_text_file
from .config import LIMITS as CONFIG_LIMITS
from .config import ELAGPTConfig
from .model import ELAGPT
from .tokenizer import load_tokenizer

__all__ = ["DEFAULTS", "DOCS", "LIMITS", "MODEL_KEYS", "default_corpus", "split_tokens", "train", "validation_loss"]

MODEL_KEYS = (
    "d_model",
    "n_layers",
    "n_heads",
    "kernel",
    "hyperlink",
    "memory_lobe",
    "moe_experts",
    "moe_top_k",
    "moe_bias",
    "attention",
    "lobe_bidirectional",
    "tie_embeddings",
    "moe_balance_weight",
    "hyperlink_form",
    "lobe_form",
    "moe_gate",
)

DEFAULTS: dict[str, Any] = {
    "data": "",
    "tokenizer": "byte",
    "d_model": 64,
    "n_layers": 2,
    "n_heads": 4,
    "kernel": "hadamard_exp",
    "hyperlink": True,
    "memory_lobe": True,
    "moe_experts": 4,
    "moe_top_k": 2,
    "moe_bias": "outer",
    "moe_balance_weight": 0.01,
    "attention": "ela",
    "lobe_bidirectional": False,
    "tie_embeddings": False,
    "hyperlink_form": "paper",
    "lobe_form": "project",
    "moe_gate": "label",
    "block": 64,
    "batch": 16,
    "steps": 200,
    "lr": 3e-3,
    "schedule": "cosine",
    "weight_decay": 0.01,
    "warmup": 15,
    "grad_clip": 1.0,
    "val_fraction": 0.1,
    "val_every": 50,
    "val_batches": 4,
    "project": "runs/text",
    "name": "",
    "resume": False,
    "device": "cpu",
    "seed": 0,
    "progress": True,
}
DOCS = {
    "data": "text file to train on (empty: the embedded default corpus)",
    "tokenizer": "byte, a tokenizer.json path (needs 'tokenizers') or a local Hugging Face tokenizer",
    "d_model": "model width",
    "n_layers": "decoder layers",
    "n_heads": "attention heads",
    "kernel": "ELA kernel (yolo_lat.ela.list_kernels())",
    "hyperlink": "Hyper-Link layers (False: standard pre-norm layers)",
    "memory_lobe": "add a causal Memory Lobe to every layer",
    "moe_experts": "experts per layer (0: dense SwiGLU FFN)",
    "moe_top_k": "experts per token",
    "moe_bias": "routing-score bias: outer, inner or none",
    "moe_balance_weight": "weight of the MoE load-balancing loss",
    "attention": "ela or softmax (baseline)",
    "lobe_bidirectional": "lobe sees the future (leak demonstration only; the model cannot generate)",
    "tie_embeddings": "share the input embedding with the output head",
    "hyperlink_form": "paper (x + ffn(a)) or reference (x + a + ffn(a), the reference code), a = attn(norm x)",
    "lobe_form": "project (flow, norm, heads, out-proj) or reference (1 head, QKV only, reads the FFN output)",
    "moe_gate": "label (label vectors, routing-score bias) or linear (linear top-k gate, reference code)",
    "block": "context length of a training window",
    "batch": "windows per step",
    "steps": "total optimisation steps (with resume: continue up to this many)",
    "lr": "peak learning rate (after a linear warm-up)",
    "schedule": "cosine (decay to 10% of lr at the last step) or constant",
    "weight_decay": "AdamW weight decay of matrices",
    "warmup": "warm-up steps",
    "grad_clip": "gradient norm clip (0: off)",
    "val_fraction": "share of the text held out for validation (its end)",
    "val_every": "validate and checkpoint every this many steps (and at the end)",
    "val_batches": "batches of validation windows per validation",
    "project": "folder of the run folders",
    "name": "run folder name (empty: train, train2, ...)",
    "resume": "continue the latest run under project (or project/name) from its last.pt",
    "device": "cpu or cuda[:N]",
    "seed": "random seed (weights and batch order)",
    "progress": "show a progress bar",
}

#: What every numeric setting accepts (checked by :func:`train`; NaN and infinities never pass).
LIMITS: dict[str, Limit] = {
    **{key: limit for key, limit in CONFIG_LIMITS.items() if key in MODEL_KEYS},
    "block": Limit(int, 1),
    "batch": Limit(int, 1),
    "steps": Limit(int, 1),
    "lr": Limit(float, 0, closed=False),
    "weight_decay": Limit(float, 0),
    "warmup": Limit(int, 0),
    "grad_clip": Limit(float, 0),
    "val_fraction": Limit(float, 0, 1, closed=False, closed_high=False),
    "val_every": Limit(int, 1),
    "val_batches": Limit(int, 1),
    "seed": SEED,
}

#: What resuming reads from ``last.pt`` besides the model.
RESUME_KEYS = ("settings", "optimizer", "batch_rng", "step", "best_val", "history")


def default_corpus() -> str:
    """The embedded default corpus (about 23 KB of English prose written for this project)."""
    return resources.files("yolo_lat.text").joinpath("corpus.txt").read_text(encoding="utf-8")


def _run_folder(settings: dict[str, Any]) -> Path:
    project, name = Path(settings["project"]), settings["name"]
    if settings["resume"]:
        if name:
            return project / name
        return find_latest_checkpoint(project).parent
    if name:
        return project / name
    index = 1
    while (project / ("train" if index == 1 else f"train{index}")).exists():
        index += 1
    return project / ("train" if index == 1 else f"train{index}")


def split_tokens(tokens: torch.Tensor, block: int, val_fraction: float) -> tuple[torch.Tensor, torch.Tensor]:
    """``(train, validation)``: the last ``val_fraction`` of the tokens (at least one window) is held out."""
    n_val = max(block + 1, int(tokens.numel() * val_fraction))
    if tokens.numel() - n_val < block + 2:
        raise ValueError(
            f"the text has {tokens.numel()} tokens, too few for block={block} and val_fraction={val_fraction}"
        )
    return tokens[:-n_val], tokens[-n_val:]


def _windows(tokens: torch.Tensor, starts: torch.Tensor, block: int) -> tuple[torch.Tensor, torch.Tensor]:
    index = starts[:, None] + torch.arange(block + 1)
    chunk = tokens[index]
    return chunk[:, :-1], chunk[:, 1:]


@torch.no_grad()
def validation_loss(model: ELAGPT, tokens: torch.Tensor, block: int, batch: int, batches: int) -> float:
    """Mean next-token cross-entropy over evenly spaced windows of ``tokens`` (the same ones every time).

    Args:
        model: the language model.
        tokens: ``(N,)`` token ids, ``N > block``.
        block: window length.
        batch: windows per forward pass.
        batches: number of batches (``batch * batches`` windows, fewer if the text is short).

    Returns:
        The mean loss in nats per token.

    Example:
        >>> validation_loss(model, torch.tensor(ids), block=64, batch=16, batches=4)  # doctest: +SKIP
    """
    device = next(model.parameters()).device
    starts = torch.linspace(0, tokens.numel() - block - 1, max(1, batches * batch)).long().unique()
    was_training = model.training
    model.eval()
    total = 0.0
    for group in starts.split(batch):
        inputs, targets = _windows(tokens, group, block)
        ce, _ = model.loss(inputs.to(device), targets.to(device))
        total += ce.item() * len(group)
    model.train(was_training)
    return total / len(starts)


def _learning_rate(step: int, settings: dict[str, Any]) -> float:
    peak, warmup, total = settings["lr"], settings["warmup"], max(1, settings["steps"])
    if step < warmup:
        return peak * (step + 1) / warmup
    if settings["schedule"] == "constant":
        return peak
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def _optimizer(model: ELAGPT, settings: dict[str, Any]) -> torch.optim.Optimizer:
    # decay matrices only: norms' gains and the experts' label vectors keep their scale
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2 and not n.endswith("labels")]
    other = [p for n, p in model.named_parameters() if p.dim() < 2 or n.endswith("labels")]
    groups = [{"params": decay, "weight_decay": settings["weight_decay"]}, {"params": other, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=settings["lr"], betas=(0.9, 0.95))


def train(settings: dict[str, Any] | None = None, **overrides: Any) -> dict[str, Any]:
    """Train (or resume) a text model; returns a summary.

    Args:
        settings: full settings dict (see ``DEFAULTS``); missing keys take their defaults.
        **overrides: individual settings, e.g. ``steps=20``.

    Returns:
        ``{"run": folder, "last": path, "best": path, "step": n, "train_loss": x, "val_loss": y,
        "seconds": t, "history": [...], "parameters": n}``.

    Raises:
        ValueError: a setting outside its range (:data:`LIMITS`, non-finite numbers included), an
            absent device, an unreadable ``data`` file or ``last.pt`` to resume from.
        FileNotFoundError: ``data`` or, with ``resume``, the run's ``last.pt`` does not exist.

    Example:
        >>> summary = train(steps=20, d_model=32, progress=False)  # doctest: +SKIP
        >>> summary["val_loss"] < 5.5  # doctest: +SKIP
        True
    """
    settings = {**DEFAULTS, **(settings or {}), **overrides}
    unknown = sorted(set(settings) - set(DEFAULTS))
    if unknown:
        raise ValueError(f"unknown training settings: {', '.join(unknown)}")
    if settings["schedule"] not in ("cosine", "constant"):
        raise ValueError(f"schedule={settings['schedule']!r}: expected cosine or constant")
    check_values(settings, LIMITS)
    device = check_device(settings["device"])
    folder = _run_folder(settings)
    last_path, best_path = folder / "last.pt", folder / "best.pt"

    record: dict[str, Any] | None = None
    if settings["resume"]:
        if not last_path.is_file():
            raise FileNotFoundError(f"nothing to resume: {last_path} does not exist")
        record = read_checkpoint(last_path)
        lacking = [key for key in RESUME_KEYS if key not in record]
        if lacking:
            raise ValueError(f"{last_path}: cannot resume, the checkpoint lacks {', '.join(lacking)}")
        saved = record["settings"]
        kept = {k: saved.get(k, settings[k]) for k in (*MODEL_KEYS, "tokenizer", "data", "block", "val_fraction")}
        settings.update(kept)  # the model and data cannot change on resume; steps, lr, ... can
        check_values(settings, LIMITS)

    tokenizer = load_tokenizer(settings["tokenizer"])
    text = read_text_file(settings["data"]) if settings["data"] else default_corpus()
    tokens = torch.tensor(tokenizer.encode(text), dtype=torch.long)
    train_tokens, val_tokens = split_tokens(tokens, settings["block"], settings["val_fraction"])

    torch.manual_seed(settings["seed"])
    config = ELAGPTConfig(vocab_size=tokenizer.vocab_size, **{k: settings[k] for k in MODEL_KEYS})
    model = ELAGPT(config).to(device)
    optimizer = _optimizer(model, settings)
    batches = torch.Generator().manual_seed(settings["seed"])
    step, best_val, history = 0, math.inf, []
    if record is not None:
        load_weights(model, record, last_path)
        optimizer.load_state_dict(record["optimizer"])
        batches.set_state(record["batch_rng"])
        step, best_val, history = record["step"], record["best_val"], record["history"]

    def checkpoint(path: Path) -> None:
        save_checkpoint(
            {
                "format": FORMAT,
                "config": config.to_dict(),
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "batch_rng": batches.get_state(),
                "step": step,
                "best_val": best_val,
                "history": history,
                "settings": settings,
                "tokenizer": tokenizer.name,
            },
            path,
        )

    from tqdm import tqdm

    bar = tqdm(
        total=settings["steps"],
        initial=step,
        desc=f"text train {folder.name}",
        disable=not settings["progress"],
        dynamic_ncols=True,
    )
    began = time.perf_counter()
    model.train()
    running = None
    while step < settings["steps"]:
        starts = torch.randint(0, train_tokens.numel() - settings["block"] - 1, (settings["batch"],), generator=batches)
        inputs, targets = _windows(train_tokens, starts, settings["block"])
        for group in optimizer.param_groups:
            group["lr"] = _learning_rate(step, settings)
        ce, aux = model.loss(inputs.to(device), targets.to(device))
        loss = ce.item()
        if not math.isfinite(loss + aux.item()):  # stop before a NaN step reaches the weights and checkpoints
            bar.close()
            clip = " or set grad_clip > 0" if settings["grad_clip"] == 0 else ""
            kept = f"; {last_path} keeps step {history[-1]['step']}" if history else ""
            advice = f"lower lr={settings['lr']:g}{clip}{kept}"
            raise ValueError(f"training diverged at step {step + 1} (loss {loss}): {advice}")
        optimizer.zero_grad(set_to_none=True)
        (ce + aux).backward()
        if settings["grad_clip"] > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), settings["grad_clip"])
        optimizer.step()
        step += 1
        running = loss if running is None else 0.9 * running + 0.1 * loss
        bar.update(1)
        bar.set_postfix(loss=f"{running:.3f}")
        if step % settings["val_every"] == 0 or step == settings["steps"]:
            val_loss = validation_loss(model, val_tokens, settings["block"], settings["batch"], settings["val_batches"])
            history.append({"step": step, "train_loss": running, "val_loss": val_loss})
            bar.set_postfix(loss=f"{running:.3f}", val=f"{val_loss:.3f}")
            if val_loss < best_val:
                best_val = val_loss
                checkpoint(best_path)
            checkpoint(last_path)
    bar.close()
    last = history[-1] if history else {"train_loss": math.nan, "val_loss": math.nan}
    return {
        "run": str(folder),
        "last": str(last_path),
        "best": str(best_path),
        "step": step,
        "train_loss": last["train_loss"],
        "val_loss": last["val_loss"],
        "best_val_loss": best_val,
        "seconds": time.perf_counter() - began,
        "history": history,
        "parameters": model.num_parameters(),
    }
