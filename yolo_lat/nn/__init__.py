"""Torch modules built on the ELA core: 2-D feature-map attention and the YOLO-LAT blocks.

Importing this package registers the blocks with Ultralytics' model-YAML parser
(:mod:`yolo_lat.nn.shim`). A user of plain ``ultralytics.YOLO`` needs this one line before
building a YOLO-LAT model from its YAML::

    import yolo_lat.nn  # registers the YOLO-LAT blocks with Ultralytics

Example:
    >>> import torch
    >>> from yolo_lat.nn import C2fELA
    >>> C2fELA(128, 64, n=1, kernel="hadamard_exp")(torch.randn(1, 128, 80, 80)).shape
    torch.Size([1, 64, 80, 80])
"""

from . import shim
from .attention2d import ELAAttention2d
from .blocks import C2PSAELA, YAML_BLOCKS, A2C2fELA, C2fELA, ELABlock, SeparableConv

__all__ = ["C2PSAELA", "YAML_BLOCKS", "A2C2fELA", "C2fELA", "ELAAttention2d", "ELABlock", "SeparableConv", "shim"]

shim.install()
