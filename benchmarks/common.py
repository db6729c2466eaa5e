"""What every measurement shares: the machine, interleaved timing, report sections."""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable


@dataclass
class Target:
    what: str
    goal: str
    measured: str
    met: bool | None  # None: too few samples to judge
    samples: str  # what the figure rests on, e.g. "34 rendered scrapes"


@dataclass
class Section:
    title: str
    body: list[str] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)

    def add(self, *lines: str) -> None:
        self.body.extend(lines)

    def table(self, header: list[str], rows: list[list]) -> None:
        self.body.append("| " + " | ".join(header) + " |")
        self.body.append("|" + "|".join("---" for _ in header) + "|")
        for row in rows:
            self.body.append("| " + " | ".join(str(c) for c in row) + " |")
        self.body.append("")

    def target(self, what: str, goal: str, measured: str, met: bool, samples: str,
               count: int | None = None, minimum: int | None = None) -> None:
        """A target; with count and minimum it is judged only on at least minimum samples."""
        if count is not None and minimum is not None and count < minimum:
            measured, met = f"{measured} (not judged: {count} samples, needs {minimum})", None
        self.targets.append(Target(what, goal, measured, met, samples))

    def markdown(self) -> str:
        return "\n".join([f"## {self.title}", "", *self.body]).rstrip() + "\n"


@dataclass
class Context:
    quick: bool
    workdir: Path  # scratch space for fleets, fake devices, Parquet files
    cache: Path  # generated inputs kept between runs (the CUR files)
    log: Callable[[str], None]


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine() -> list[tuple[str, str]]:
    mem = psutil.virtual_memory().total / 2**30
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return [
        ("CPU", cpu_model()),
        ("Cores", f"{psutil.cpu_count(logical=False) or '?'} physical, "
                  f"{psutil.cpu_count()} logical"),
        ("Memory", f"{mem:.1f} GiB"),
        ("Python", f"{platform.python_implementation()} {platform.python_version()}"),
        ("Kernel", f"{platform.system()} {platform.release()} ({platform.machine()})"),
        ("Load average at start", load),
    ]


def git_revision() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                             capture_output=True, text=True, timeout=10)
        return out.stdout.strip() or "unknown"
    except OSError:
        return "unknown"


def median(values) -> float:
    return statistics.median(values)


def percentile(values, q: float) -> float:
    """Nearest-rank percentile (q in 0..1) of a non-empty sequence."""
    ordered = sorted(values)
    rank = max(int(-(-q * len(ordered) // 1)) - 1, 0)
    return ordered[min(rank, len(ordered) - 1)]


def interleaved(candidates: dict[str, tuple[Callable[[int], None], int]],
                rounds: int) -> dict[str, list[float]]:
    """Seconds per call of each candidate, one list entry per round.

    candidates: name -> (fn(loops), loops). Each round runs every candidate once, back to
    back, in a rotating order, so a burst of noise from the other users of the machine
    lands on all of them alike.
    """
    names = list(candidates)
    per_call: dict[str, list[float]] = {n: [] for n in names}
    for r in range(rounds):
        order = names[r % len(names):] + names[:r % len(names)]
        for name in order:
            fn, loops = candidates[name]
            start = time.perf_counter()
            fn(loops)
            per_call[name].append((time.perf_counter() - start) / loops)
    return per_call


def fmt_ns(seconds: float) -> str:
    ns = seconds * 1e9
    if ns >= 1e6:
        return f"{ns / 1e6:,.2f} ms"
    if ns >= 1e4:
        return f"{ns / 1e3:,.1f} us"
    return f"{ns:,.0f} ns"


def fmt_ms(seconds: float) -> str:
    return f"{seconds * 1e3:.2f} ms"


def fmt_mb(nbytes: float) -> str:
    return f"{nbytes / 2**20:.1f} MiB"


def peak_rss(pid: int) -> int:
    """The process's high-water resident set (VmHWM), in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmHWM for pid {pid}")


class Usage:
    """CPU and resident memory of one process, sampled by the caller (once a second)."""

    def __init__(self, pid: int):
        self.ps = psutil.Process(pid)
        self.rss: list[int] = []
        self.intervals = 0
        self._first: tuple[float, float] | None = None
        self._last: tuple[float, float] | None = None

    def sample(self) -> None:
        times = self.ps.cpu_times()
        now = (time.monotonic(), times.user + times.system)
        self.rss.append(self.ps.memory_info().rss)
        if self._first is None:
            self._first = now
        else:
            self.intervals += 1
        self._last = now

    def cpu_percent(self) -> float:
        """Mean CPU in % of one core from the first sample to the last."""
        if self._first is None or self._last is None or self._last[0] <= self._first[0]:
            return float("nan")
        return (self._last[1] - self._first[1]) / (self._last[0] - self._first[0]) * 100


# Runs a command as its child, so the child's peak RSS is its own (RUSAGE_CHILDREN).
_MEASURE = """
import json, resource, subprocess, sys, time
start = time.monotonic()
done = subprocess.run(sys.argv[1:], capture_output=True, text=True)
wall = time.monotonic() - start
rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
print(json.dumps({"rc": done.returncode, "wall": wall, "rss": rss,
                  "err": done.stderr[-1500:], "out": done.stdout[-800:]}))
"""


def measure_command(cmd: list[str], timeout: float) -> dict:
    """One run of cmd: exit status, wall seconds, peak RSS (bytes), the ends of its output.
    A failed run raises, naming the command."""
    done = subprocess.run([sys.executable, "-c", _MEASURE, *cmd], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)
    result = json.loads(done.stdout)
    if result["rc"] != 0:
        raise RuntimeError(f"{' '.join(cmd[1:5])} failed: {result['err']}")
    return result
