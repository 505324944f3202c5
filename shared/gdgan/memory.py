"""glibc malloc tuning for long-running services (the generator).

Why: glibc gives each thread that allocates its own arena (up to 8 per core) and returns freed
memory of an arena only from its top. The generator encodes responses in a thread pool and runs
forward passes of every batch size from 1 to GDGAN_GENERATE_MAX_BATCH, so buffers of many sizes are
freed in many arenas and the holes are kept: RSS crept up with a mix of request sizes and stayed
flat with one size (benchmarks/bench_soak.py; docs/notes/reliability.md). Fewer arenas
(``mallopt(M_ARENA_MAX)``, what ``MALLOC_ARENA_MAX`` sets) let freed blocks be reused.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

log = logging.getLogger(__name__)
M_ARENA_MAX = -8  # glibc malloc.h


def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6")
    except OSError:
        return None
    return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None


def limit_malloc_arenas(n: int) -> bool:
    """At most ``n`` malloc arenas from now on (0: leave glibc's default). Call it before the
    service starts its threads. False where the C library is not glibc (nothing changed)."""
    if n <= 0:
        return False
    libc = _libc()
    if libc is None:
        log.info("not glibc: malloc arenas left as they are")
        return False
    return bool(libc.mallopt(M_ARENA_MAX, int(n)))


def trim() -> bool:
    """Give free heap memory back to the system (glibc ``malloc_trim(0)``); False if unsupported."""
    libc = _libc()
    return bool(libc.malloc_trim(0)) if libc is not None else False
