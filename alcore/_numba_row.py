"""The read-only row view of the generated utility wrappers (alcore/_utility.py).

Imported by those wrappers only, so by Numba's first use, never by ``import alcore``. A
row from ``numba.carray`` is writable, so a utility that wrote into ``p`` would silently
change the caller's array; typed read-only, such a function fails to compile and is
refused with that reason.
"""

from __future__ import annotations

from numba.core import types
from numba.core.extending import intrinsic
from numba.np.arrayobj import np_cfarray


@intrinsic
def readonly_row(typingctx, ptr, c):
    """``numba.carray(ptr, (c,))`` typed as a read-only C-contiguous 1-D array."""
    if not isinstance(ptr, types.CPointer) or not isinstance(c, types.Integer):
        return None
    return types.Array(ptr.dtype, 1, "C", readonly=True)(ptr, c), np_cfarray
