"""Torch modules built on the ELA core: 2-D feature-map attention and the YOLO-LAT blocks.

Example:
    >>> import torch
    >>> from yolo_lat.nn import C2fELA
    >>> C2fELA(128, 64, n=1, kernel="hadamard_exp")(torch.randn(1, 128, 80, 80)).shape
    torch.Size([1, 64, 80, 80])
"""

from yolo_lat._lazy_ultralytics import install_when_imported

from .attention2d import ELAAttention2d
from .blocks import C2PSAELA, A2C2fELA, C2fELA, ELABlock, SeparableConv

#: The blocks a model YAML can name (registered with Ultralytics' parser by :mod:`yolo_lat.models`).
YAML_BLOCKS = (A2C2fELA, C2PSAELA, C2fELA, SeparableConv)

__all__ = ["C2PSAELA", "YAML_BLOCKS", "A2C2fELA", "C2fELA", "ELAAttention2d", "ELABlock", "SeparableConv"]

# The layers above imported Ultralytics; if that import fired the registration hook, the hook found
# the blocks missing and waited for them (yolo_lat/_lazy_ultralytics.py). Register them now.
install_when_imported()
