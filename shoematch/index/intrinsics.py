"""Two LLVM operations numba does not offer on CPU, for the exact pass's kernel.

- `to_float32`: float16 (carried as its uint16 bits: numba has no CPU float16 type) widened to
  float32 — one `vcvtph2ps` on x86 with F16C; float32 passes through, float64 is rounded.
- `prefetch_line`: a read prefetch of the cache line holding `array[i, j, k]` into every cache
  level (`llvm.prefetch`). The exact pass reads scattered rows, each on its own page, and
  issues rows a few ahead of the one being multiplied (`exact.py` has the measured effect).
"""

from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

_I32 = ir.IntType(32)
_READ, _KEEP_IN_ALL_LEVELS, _DATA_CACHE = 0, 3, 1


@intrinsic
def to_float32(typingctx, value):
    """float32 of `value`: uint16 bits of a float16, a float32 or a float64."""
    if value not in (types.uint16, types.float32, types.float64):
        return None

    def codegen(context, builder, signature, args):
        if value == types.uint16:
            return builder.fpext(builder.bitcast(args[0], ir.HalfType()), ir.FloatType())
        if value == types.float64:
            return builder.fptrunc(args[0], ir.FloatType())
        return args[0]

    return types.float32(value), codegen


@intrinsic
def prefetch_line(typingctx, array, i, j, k):
    """Prefetch the cache line of `array[i, j, k]` (a 3-d array; indices in bounds)."""
    if not (isinstance(array, types.Array) and array.ndim == 3):
        return None

    def codegen(context, builder, signature, args):
        array_type = signature.args[0]
        view = context.make_array(array_type)(context, builder, args[0])
        indices = [context.cast(builder, value, kind, types.intp)
                   for value, kind in zip(args[1:], signature.args[1:], strict=True)]
        pointer = cgutils.get_item_pointer(context, builder, array_type, view, indices,
                                           wraparound=False)
        bytes_pointer = ir.IntType(8).as_pointer()
        function = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.VoidType(), [bytes_pointer, _I32, _I32, _I32]),
            "llvm.prefetch.p0")
        builder.call(function, [builder.bitcast(pointer, bytes_pointer), _I32(_READ),
                                _I32(_KEEP_IN_ALL_LEVELS), _I32(_DATA_CACHE)])
        return context.get_dummy_value()

    return types.void(array, i, j, k), codegen
