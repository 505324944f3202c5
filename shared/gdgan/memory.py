"""glibc malloc tuning for long-running services (the generator).

Why: the generator's RSS crept up under a mix of request sizes (n from 1 to 64) and stayed flat
under one size. Measured (docs/notes/reliability.md): forward passes of every batch size from 1 to
64 on both models, four times over in one process, took RSS 549 -> 775 MB on the first pass and
then 798, 786, 776 (bounded: no leak); ``malloc_trim(0)`` then returned 119 MB, so what the first
pass added is mostly free heap glibc keeps, not live objects. glibc gives each allocating thread its
own arena (up to 8 per core) and the generator encodes responses in a thread pool, so
``limit_malloc_arenas`` caps them (what ``MALLOC_ARENA_MAX`` does) and ``trim`` hands free heap back.
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
