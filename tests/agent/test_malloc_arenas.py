"""The agent tunes glibc's malloc itself (mallopt), before any thread: two arenas at most,
and large blocks (a rendered /metrics body) mapped and given back whole when freed."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

TUNE = textwrap.dedent("""\
    import sys
    if sys.argv[1] == "tune":
        from nitrometer.agent.main import tune_malloc
        print(",".join(tune_malloc()) or "-")
    """)
# Eight threads allocating outside pymalloc (over 512 bytes), then the arenas counted: each
# glibc arena beyond the main one is a read-write mapping at a 64 MiB boundary
# (HEAP_MAX_SIZE in glibc's arena.c) with no file behind it.
ARENAS = TUNE + textwrap.dedent("""\
    import threading
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
# What a tick does to the heap: one large block freed (by default glibc then raises its
# mmap threshold to that size), then bodies of a few hundred KiB made and freed while a small
# block allocated after them stays. RSS growth (KiB) that outlives the bodies is printed.
BODIES = TUNE + textwrap.dedent("""\
    def rss():
        for line in open("/proc/self/status"):
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    first = bytearray(4 << 20)
    del first
    before = rss()
    bodies = [bytearray(b"m" * 400_000) for _ in range(10)]
    kept = bytearray(b"k" * 2000)
    del bodies
    print(rss() - before)
    """)


def probe(script: str, mode: str, **env) -> list[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    done = subprocess.run([sys.executable, "-c", script, mode], capture_output=True,
                          text=True, timeout=60, env={**base, **env})
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def test_two_arenas_at_most_however_many_threads_allocate():
    [unlimited] = probe(ARENAS, "none")
    assert int(unlimited) > 1  # the probe sees per-thread arenas when nothing caps them
    applied, limited = probe(ARENAS, "tune")
    assert "MALLOC_ARENA_MAX" in applied.split(",")
    assert int(limited) <= 1  # the main arena and one more


def test_malloc_arena_max_from_the_environment_wins():
    applied, limited = probe(ARENAS, "tune", MALLOC_ARENA_MAX="4")
    assert "MALLOC_ARENA_MAX" not in applied.split(",")
    assert 1 < int(limited) <= 3


def test_freed_bodies_leave_no_resident_memory_behind():
    [kept_default] = probe(BODIES, "none")
    assert int(kept_default) > 2048  # glibc's default keeps them: the probe can tell
    applied, kept = probe(BODIES, "tune")
    assert {"MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_"} <= set(applied.split(","))
    assert int(kept) < 1024
