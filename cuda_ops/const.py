"""Named constants of the Triton kernels, read as ``const.NAME`` inside ``@triton.jit`` code.

Why a module of its own: Triton checks, on every launch, that each module-level ``tl.constexpr``
a kernel reads by bare name still has the value it was compiled with (comparing two constexprs
builds a third, on the host, for every name). Names read as attributes of
an imported module are not checked, so the kernels read their constants through this module and
a launch pays nothing for them (``yolo-lat benchmark launch_overhead``;
``tests/test_cuda_ops_compile.py`` asserts that no kernel reads a checked global). These values
never change at run time.

Every kernel module imports this one before defining a kernel, so this is also where Triton is
told whether to interpret them: ``@triton.jit`` builds an interpreted function exactly when
``triton.knobs.runtime.interpret`` is set at definition time (Triton >= 3.4). Triton's own
library functions were defined when Triton was imported (see the package's docstring); a library
in the other mode cannot run our kernels, so that is an ``ImportError`` here.
"""

from __future__ import annotations

import triton.language as tl
from triton import knobs

from . import INTERPRETED as _INTERPRETED

knobs.runtime.interpret = _INTERPRETED
_LIBRARY_INTERPRETED = type(tl.zeros).__name__ == "InterpretedFunction"
if _LIBRARY_INTERPRETED != _INTERPRETED:
    raise ImportError(
        f"yolo_lat.cuda_ops: interpreter={_INTERPRETED}, but Triton was imported earlier in this process "
        f"{'without' if _INTERPRETED else 'with'} its interpreter; set the interpreter setting (or "
        "TRITON_INTERPRET) before anything imports Triton"
    )

#: Kernels run by numpy in Triton's interpreter (the ``interpreter`` setting, CPU tests). The
#: interpreter's ``tl.dot`` multiplies bfloat16 operands as raw uint16 (triton 3.8), so products
#: are upcast to float32 there after rounding to the operand type, which keeps the rounding.
INTERPRETED = tl.constexpr(_INTERPRETED)

NEG_INF = tl.constexpr(float("-inf"))
POS_INF = tl.constexpr(float("inf"))

# Kernel identifiers, shared with the Python side (see ``KERNEL_IDS`` in ops.py).
HADAMARD_EXP = tl.constexpr(0)
SUM_SQ_EUCLID = tl.constexpr(1)
SUB_SQ_EUCLID = tl.constexpr(2)
MODULATED_DOT = tl.constexpr(3)

#: Operand kinds of :func:`~._common.mm_f32`: exact in ``DT`` already (inputs, output
#: gradients), used as is; a float32 tile rounded to ``DT`` once (2^-8 relative in bfloat16,
#: 2^-11 in float16); a float32 tile split into a high and a low ``DT`` part (about 2^-16
#: relative); or such a split tile known to lie in ``[-1, 1]`` (key features after their shift:
#: the largest is ``e^0``), which float16 can hold after one fixed scaling (:data:`UNIT_SCALE`),
#: so the per-row scaling and its reduction are skipped (first operand only).
EXACT = tl.constexpr(0)
ROUND = tl.constexpr(1)
SPLIT = tl.constexpr(2)
UNIT_SPLIT = tl.constexpr(3)

#: Fixed power of two for :data:`UNIT_SPLIT` operands in float16: it brings 1 to 2^14 (below
#: float16's largest value, 65504) and values down to 2^-28 into its normal range; smaller key
#: features weigh less than 2^-28 against the feature's largest, ``e^0``, invisible in float16.
UNIT_SCALE = tl.constexpr(16384.0)
