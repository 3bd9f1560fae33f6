"""Keep freed memory in the process during CPU training.

glibc hands every large block (above its mmap threshold) straight back to
the kernel when it is freed, so the next training step's tensors of the
same size page-fault their memory in again, zero-filled: ~0.25 ms per 3 MB
tensor here, about 10% of a chunked-WKV training step on one thread
(bench/model_bench.py). Raising the mmap and trim thresholds keeps those
blocks in the heap for reuse; the process's peak memory is unchanged.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import logging

log = logging.getLogger(__name__)

_M_TRIM_THRESHOLD = -1  # glibc mallopt parameter numbers (malloc.h)
_M_MMAP_THRESHOLD = -3
_DONE = False


def keep_freed_memory() -> bool:
    """Apply once per process; False (and a debug line) where libc is not glibc."""
    global _DONE
    if _DONE:
        return True
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError, TypeError) as e:
        log.debug("mallopt unavailable (%s): allocator left as is", e)
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    # 32 MiB is glibc's ceiling for the dynamic mmap threshold on 64-bit;
    # blocks above it (rare here) still go to mmap.
    ok = bool(mallopt(_M_MMAP_THRESHOLD, 32 << 20)) and bool(mallopt(_M_TRIM_THRESHOLD, 1 << 30))
    _DONE = ok
    return ok
