"""Launch a compiled Triton kernel again without Triton's per-call argument binding.

``kernel[grid](*args)`` binds every argument, specializes each one (dtype, 16-byte alignment,
divisibility by 16, value 1), hashes the result and looks the compiled kernel up on every call:
for the 18 arguments of the decode step that is most of the step's host time, and an eager decode
step is bound by its host side, not by the GPU (see ``yolo-lat benchmark launch_overhead``).

:class:`DirectLaunch` keeps that work for the first call only. A call whose runtime arguments are
all *regular* (tensors 16-byte aligned; specialized ints either 1 or divisible by 16, at least 16
and below 2^31; ints marked ``do_not_specialize`` below 2^31; floats) specializes exactly like
every other regular call with the same tensor dtypes, the same specialized ints equal to 1, and
the same constexprs and options, so the kernel Triton compiled and launched for the first one is
launched directly for the rest (``CompiledKernel.run``, the launcher Triton itself calls, on the
stream Triton would pick). Irregular calls, calls while a launch hook is installed (a profiler),
kernels with ``pre_run_hooks`` and the interpreter go through Triton's own path, unchanged.
Options Triton takes from its knobs at launch time (``TRITON_DEBUG``, instrumentation) are those
of the first call. With the ``direct_launch`` setting False (:mod:`yolo_lat.settings`, read on
every launch; ``YOLO_LAT_DIRECT_LAUNCH=0`` makes False the default) every call goes through
Triton's path. ``tests/test_cuda_ops_launcher.py`` checks, on kernels built for sm_90, that a
direct launch hands Triton's launcher the same compiled kernel, grid and arguments as Triton's
own path.

The kernels' call sites launch through :func:`direct`:

    >>> direct(_decode_step_kernel)[(batch * heads,)](q, k, v, ..., DV=64, F=64, num_warps=4)  # doctest: +SKIP
"""

from __future__ import annotations

import functools

from torch import Tensor
from triton import knobs
from triton.runtime.driver import driver
from triton.runtime.jit import JITFunction

from yolo_lat.settings import get as _settings

_INT32_LIMIT = 2**31


def _hooked() -> bool:
    """Whether a launch hook is installed (a profiler): then every launch goes through Triton."""
    hooks = (knobs.runtime.launch_enter_hook, knobs.runtime.launch_exit_hook)
    return any(getattr(hook, "calls", hook is not None) for hook in hooks)  # Triton 3.5+: a HookChain


class DirectLaunch:
    """A Triton kernel whose regular calls skip Triton's binding after the first (see module doc).

    Call sites pass the runtime arguments positionally, in the kernel's order, and the
    constexprs and launch options (``num_warps``, ``maxnreg``) by keyword; the kernel declares
    its constexprs after its runtime arguments.
    """

    def __init__(self, fn) -> None:
        self.fn = fn
        self._jit = isinstance(fn, JITFunction)  # False in Triton's interpreter
        params = fn.params if self._jit else []
        kinds = [p.is_constexpr for p in params]
        if kinds != sorted(kinds):
            raise ValueError(f"{fn.__name__}: DirectLaunch needs the constexprs after the runtime arguments")
        self._constexprs = tuple((p.name, p.default) for p in params if p.is_constexpr)
        # per runtime argument: True where Triton specializes it (False: do_not_specialize)
        self._specialized = tuple(not p.do_not_specialize for p in params if not p.is_constexpr)
        self._kernels: dict = {}  # (device, signature, constexprs and options) -> CompiledKernel

    def __getitem__(self, grid: tuple[int, ...]):
        return lambda *args, **kwargs: self.launch(grid, args, kwargs)

    def signature(self, args: tuple) -> tuple | None:
        """What Triton specializes ``args`` (the runtime arguments) on, if they are regular, else None:
        the dtype of each tensor and, for each specialized int, whether it is 1 (a constexpr)."""
        key = []
        for arg, specialized in zip(args, self._specialized):
            kind = type(arg)
            if kind is int:  # (not bool: Triton gives those their own type)
                if specialized:
                    if arg != 1 and (arg < 16 or arg % 16 or arg >= _INT32_LIMIT):
                        return None
                    key.append(arg == 1)
                elif not -_INT32_LIMIT < arg < _INT32_LIMIT:
                    return None
            elif kind is not float:
                if not isinstance(arg, Tensor) or arg.data_ptr() % 16:
                    return None
                key.append(arg.dtype)
        return tuple(key)

    def launch(self, grid: tuple[int, ...], args: tuple, kwargs: dict):
        """Launch on ``grid``; returns Triton's compiled kernel, or None where the call went directly."""
        direct = self._jit and _settings().direct_launch and not _hooked() and not self.fn.pre_run_hooks
        direct = direct and len(args) == len(self._specialized)
        signature = self.signature(args) if direct else None
        if signature is None:
            return self.fn[grid](*args, **kwargs)
        device = driver.active.get_current_device()
        key = (device, signature, *kwargs.items())
        kernel = self._kernels.get(key)
        if kernel is None:
            kernel = self._kernels[key] = self.fn[grid](*args, **kwargs)
            return kernel
        grid_y = grid[1] if len(grid) > 1 else 1
        grid_z = grid[2] if len(grid) > 2 else 1
        constexprs = [kwargs.get(name, default) for name, default in self._constexprs]
        stream = driver.active.get_current_stream(device)
        kernel.run(
            grid[0], grid_y, grid_z, stream, kernel.function, kernel.packed_metadata, None, None, None,
            *args, *constexprs,
        )  # fmt: skip
        return None


@functools.cache
def direct(fn) -> DirectLaunch:
    """The :class:`DirectLaunch` of a kernel (one per kernel, so its compiled kernels are shared)."""
    return DirectLaunch(fn)
