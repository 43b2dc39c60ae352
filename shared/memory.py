"""Keep a long-running device agent's memory flat on a small board (glibc only; elsewhere nothing to do).

Two glibc defaults make a Python agent that moves evidence around grow for hours:
- each busy thread gets its own malloc arena (64 MB of address space, tens of MB resident when threads
  contend): capped, as MALLOC_ARENA_MAX would;
- the mmap threshold adapts upwards once a large block is freed, so later clip chunks, JPEG frames and base64
  payloads (64 KB to 1 MB) come from the heap instead, and fragment it: the badge grew ~1.5 MB a minute while
  uploading evidence (92 -> 113 MB in 13 minutes). A fixed threshold hands such buffers back to the kernel on
  free; with it the same run stayed at 80-82 MB.
"""

from __future__ import annotations

import ctypes
import ctypes.util

# From glibc's malloc.h.
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8


def tune_malloc(arenas: int = 2, mmap_threshold: int = 64 * 1024) -> bool:
    """Apply both settings to this process; False where the C library is not glibc."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(_M_ARENA_MAX, arenas)) and bool(mallopt(_M_MMAP_THRESHOLD, mmap_threshold))
