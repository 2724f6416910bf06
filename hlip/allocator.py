"""Keep freed memory in the process: batch stages stop paying a page fault for every page of every large array.

glibc's malloc serves a large request (above `M_MMAP_THRESHOLD`, 128 KiB to 32 MiB as it adapts) with a fresh
`mmap` and returns it to the kernel on `free`, and it trims the top of the heap whenever more than
`M_TRIM_THRESHOLD` is free there. A training step or a volume renderer allocates and frees arrays of tens of MB
many times a second, so every page of each is faulted in again: on this project's 2-core VM the demo corpus
writer took about 200K minor faults per 30 studies and a stage-B training step of `hlip-demo` about 50K, around a
tenth of their time (`benchmarks/bench_allocator.py` prints both side by side with glibc's defaults).

`retain_freed_memory()` sets both thresholds so that freed memory stays in the heap for the next request:
requests up to 32 MiB (the most `mallopt` accepts) come from the heap, and the heap is never trimmed. The
process's resident memory then stays at its peak instead of breathing with each step: right for a batch stage
that exits when done, wrong for a long-lived server, so only the stage entry points (`flows`) and the demo corpus
writer call it. Numerical results are unchanged (the same kernels on the same values; only where the bytes live
differs). Forked workers inherit the setting; spawned ones call it themselves.

It acts on glibc only (Linux); elsewhere, and with `HLIP_RETAIN_FREED_MEMORY=0`, it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import platform

log = logging.getLogger(__name__)

SWITCH = "HLIP_RETAIN_FREED_MEMORY"
M_TRIM_THRESHOLD = -1  # mallopt parameter numbers, from glibc's malloc.h
M_MMAP_THRESHOLD = -3
#: The largest mmap threshold glibc's mallopt accepts on 64-bit (HEAP_MAX_SIZE / 2); larger requests still mmap.
MMAP_THRESHOLD_MAX = 32 * 1024 * 1024
NEVER_TRIM = 2**31 - 1  # mallopt takes an int


def retain_freed_memory() -> bool:
    """Set glibc's mmap and trim thresholds so freed memory is reused, not returned; True when they were set."""
    if os.environ.get(SWITCH, "1").strip() == "0" or platform.system() != "Linux" or not platform.libc_ver()[0]:
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc after all (musl has no mallopt)
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    applied = bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_MAX)) and bool(mallopt(M_TRIM_THRESHOLD, NEVER_TRIM))
    if not applied:
        log.warning("glibc refused the malloc thresholds: freed memory goes back to the kernel (slower, same results)")
    return applied
