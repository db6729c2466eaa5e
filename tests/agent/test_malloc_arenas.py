"""The agent caps glibc's malloc arenas itself (mallopt M_ARENA_MAX), before any thread."""

from __future__ import annotations

import subprocess
import sys
import textwrap

# Eight threads allocating outside pymalloc (over 512 bytes), then the arenas counted: each
# glibc arena beyond the main one is a read-write mapping at a 64 MiB boundary
# (HEAP_MAX_SIZE in glibc's arena.c) with no file behind it.
PROBE = textwrap.dedent("""\
    import sys, threading
    if sys.argv[1] == "limit":
        from nitrometer.agent.main import limit_malloc_arenas
        print(limit_malloc_arenas())
    barrier = threading.Barrier(9)
    def work():
        keep = [b"x" * 1000 + bytes([i % 256]) for i in range(2000)]
        barrier.wait()
    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    barrier.wait()
    arenas = 0
    for line in open("/proc/self/maps"):
        span, perms, _offset, _dev, inode = line.split()[:5]
        lo, hi = (int(x, 16) for x in span.split("-"))
        if inode == "0" and perms.startswith("rw") and lo % (64 << 20) == 0 \\
                and hi - lo < (64 << 20):
            arenas += 1
    print(arenas)
    for t in threads:
        t.join()
    """)


def arenas(mode: str, **env) -> list[str]:
    import os

    done = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True,
                          text=True, timeout=60,
                          env={k: v for k, v in {**os.environ, **env}.items()
                               if k != "MALLOC_ARENA_MAX" or "MALLOC_ARENA_MAX" in env})
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def test_two_arenas_at_most_however_many_threads_allocate():
    [unlimited] = arenas("none")
    assert int(unlimited) > 1  # the probe sees per-thread arenas when nothing caps them
    applied, limited = arenas("limit")
    assert applied == "True"
    assert int(limited) <= 1  # the main arena and one more


def test_malloc_arena_max_from_the_environment_wins():
    applied, limited = arenas("limit", MALLOC_ARENA_MAX="4")
    assert applied == "False"
    assert 1 < int(limited) <= 3
