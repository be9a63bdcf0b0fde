# -*- test-case-name: rpctransport.test.test_cli -*-
"""
Process tuning for servers that move large records.

glibc hands a freed block of a megabyte or more straight back to the kernel
(C{mmap} threshold, heap trimming), so a server echoing 1 MiB records maps,
faults in and unmaps several megabytes per call: the benchmark's profile of
C{serve} showed page faults as a sixth of the time, and the bulk echo case
going from 0.45-0.6 to about 1.0 of the libtirpc server once glibc was told
to keep such blocks. L{keep_large_allocations} tells it so, for the process
that calls it; C{rpctransport serve} does, and a server built on the library
can too, or set C{GLIBC_TUNABLES} instead.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys
from typing import Final

__all__ = ["MMAP_THRESHOLD", "TRIM_THRESHOLD", "keep_large_allocations"]

MMAP_THRESHOLD: Final = 32 * 1024 * 1024
"""
Blocks smaller than this come from the heap, not from their own mapping:
twice the default record limit of 16 MiB, and glibc's own maximum for this
setting on 64-bit systems.
"""

TRIM_THRESHOLD: Final = 256 * 1024 * 1024
"""
Free memory at the top of the heap is returned to the kernel only past this:
the memory a busy server reuses a moment later stays with it.
"""

_M_TRIM_THRESHOLD: Final = -1
_M_MMAP_THRESHOLD: Final = -3


def keep_large_allocations() -> bool:
    """
    Ask glibc to keep large freed blocks in this process (see the module
    docstring).

    @return: whether it took effect (L{False} where the C library is not
        glibc).
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    done = mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)
    done &= mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    return bool(done)
