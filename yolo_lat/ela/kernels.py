"""Kernels of Exact Linear Attention: exact, finite feature-map pairs ``k(a, b) = phi(a) . psi(b)``.

A kernel is stored as a :class:`Kernel`: two feature maps and, optionally, the closed form of
``k`` that the naive reference uses (so the reference never relies on the factorisation it checks).

``modulated_dot`` is the paper's custom-kernel example ``(a.b + 1)(|a|^2 + 1)(|b|^2 + 1)`` made
non-negative: as written in the paper it is negative whenever ``a.b < -1``, which breaks the paper's
own non-negativity criterion (weights of both signs, denominators that cross zero). Adding
``|a||b|`` to the first factor (one extra feature on each side) makes it at least 1 by
Cauchy-Schwarz while keeping its shape: magnitude-modulated, direction-aligned.

Two kinds of feature map exist:

* *log-domain* kernels return ``log phi`` and ``log psi``; the features are their exponentials.
  Hadamard Exp is one (``phi(a) = exp(a)``). Working in log space lets the attention shift every
  feature by a constant before exponentiating, so ``exp`` never overflows (see docs/ela.md).
* *linear-domain* kernels return the features themselves (the squared-Euclidean kernels and the
  modulated dot product); the attention rescales them by shared positive constants for the same
  reason.

Example:
    >>> import torch
    >>> from yolo_lat.ela import get_kernel
    >>> kern = get_kernel("sub_sq_euclid")
    >>> a, b = torch.randn(3, 8, dtype=torch.float64), torch.randn(5, 8, dtype=torch.float64)
    >>> kern.evaluate(a, b).shape
    torch.Size([3, 5])
"""

from __future__ import annotations

import difflib
import itertools
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

FeatureMap = Callable[[Tensor], Tensor]
PairwiseFn = Callable[[Tensor, Tensor], Tensor]

__all__ = [
    "Kernel",
    "get_kernel",
    "hadamard_exp",
    "list_kernels",
    "modulated_dot",
    "register_kernel",
    "sub_sq_euclid",
    "sum_sq_euclid",
    "unregister_kernel",
]


