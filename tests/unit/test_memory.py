"""``gdgan.memory.limit_malloc_arenas`` really caps glibc's arenas: in a fresh process, eight threads
that allocate get eight arenas by default and at most two after the call (counted by glibc's own
``malloc_stats``). The generator calls it at start-up (GDGAN_GENERATOR_MALLOC_ARENAS=2)."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

PROBE = """
import ctypes, sys, threading
from gdgan.memory import limit_malloc_arenas
ok = limit_malloc_arenas(int(sys.argv[1]))
def work():
    keep = [bytearray(200_000) for _ in range(20)]  # malloc'd by this thread
    barrier.wait()
barrier = threading.Barrier(8)
threads = [threading.Thread(target=work) for _ in range(8)]
for t in threads: t.start()
for t in threads: t.join()
ctypes.CDLL("libc.so.6").malloc_stats()
print(ok)
"""


def _arenas(limit: int) -> tuple[int, str]:
    res = subprocess.run(
        [sys.executable, "-c", PROBE, str(limit)], capture_output=True, text=True, timeout=60
    )
    assert res.returncode == 0, res.stderr
    return len(re.findall(r"^Arena \d+:", res.stderr, re.M)), res.stdout.strip()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc only")
def test_arena_cap_takes_effect() -> None:
    default, ok0 = _arenas(0)
    capped, ok2 = _arenas(2)
    assert ok0 == "False" and ok2 == "True"
    assert default > 2 and capped <= 2, (default, capped)
