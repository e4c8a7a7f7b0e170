"""The shared ELA core: kernels, exact linear attention (bidirectional, causal), recurrent decoding.

Imports nothing from Ultralytics; everything else in yolo_lat builds on it.

Example:
    >>> import torch
    >>> from yolo_lat.ela import ela_attention, list_kernels
    >>> list_kernels()
    ['hadamard_exp', 'modulated_dot', 'sub_sq_euclid', 'sum_sq_euclid']
    >>> q = k = v = torch.randn(2, 4, 128, 32)
    >>> ela_attention(q, k, v, kernel="hadamard_exp").shape
    torch.Size([2, 4, 128, 32])
"""

from .attention import default_chunk_size, ela_attention
from .kernels import (
    Kernel,
    get_kernel,
    hadamard_exp,
    list_kernels,
    modulated_dot,
    register_kernel,
    sub_sq_euclid,
    sum_sq_euclid,
    unregister_kernel,
)
from .naive import naive_attention, naive_recurrent_attention
from .recurrent import ELAState, ela_readout, ela_step

__all__ = [
    "ELAState",
    "Kernel",
    "default_chunk_size",
    "ela_attention",
    "ela_readout",
    "ela_step",
    "get_kernel",
    "hadamard_exp",
    "list_kernels",
    "modulated_dot",
    "naive_attention",
    "naive_recurrent_attention",
    "register_kernel",
    "sub_sq_euclid",
    "sum_sq_euclid",
    "unregister_kernel",
]
