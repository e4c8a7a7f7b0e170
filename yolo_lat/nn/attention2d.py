"""Exact Linear Attention over a 2-D feature map: every pixel attends to every pixel in O(H·W).

The layer follows the shape of the attention layers in YOLO blocks (a 1x1 ``qkv`` projection, a
depthwise positional convolution on the values, a 1x1 output projection, all BatchNorm-backed
:class:`~ultralytics.nn.modules.conv.Conv` layers so ``fuse()`` folds them), with the softmax
replaced by :func:`yolo_lat.ela.ela_attention`. Its cost is linear in the number of pixels, so it
can run at stride 8, where quadratic attention is unaffordable.
"""

from __future__ import annotations

from torch import Tensor, nn
from ultralytics.nn.modules.conv import Conv

from yolo_lat.ela import ela_attention, get_kernel

__all__ = ["ELAAttention2d"]


class ELAAttention2d(nn.Module):
    """Multi-head Exact Linear Attention over all pixels of a feature map.

    ``qkv`` produces, per head, ``key_dim`` query channels, ``key_dim`` key channels and
    ``head_dim`` value channels (the channel layout of Ultralytics' ``AAttn`` and ``Attention``, so
    their weights load into this layer unchanged). Queries and keys are multiplied by the
    temperature ``scale`` (default ``key_dim ** -0.5``, see docs/ela.md) inside the kernel's
    feature maps; a depthwise ``pe_kernel x pe_kernel`` convolution of the values is added to the
    attention output as a positional term; ``proj`` mixes the heads.

    Args:
        dim: input and output channels ``C``.
        num_heads: number of heads; ``dim`` must be divisible by it (``head_dim = dim // num_heads``).
        qk_ratio: query/key channels per head as a fraction of ``head_dim`` (1.0 like ``AAttn``,
            0.5 like the PSA ``Attention``).
        pe_kernel: side of the depthwise positional convolution (odd).
        kernel: ELA kernel name, one of :func:`yolo_lat.ela.list_kernels`.
        scale: temperature multiplying q and k; ``None`` means ``key_dim ** -0.5``.

    Shapes:
        input ``(B, C, H, W)``, output ``(B, C, H, W)``.

    Example:
        >>> import torch
        >>> attn = ELAAttention2d(64, num_heads=2, kernel="hadamard_exp")
        >>> attn(torch.randn(2, 64, 20, 24)).shape
        torch.Size([2, 64, 20, 24])
    """

    def __init__(
        self,
        dim: int,
        num_heads: int = 1,
        qk_ratio: float = 1.0,
        pe_kernel: int = 7,
        kernel: str = "hadamard_exp",
        scale: float | None = None,
    ) -> None:
        super().__init__()
        if num_heads < 1 or dim % num_heads:
            raise ValueError(f"ELAAttention2d: dim={dim} must be a positive multiple of num_heads={num_heads}")
        if pe_kernel < 1 or pe_kernel % 2 == 0:
            raise ValueError(f"ELAAttention2d: pe_kernel must be a positive odd size, got {pe_kernel}")
        get_kernel(kernel)  # an unknown name fails here, when the model is built, not in the first forward
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.key_dim = max(int(self.head_dim * qk_ratio), 1)
        self.kernel = str(kernel)  # a name, not a Kernel object: checkpoints stay loadable under weights_only
        self.scale = float(self.key_dim**-0.5 if scale is None else scale)
        self.qkv = Conv(dim, num_heads * (2 * self.key_dim + self.head_dim), 1, act=False)
        self.proj = Conv(dim, dim, 1, act=False)
        self.pe = Conv(dim, dim, pe_kernel, 1, g=dim, act=False)

    def forward(self, x: Tensor) -> Tensor:
        """Attend every pixel to every pixel.

        Args:
            x: ``(B, C, H, W)`` feature map.

        Returns:
            ``(B, C, H, W)``: ``proj(attention + pe(values))``.
        """
        batch, channels, height, width = x.shape
        qkv = self.qkv(x).reshape(batch, self.num_heads, 2 * self.key_dim + self.head_dim, height * width)
        q, k, v = qkv.split([self.key_dim, self.key_dim, self.head_dim], dim=2)  # (B, heads, dim, N) views
        # ela_attention takes (B, heads, N, dim); transposed views avoid copying the projections
        out = ela_attention(
            q.transpose(-1, -2), k.transpose(-1, -2), v.transpose(-1, -2), kernel=self.kernel, scale=self.scale
        )
        out = out.transpose(-1, -2).reshape(batch, channels, height, width)
        return self.proj(out + self.pe(v.reshape(batch, channels, height, width)))

    def extra_repr(self) -> str:
        """Heads, per-head sizes and kernel, shown by ``print(model)``."""
        return (
            f"num_heads={self.num_heads}, head_dim={self.head_dim}, key_dim={self.key_dim}, "
            f"kernel={self.kernel!r}, scale={self.scale:.4g}"
        )