@dataclass(frozen=True)
class Kernel:
    """A kernel ``k(a, b) = phi(a) . psi(b) >= 0`` with exact finite feature maps.

    Args:
        name: registry name.
        phi: query feature map, ``(..., D) -> (..., F)``; returns ``log phi`` when ``log_domain``.
        psi: key feature map, ``(..., D) -> (..., F)``; returns ``log psi`` when ``log_domain``.
        log_domain: whether ``phi``/``psi`` return log-features.
        pairwise: closed form over all pairs, ``(..., Lq, D), (..., Lk, D) -> (..., Lq, Lk)``;
            ``log k`` for log-domain kernels. ``None`` derives it from the feature maps.
        formula: human-readable ``k(a, b)`` for listings and error messages.
    """

    name: str
    phi: FeatureMap
    psi: FeatureMap
    log_domain: bool = False
    pairwise: PairwiseFn | None = None
    formula: str = ""

    def feature_dim(self, head_dim: int) -> int:
        """Size F of the feature vectors for inputs of size ``head_dim``."""
        return int(self.phi(torch.zeros(1, head_dim)).shape[-1])

    def pairwise_scores(self, a: Tensor, b: Tensor) -> Tensor:
        """``k(a_i, b_j)`` for all pairs (``log k`` for log-domain kernels), shape ``(..., Lq, Lk)``."""
        if self.pairwise is not None:
            return self.pairwise(a, b)
        fa, fb = self.phi(a), self.psi(b)
        if self.log_domain:
            return torch.logsumexp(fa.unsqueeze(-2) + fb.unsqueeze(-3), dim=-1)
        return fa @ fb.transpose(-1, -2)

    def evaluate(self, a: Tensor, b: Tensor) -> Tensor:
        """``k(a_i, b_j)`` in the linear domain for all pairs, shape ``(..., Lq, Lk)``."""
        scores = self.pairwise_scores(a, b)
        return scores.exp() if self.log_domain else scores

    def features(self, a: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
        """Unshifted linear-domain features ``(phi(a), psi(b))``; may overflow, for checks only."""
        fa, fb = self.phi(a), self.psi(b)
        return (fa.exp(), fb.exp()) if self.log_domain else (fa, fb)


def _sq_norm(x: Tensor) -> Tensor:
    return (x * x).sum(-1, keepdim=True)


def _identity(x: Tensor) -> Tensor:
    return x


def _hadamard_exp_pairwise(a: Tensor, b: Tensor) -> Tensor:
    return torch.logsumexp(a.unsqueeze(-2) + b.unsqueeze(-3), dim=-1)


def _sum_phi(a: Tensor) -> Tensor:
    return torch.cat([a, _sq_norm(a), torch.ones_like(a[..., :1])], dim=-1)


def _sum_psi(b: Tensor) -> Tensor:
    return torch.cat([2 * b, torch.ones_like(b[..., :1]), _sq_norm(b)], dim=-1)


def _sub_psi(b: Tensor) -> Tensor:
    return torch.cat([-2 * b, torch.ones_like(b[..., :1]), _sq_norm(b)], dim=-1)


def _sum_pairwise(a: Tensor, b: Tensor) -> Tensor:
    return (a.unsqueeze(-2) + b.unsqueeze(-3)).pow(2).sum(-1)


def _sub_pairwise(a: Tensor, b: Tensor) -> Tensor:
    return (a.unsqueeze(-2) - b.unsqueeze(-3)).pow(2).sum(-1)


def _soft_norm(x: Tensor) -> Tensor:
    # sqrt(|x|^2 + tiny): the same function on both sides keeps the factorisation exact, and the
    # tiny term keeps the gradient finite at x = 0.
    return (_sq_norm(x) + 1e-12).sqrt()


def _modulated_features(x: Tensor) -> Tensor:
    return (_sq_norm(x) + 1) * torch.cat([x, _soft_norm(x), torch.ones_like(x[..., :1])], dim=-1)


def _modulated_pairwise(a: Tensor, b: Tensor) -> Tensor:
    aligned = a @ b.transpose(-1, -2) + _soft_norm(a) * _soft_norm(b).transpose(-1, -2) + 1
    return aligned * (_sq_norm(a) + 1) * (_sq_norm(b) + 1).transpose(-1, -2)


hadamard_exp = Kernel(
    "hadamard_exp",
    phi=_identity,
    psi=_identity,
    log_domain=True,
    pairwise=_hadamard_exp_pairwise,
    formula="sum_d exp(a_d) exp(b_d)",
)
sum_sq_euclid = Kernel("sum_sq_euclid", phi=_sum_phi, psi=_sum_psi, pairwise=_sum_pairwise, formula="||a + b||^2")
sub_sq_euclid = Kernel("sub_sq_euclid", phi=_sum_phi, psi=_sub_psi, pairwise=_sub_pairwise, formula="||a - b||^2")
modulated_dot = Kernel(
    "modulated_dot",
    phi=_modulated_features,
    psi=_modulated_features,
    pairwise=_modulated_pairwise,
    formula="(a.b + |a||b| + 1)(||a||^2 + 1)(||b||^2 + 1)",
)

_BUILTIN = (hadamard_exp, sum_sq_euclid, sub_sq_euclid, modulated_dot)
_REGISTRY: dict[str, Kernel] = {k.name: k for k in _BUILTIN}


def list_kernels() -> list[str]:
    """Names of all registered kernels, sorted."""
    return sorted(_REGISTRY)


def get_kernel(kernel: str | Kernel) -> Kernel:
    """Look a kernel up by name (a :class:`Kernel` passes through unchanged).

    Raises:
        ValueError: unknown name; the message lists the registered kernels and the closest match.
    """
    if isinstance(kernel, Kernel):
        return kernel
    try:
        return _REGISTRY[kernel]
    except (KeyError, TypeError):
        close = difflib.get_close_matches(str(kernel), list(_REGISTRY), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(
            f"unknown ELA kernel {kernel!r}; registered kernels: {', '.join(list_kernels())}.{hint}"
        ) from None


def register_kernel(
    name: str,
    phi: FeatureMap,
    psi: FeatureMap,
    *,
    log_domain: bool = False,
    pairwise: PairwiseFn | None = None,
    formula: str = "",
    overwrite: bool = False,
) -> Kernel:
    """Register a user-defined kernel ``k(a, b) = phi(a) . psi(b)`` (the paper's kernel blueprint).

    The pair is checked on random float64 inputs before it is accepted: both maps return finite
    features of one size ``F``, every ``phi(a) . psi(b)`` is non-negative, and, when ``pairwise``
    is given, it agrees with the factorised form. Signs and NaN are also checked for queries and
    keys of magnitudes up to 1e4 (:data:`WIDE_SCALES`), where a kernel such as ``a . b + c`` turns
    negative. What sampling cannot prove is not checked: non-negativity for every input (only
    random ones, at ``D`` = 4 and 7), features that overflow float64 (``exp`` in the linear domain
    past about 709: register such a map with ``log_domain=True``), and overflow in float32/float16
    at run time.

    Args:
        name: registry name, used as ``ela_attention(..., kernel=name)``.
        phi: query feature map ``(..., D) -> (..., F)`` (log-features when ``log_domain``).
        psi: key feature map ``(..., D) -> (..., F)`` (log-features when ``log_domain``).
        log_domain: the maps return logarithms of non-negative features.
        pairwise: optional closed form ``k`` (``log k`` when ``log_domain``) over all pairs.
        formula: description shown in listings.
        overwrite: allow replacing an existing kernel of the same name.

    Returns:
        The registered :class:`Kernel`.

    Raises:
        ValueError: naming the kernel, when the name is taken or a check fails.

    Example:
        >>> import torch
        >>> from yolo_lat.ela import register_kernel
        >>> cube = lambda x: torch.cat([x, torch.ones_like(x[..., :1])], -1)  # k = a.b + 1
        >>> register_kernel("bad", cube, cube)
        Traceback (most recent call last):
        ...
        ValueError: kernel 'bad': phi(a) . psi(b) is negative (min ...) for random inputs with D=4; ...
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"kernel name must be a non-empty string, got {name!r}")
    if name in _REGISTRY and not overwrite:
        raise ValueError(f"kernel {name!r} is already registered; pass overwrite=True to replace it")
    for role, fn in (("phi", phi), ("psi", psi), ("pairwise", pairwise)):
        if fn is not None and not callable(fn):
            raise ValueError(f"kernel {name!r}: {role} must be callable, got {type(fn).__name__}")
    kernel = Kernel(name, phi, psi, log_domain=log_domain, pairwise=pairwise, formula=formula)
    _check_kernel(kernel)
    _REGISTRY[name] = kernel
    return kernel


def unregister_kernel(name: str) -> None:
    """Remove a user-registered kernel (the built-in kernels cannot be removed)."""
    if name in {k.name for k in _BUILTIN}:
        raise ValueError(f"kernel {name!r} is built in and cannot be unregistered")
    get_kernel(name)
    del _REGISTRY[name]


#: Input magnitudes at which :func:`register_kernel` also checks signs and finiteness (all pairs of them).
WIDE_SCALES = (1.0, 1e2, 1e3, 1e4)


def _check_kernel(kernel: Kernel) -> None:
    """Validate a kernel on random float64 inputs; raise ``ValueError`` naming it on failure.

    At moderate magnitudes (spreads 1 and 3) every check runs, the factorisation against
    ``pairwise`` included. Queries and keys at every pair of :data:`WIDE_SCALES` (up to 1e4) are
    then checked for NaN features, ``+inf`` log-features and negative kernel values, the failures
    that otherwise turn into NaN outputs or silently zeroed rows far from the origin.
    """
    gen = torch.Generator().manual_seed(0)
    for dim, spread in ((4, 1.0), (7, 3.0)):
        a = torch.randn(33, dim, generator=gen, dtype=torch.float64) * spread
        b = torch.randn(29, dim, generator=gen, dtype=torch.float64) * spread
        fa, fb = _feature_pair(kernel, a, b)
        if not kernel.log_domain and not (fa.isfinite().all() and fb.isfinite().all()):
            raise ValueError(f"kernel {kernel.name!r}: feature maps return non-finite values for D={dim}")
        factorised = _check_values(kernel, fa, fb, f"for random inputs with D={dim}")
        if kernel.pairwise is not None:
            _check_pairwise(kernel, a, b, factorised)
    for dim in (4, 7):
        for scale_a, scale_b in itertools.product(WIDE_SCALES, repeat=2):
            a = torch.randn(33, dim, generator=gen, dtype=torch.float64) * scale_a
            b = torch.randn(29, dim, generator=gen, dtype=torch.float64) * scale_b
            fa, fb = _feature_pair(kernel, a, b)
            where = f"for random inputs with D={dim} at magnitudes {scale_a:g} (a) and {scale_b:g} (b)"
            _check_values(kernel, fa, fb, where)


def _feature_pair(kernel: Kernel, a: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
    """``(phi(a), psi(b))``, checked to be tensors with the inputs' leading dims and one feature count."""
    try:
        fa, fb = kernel.phi(a), kernel.psi(b)
    except Exception as err:  # a user's map may fail in any way; report it under the name
        raise ValueError(f"kernel {kernel.name!r}: feature map raised {err!r} on D={a.shape[-1]}") from err
    if not isinstance(fa, Tensor) or not isinstance(fb, Tensor):
        raise ValueError(f"kernel {kernel.name!r}: phi and psi must return tensors")
    if fa.shape[:-1] != a.shape[:-1] or fb.shape[:-1] != b.shape[:-1]:
        raise ValueError(
            f"kernel {kernel.name!r}: feature maps must keep leading dimensions, "
            f"got {tuple(fa.shape)} and {tuple(fb.shape)} for inputs {tuple(a.shape)}, {tuple(b.shape)}"
        )
    if fa.shape[-1] != fb.shape[-1]:
        raise ValueError(f"kernel {kernel.name!r}: phi gives {fa.shape[-1]} features but psi gives {fb.shape[-1]}")
    return fa, fb


def _check_values(kernel: Kernel, fa: Tensor, fb: Tensor, where: str) -> Tensor:
    """Reject NaN features, ``+inf`` log-features and negative ``phi . psi``; returns the factorised scores.

    Linear-domain features that overflow float64 to ``inf`` are not judged (their products are
    not numbers); only finite kernel values are checked for sign.
    """
    if fa.isnan().any() or fb.isnan().any():
        raise ValueError(f"kernel {kernel.name!r}: feature maps return non-finite values (NaN) {where}")
    if kernel.log_domain:
        if (fa == float("inf")).any() or (fb == float("inf")).any():
            raise ValueError(
                f"kernel {kernel.name!r}: log-features are +inf {where}; return log features that stay finite"
            )
        return torch.logsumexp(fa.unsqueeze(-2) + fb.unsqueeze(-3), dim=-1)
    factorised = fa @ fb.T
    judged = factorised[factorised.isfinite()]
    if judged.numel():
        floor = -1e-9 * judged.abs().max().clamp_min(1.0)
        if judged.min() < floor:
            raise ValueError(
                f"kernel {kernel.name!r}: phi(a) . psi(b) is negative (min {judged.min().item():.3g}) "
                f"{where}; attention weights must be non-negative for every input "
                "(rows whose weights sum to <= 0 come out as zeros)"
            )
    return factorised


def _check_pairwise(kernel: Kernel, a: Tensor, b: Tensor, factorised: Tensor) -> None:
    """Reject a closed form ``pairwise`` that disagrees with the factorised ``phi . psi``."""
    closed = kernel.pairwise(a, b)
    if closed.shape != factorised.shape:
        raise ValueError(
            f"kernel {kernel.name!r}: pairwise returns shape {tuple(closed.shape)}, expected {tuple(factorised.shape)}"
        )
    if kernel.log_domain:
        err = (closed - factorised).abs().max()
    else:
        err = (closed - factorised).abs().max() / factorised.abs().max().clamp_min(1e-300)
    if not err <= 1e-9:
        raise ValueError(
            f"kernel {kernel.name!r}: phi(a) . psi(b) differs from pairwise(a, b) "
            f"(error {err.item():.3g}); the factorisation is not exact"
        )
