"""YOLO blocks on Exact Linear Attention, with Ultralytics-style ``(c1, c2, n, ...)`` constructors.

- :class:`A2C2fELA` plays the role of YOLO12's ``A2C2f`` (area attention), argument for argument;
- :class:`C2PSAELA` plays the role of YOLO11/26's ``C2PSA``;
- :class:`C2fELA` is a C2f whose inner blocks attend globally, for necks where input and output
  channels differ (e.g. after a ``Concat`` at P3);
- :class:`SeparableConv` is the depthwise-separable convolution of the pico detector's backbone.

All of them are built from :class:`ELABlock` (attention + 1x1 MLP, each with a residual) and
BatchNorm-backed ``Conv`` layers, so ``DetectionModel.fuse()`` folds every BatchNorm.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from ultralytics.nn.modules.block import C3k
from ultralytics.nn.modules.conv import Conv

from .attention2d import ELAAttention2d

__all__ = ["C2PSAELA", "A2C2fELA", "C2fELA", "ELABlock", "SeparableConv"]


class ELABlock(nn.Module):
    """Attention then MLP, each added to its input: ``x + attn(x)``, then ``x + mlp(x)``.

    The ELA twin of Ultralytics' ``ABlock`` (``pe_kernel=7``, ``qk_ratio=1``) and ``PSABlock``
    (``pe_kernel=3``, ``qk_ratio=0.5``, ``mlp_ratio=2``).

    Args:
        dim: channels ``C`` (in = out).
        num_heads: attention heads; ``dim`` must be divisible by it.
        mlp_ratio: hidden channels of the MLP as a multiple of ``dim``.
        qk_ratio: query/key channels per head as a fraction of the head size.
        pe_kernel: side of the depthwise positional convolution.
        kernel: ELA kernel name.
        shortcut: add the residuals (``False`` returns ``mlp(attn(x))``).
        init_std: if given, conv weights start from a truncated normal with this std (``ABlock``'s
            initialisation, 0.02) instead of PyTorch's default.

    Shapes:
        input ``(B, C, H, W)``, output ``(B, C, H, W)``.

    Example:
        >>> import torch
        >>> ELABlock(64, num_heads=2)(torch.randn(1, 64, 16, 16)).shape
        torch.Size([1, 64, 16, 16])
    """

    def __init__(
        self,
        dim: int,
        num_heads: int = 1,
        mlp_ratio: float = 2.0,
        qk_ratio: float = 1.0,
        pe_kernel: int = 7,
        kernel: str = "hadamard_exp",
        shortcut: bool = True,
        init_std: float | None = None,
    ) -> None:
        super().__init__()
        self.attn = ELAAttention2d(dim, num_heads, qk_ratio=qk_ratio, pe_kernel=pe_kernel, kernel=kernel)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(Conv(dim, hidden, 1), Conv(hidden, dim, 1, act=False))
        self.add = shortcut
        if init_std is not None:
            for module in self.modules():
                if isinstance(module, nn.Conv2d):
                    nn.init.trunc_normal_(module.weight, std=init_std)
                    if module.bias is not None:
                        nn.init.zeros_(module.bias)

    def forward(self, x: Tensor) -> Tensor:
        """Attention then MLP, with residuals.

        Args:
            x: ``(B, C, H, W)`` feature map.

        Returns:
            ``(B, C, H, W)``.
        """
        x = x + self.attn(x) if self.add else self.attn(x)
        return x + self.mlp(x) if self.add else self.mlp(x)


class A2C2fELA(nn.Module):
    """YOLO12's ``A2C2f`` with every area-attention block replaced by a global :class:`ELABlock`.

    Same signature, sub-module names and parameter count as ``A2C2f``, so a YOLO12 YAML row can be
    swapped 1:1 and YOLO12 weights load into it; only the attention function differs. ``area``
    splits a feature map into strips for quadratic attention; global linear attention needs no
    such split, so an integer ``area`` is accepted and ignored. A *string* in that slot names the
    ELA kernel instead, so YAML rows can pick a kernel at every scale (YOLO12 appends ``residual``
    and ``mlp_ratio`` to the arguments at scales l/x, so trailing arguments are not free).

    Args:
        c1: input channels.
        c2: output channels.
        n: number of stages, each two :class:`ELABlock` (``a2=True``) or one ``C3k`` (``a2=False``).
        a2: use attention; ``False`` gives the plain ``C3k`` variant, identical to ``A2C2f``'s.
        area: ignored when an int; an ELA kernel name when a str.
        residual: add the input back, scaled by a learnable ``gamma`` (needs ``c1 == c2``).
        mlp_ratio: MLP expansion inside each block.
        e: hidden channels ``c_ = int(c2 * e)``; ``c_`` must be a multiple of 32 (32-channel heads).
        g: groups of the ``C3k`` convolutions.
        shortcut: shortcuts inside ``C3k``.
        kernel: ELA kernel name (overridden by a string ``area``).

    Shapes:
        input ``(B, c1, H, W)``, output ``(B, c2, H, W)``.

    Example:
        >>> import torch
        >>> A2C2fELA(128, 128, n=1, a2=True, area=4)(torch.randn(1, 128, 20, 20)).shape
        torch.Size([1, 128, 20, 20])
        >>> A2C2fELA(96, 64, 1, True, "sum_sq_euclid").m[0][0].attn.kernel
        'sum_sq_euclid'
    """

    def __init__(
        self,
        c1: int,
        c2: int,
        n: int = 1,
        a2: bool = True,
        area: int | str = 1,
        residual: bool = False,
        mlp_ratio: float = 2.0,
        e: float = 0.5,
        g: int = 1,
        shortcut: bool = True,
        kernel: str = "hadamard_exp",
    ) -> None:
        super().__init__()
        hidden = int(c2 * e)
        if hidden % 32:
            raise ValueError(f"A2C2fELA: hidden channels int(c2 * e) = {hidden} must be a multiple of 32")
        if a2 and residual and c1 != c2:
            raise ValueError(f"A2C2fELA: residual=True needs c1 == c2, got c1={c1}, c2={c2}")
        if isinstance(area, str):
            kernel = area
        self.cv1 = Conv(c1, hidden, 1, 1)
        self.cv2 = Conv((1 + n) * hidden, c2, 1)
        self.gamma = nn.Parameter(0.01 * torch.ones(c2)) if a2 and residual else None
        self.m = nn.ModuleList(
            nn.Sequential(
                *(
                    ELABlock(hidden, hidden // 32, mlp_ratio, pe_kernel=7, kernel=kernel, init_std=0.02)
                    for _ in range(2)
                )
            )
            if a2
            else C3k(hidden, hidden, 2, shortcut, g)
            for _ in range(n)
        )

    def forward(self, x: Tensor) -> Tensor:
        """Run the block.

        Args:
            x: ``(B, c1, H, W)`` feature map.

        Returns:
            ``(B, c2, H, W)``.
        """
        outputs = [self.cv1(x)]
        outputs.extend(stage(outputs[-1]) for stage in self.m)
        y = self.cv2(torch.cat(outputs, 1))
        if self.gamma is not None:
            return x + self.gamma.view(1, -1, 1, 1) * y
        return y


class C2PSAELA(nn.Module):
    """YOLO11/26's ``C2PSA`` with each position-sensitive attention block replaced by an :class:`ELABlock`.

    Half of the channels pass through ``n`` attention blocks, the other half skip them; a 1x1
    convolution merges both. Same parameter count as ``C2PSA``.

    Args:
        c1: input channels.
        c2: output channels (must equal ``c1``, as in ``C2PSA``).
        n: number of attention blocks.
        e: fraction of channels that go through attention (``c = int(c1 * e)``).
        kernel: ELA kernel name.

    Shapes:
        input ``(B, c1, H, W)``, output ``(B, c1, H, W)``.

    Example:
        >>> import torch
        >>> C2PSAELA(256, 256, n=1)(torch.randn(1, 256, 20, 20)).shape
        torch.Size([1, 256, 20, 20])
    """

    def __init__(self, c1: int, c2: int, n: int = 1, e: float = 0.5, kernel: str = "hadamard_exp") -> None:
        super().__init__()
        if c1 != c2:
            raise ValueError(f"C2PSAELA: c1 and c2 must be equal, got c1={c1}, c2={c2}")
        self.c = int(c1 * e)
        self.cv1 = Conv(c1, 2 * self.c, 1, 1)
        self.cv2 = Conv(2 * self.c, c1, 1)
        heads = max(self.c // 64, 1)
        self.m = nn.Sequential(
            *(ELABlock(self.c, heads, mlp_ratio=2.0, qk_ratio=0.5, pe_kernel=3, kernel=kernel) for _ in range(n))
        )

    def forward(self, x: Tensor) -> Tensor:
        """Attend on half of the channels, merge with the other half.

        Args:
            x: ``(B, c1, H, W)`` feature map.

        Returns:
            ``(B, c1, H, W)``.
        """
        skip, attended = self.cv1(x).split((self.c, self.c), dim=1)
        return self.cv2(torch.cat((skip, self.m(attended)), 1))


class C2fELA(nn.Module):
    """A C2f whose inner blocks are :class:`ELABlock`: global attention at any stride, any ``c1``.

    ``cv1`` maps ``c1`` to two halves of ``c = int(c2 * e)`` channels; ``n`` blocks refine the last
    half in turn; ``cv2`` merges all ``2 + n`` tensors into ``c2`` channels. Used in the YOLO-LAT
    neck, where a ``Concat`` feeds more channels than the block emits.

    Args:
        c1: input channels.
        c2: output channels.
        n: number of attention blocks.
        kernel: ELA kernel name.
        e: hidden fraction, ``c = int(c2 * e)``.
        head_dim: channels per head; ``c`` must be a multiple of it (or smaller: one head).
        mlp_ratio: MLP expansion inside each block.
        pe_kernel: side of the depthwise positional convolution.

    Shapes:
        input ``(B, c1, H, W)``, output ``(B, c2, H, W)``.

    Example:
        >>> import torch
        >>> C2fELA(192, 64, n=1)(torch.randn(1, 192, 40, 40)).shape
        torch.Size([1, 64, 40, 40])
    """

    def __init__(
        self,
        c1: int,
        c2: int,
        n: int = 1,
        kernel: str = "hadamard_exp",
        e: float = 0.5,
        head_dim: int = 32,
        mlp_ratio: float = 2.0,
        pe_kernel: int = 3,
    ) -> None:
        super().__init__()
        self.c = int(c2 * e)
        if self.c > head_dim and self.c % head_dim:
            raise ValueError(f"C2fELA: hidden channels {self.c} are not a multiple of head_dim={head_dim}")
        heads = max(self.c // head_dim, 1)
        self.cv1 = Conv(c1, 2 * self.c, 1, 1)
        self.cv2 = Conv((2 + n) * self.c, c2, 1)
        self.m = nn.ModuleList(
            ELABlock(self.c, heads, mlp_ratio=mlp_ratio, pe_kernel=pe_kernel, kernel=kernel) for _ in range(n)
        )

    def forward(self, x: Tensor) -> Tensor:
        """Run the block.

        Args:
            x: ``(B, c1, H, W)`` feature map.

        Returns:
            ``(B, c2, H, W)``.
        """
        outputs = list(self.cv1(x).split((self.c, self.c), 1))
        outputs.extend(block(outputs[-1]) for block in self.m)
        return self.cv2(torch.cat(outputs, 1))


class SeparableConv(nn.Module):
    """Depthwise ``k x k`` convolution then pointwise 1x1 convolution, each with BatchNorm and SiLU.

    Args:
        c1: input channels.
        c2: output channels.
        k: depthwise kernel size.
        s: stride of the depthwise convolution.

    Shapes:
        input ``(B, c1, H, W)``, output ``(B, c2, H / s, W / s)``.

    Example:
        >>> import torch
        >>> SeparableConv(16, 32, 3, 2)(torch.randn(1, 16, 64, 64)).shape
        torch.Size([1, 32, 32, 32])
    """

    def __init__(self, c1: int, c2: int, k: int = 3, s: int = 1) -> None:
        super().__init__()
        self.dw = Conv(c1, c1, k, s, g=c1)
        self.pw = Conv(c1, c2, 1)

    def forward(self, x: Tensor) -> Tensor:
        """Depthwise then pointwise convolution.

        Args:
            x: ``(B, c1, H, W)`` feature map.

        Returns:
            ``(B, c2, H / s, W / s)``.
        """
        return self.pw(self.dw(x))


#: The blocks a model YAML can name (registered with Ultralytics' parser by :mod:`yolo_lat.nn.shim`).
YAML_BLOCKS = (A2C2fELA, C2PSAELA, C2fELA, SeparableConv)
