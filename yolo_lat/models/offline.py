"""Keep Ultralytics off the network: plot fonts and the AMP check never download.

* Plots: Ultralytics draws labels with ``Arial.ttf`` / ``Arial.Unicode.ttf`` from its config
  directory and downloads them when missing, even with ``YOLO_OFFLINE=1``.
  :func:`ensure_plot_fonts` puts matplotlib's bundled DejaVu Sans (a free font that matplotlib
  always ships) there under those two names when they are absent; nothing is overwritten.
* AMP: on CUDA, Ultralytics' trainer checks mixed precision by downloading ``yolo26n.pt``.
  :func:`local_amp_check` does the same check on the model being trained instead (fp32 vs
  autocast outputs on a random batch); :class:`~yolo_lat.models.YOLOLATDetectionTrainer` uses it.
"""

from __future__ import annotations

import contextlib
import copy
import shutil
from collections.abc import Iterator
from pathlib import Path

import torch

__all__ = ["ensure_plot_fonts", "local_amp_check", "offline_training_checks"]

FONT_NAMES = ("Arial.ttf", "Arial.Unicode.ttf")


def ensure_plot_fonts() -> list[Path]:
    """Provide Ultralytics' plot fonts locally; returns the files written (empty when all exist)."""
    from matplotlib import get_data_path
    from ultralytics.utils import USER_CONFIG_DIR

    source = Path(get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
    written = []
    for name in FONT_NAMES:
        target = Path(USER_CONFIG_DIR) / name
        if target.exists() or not source.is_file():
            continue
        with contextlib.suppress(OSError):  # a read-only config dir: Ultralytics falls back to PIL's font
            target.parent.mkdir(parents=True, exist_ok=True)
            staged = target.with_name(target.name + ".partial")
            shutil.copyfile(source, staged)
            staged.replace(target)
            written.append(target)
    return written


def _tensors(output: object) -> list[torch.Tensor]:
    if isinstance(output, torch.Tensor):
        return [output]
    if isinstance(output, dict):
        output = list(output.values())
    if isinstance(output, (list, tuple)):
        return [t for item in output for t in _tensors(item)]
    return []


def local_amp_check(model: torch.nn.Module) -> bool:
    """True when autocast (fp16) forward outputs of ``model`` match fp32 on a random batch.

    Unlike Ultralytics' check, nothing is downloaded: the model under training is used.
    """
    device = next(model.parameters()).device
    if device.type != "cuda":
        return False
    probe = copy.deepcopy(model).eval()
    stride = int(max(getattr(probe, "stride", torch.tensor([32.0])).max().item(), 32))
    x = torch.rand(2, 3, 8 * stride, 8 * stride, device=device)
    with torch.no_grad():
        reference = _tensors(probe(x))
        with torch.autocast("cuda", dtype=torch.float16):
            mixed = _tensors(probe(x))
    del probe
    if not reference or len(reference) != len(mixed):
        return False
    for a, b in zip(reference, mixed):
        scale = a.float().abs().max().clamp_min(1e-6)
        if not torch.isfinite(b).all() or ((a.float() - b.float()).abs().max() / scale) > 0.05:
            return False
    return True


@contextlib.contextmanager
def offline_training_checks() -> Iterator[None]:
    """Within the block, Ultralytics' trainer uses :func:`local_amp_check` instead of downloading."""
    from ultralytics.engine import trainer

    ensure_plot_fonts()
    original = trainer.check_amp
    trainer.check_amp = local_amp_check
    try:
        yield
    finally:
        trainer.check_amp = original
