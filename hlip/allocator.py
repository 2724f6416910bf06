"""Keep freed memory in the process: batch stages stop paying a page fault for every page of every large array.

glibc's malloc serves a large request (above `M_MMAP_THRESHOLD`: 128 KiB, adapting up to 32 MiB) with a fresh
`mmap` and unmaps it on `free`, and it trims the top of the heap whenever more than `M_TRIM_THRESHOLD` is free
there. A training step allocates and frees the same activations of tens to hundreds of MB every step (the demo's
stem output alone is 58 MB a batch), so every page of each is faulted in again, step after step: one warm-up epoch
of the demo's pretraining on 2 cores took 12-15 million minor faults and 29-34 s of system time out of about 95 s
of wall time.

`retain_freed_memory()` turns both off: no request is served by `mmap` (`M_MMAP_MAX = 0`; the heap grows with
`brk` instead, and a thread's arena that cannot hold a request hands it to the main heap) and the heap is never
trimmed, so freed memory is handed back by the next request. The same epoch then took 0.52 million faults, 3 s of
system time and 74 s of wall time (`benchmarks/bench_allocator.py` prints the corpus writer and a training step
side by side with glibc's defaults). The process's resident memory stays at its peak instead of breathing with
each step: right for a batch stage that exits when done, wrong for a long-lived server, so only the stage entry
points (`flows`, imported by every stage process and also by `flows.deploy`'s serve process, whose memory then
stays at its largest flow run's peak), the training child (`hlip.stages.training_process`) and the demo corpus
writer call it. Numerical results are unchanged (the same kernels on the same values; only where the bytes live
differs). Forked workers inherit the setting; a spawned or exec'd process (the training child, the corpus pool's
workers) must call it itself.

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
M_MMAP_MAX = -4
NEVER_TRIM = 2**31 - 1  # mallopt takes an int


def retain_freed_memory() -> bool:
    """Stop glibc's malloc from mapping and trimming, so freed memory is reused, not returned; True when set."""
    if os.environ.get(SWITCH, "1").strip() == "0" or platform.system() != "Linux" or not platform.libc_ver()[0]:
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc after all (musl has no mallopt)
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    applied = bool(mallopt(M_MMAP_MAX, 0)) and bool(mallopt(M_TRIM_THRESHOLD, NEVER_TRIM))
    if not applied:
        log.warning("glibc refused the malloc settings: freed memory goes back to the kernel (slower, same results)")
    return applied
