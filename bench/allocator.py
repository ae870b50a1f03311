"""Keeping freed memory in the process during CPU training.

A training step allocates and frees the same activations every step. glibc's malloc returns large freed blocks
to the kernel (blocks above its mmap threshold are unmapped on free; free memory at the top of the heap beyond
its trim threshold is released), so the next step takes page faults on that memory again and the kernel zeroes
every page before handing it back: with steps of varying padded lengths (MiniLM on SST-2, batch 32, bf16, one
thread) 3,700-5,200 page faults and 8-12 ms of system time a PEFT step, ~17,700 and 33 ms a full fine-tuning step
(`python -m bench.perf.allocator_ab`, reports/perf/allocator-ab.json). `retain_freed_memory()` sets glibc's
thresholds so that blocks up to 32 MiB come from the heap and the heap is never trimmed: freed memory is reused by
the next step, as CUDA's caching allocator reuses device memory. The process keeps its peak heap for the rest of
its life (the resident size does not shrink after a pass). Other C libraries (musl, macOS, Windows) are left as
they are.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import platform

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 * 1024 * 1024        # glibc's upper limit for the mmap threshold on 64-bit systems
TRIM_THRESHOLD = 2 ** 31 - 1             # mallopt's largest value (a C int): the heap is never trimmed

_applied: bool | None = None
_defaults_kept = False


def glibc():
    """The C library as a ctypes handle when it is glibc with `mallopt`, else None."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None
    return libc if hasattr(libc, "mallopt") else None


def keep_defaults() -> bool:
    """Make `retain_freed_memory` a no-op in this process (for measuring what it changes). False when it was
    already applied."""
    global _applied, _defaults_kept
    if _applied:
        return False
    _applied, _defaults_kept = False, True
    return True


def state() -> str:
    """What this process runs with: "retained" (set here), "glibc defaults" (glibc, not set, or kept on purpose)
    or "not glibc"."""
    if _applied:
        return "retained"
    return "glibc defaults" if (_defaults_kept or glibc() is not None) else "not glibc"


def retain_freed_memory() -> bool:
    """Set glibc's malloc to keep freed memory in the process (module docstring); once per process, later calls
    return the first call's answer. True when it was set."""
    global _applied
    if _applied is None:
        libc = glibc()
        if libc is None:
            _applied = False
        else:
            libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
            ok_mmap = libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
            ok_trim = libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
            _applied = ok_mmap and ok_trim
    return _applied
