"""Argument checks shared by every ELA entry point (attention, decode step, readout, the references).

One function per argument, so that ``ela_attention``, ``ela_step``, ``ela_readout`` and the naive
references reject the same values with the same one-line message.

Example:
    >>> check_scale(0.125)
    >>> check_scale(float("nan"))
    Traceback (most recent call last):
    ...
    ValueError: scale must be a finite number or None, got nan; pass None (1) or e.g. 1 / sqrt(head_dim)
"""

from __future__ import annotations

import math

__all__ = ["check_head_dim", "check_scale"]


def check_scale(scale: object) -> None:
    """Raise ``ValueError`` unless ``scale`` is None or a finite Python number.

    A non-finite scale multiplies every query and key by NaN or infinity: every output would be NaN.

    Args:
        scale: the ``scale`` argument of an ELA function.

    Example:
        >>> check_scale(None)
    """
    if scale is None:
        return
    if not isinstance(scale, (int, float)):
        raise ValueError(f"scale must be a float or None, got {type(scale).__name__}")
    if not math.isfinite(scale):
        raise ValueError(
            f"scale must be a finite number or None, got {scale}; pass None (1) or e.g. 1 / sqrt(head_dim)"
        )


def check_head_dim(dim: int, where: str = "q and k") -> None:
    """Raise ``ValueError`` when the query/key width ``D`` is 0.

    A kernel of zero-width vectors weighs every key by one constant, which says nothing about the
    inputs; an empty head is a shape bug upstream, so it is refused rather than averaged.

    Args:
        dim: the last dimension of the queries and keys.
        where: the tensors named in the message.

    Example:
        >>> check_head_dim(0)
        Traceback (most recent call last):
        ...
        ValueError: q and k have head dim D=0; ELA needs D >= 1 (check the head split: D = width / heads)
    """
    if dim == 0:
        raise ValueError(f"{where} have head dim D=0; ELA needs D >= 1 (check the head split: D = width / heads)")
