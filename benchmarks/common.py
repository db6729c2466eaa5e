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


@dataclass
class ProcessShare:
    """One process of a service over a window: what it is and its own share of the cost."""
    pid: int
    name: str
    depth: int  # 0: the process started, 1: a process it forked, ...
    seen_from_start: bool  # there at the first sample (else started within the window)
    cpu_first: float = 0.0  # its own CPU seconds, at its first sample (0 if it started later)
    cpu_last: float = 0.0
    rss: list[int] = field(default_factory=list)
    pss: list[int] = field(default_factory=list)

    @property
    def cpu_seconds(self) -> float:
        return self.cpu_last - self.cpu_first


class ServiceUsage:
    """CPU and memory of a whole service: a process and every process it forks (recursively),
    sampled by the caller once a second; a process forked after the first sample is picked
    up at the next one.

    CPU: the service's CPU time over the window from the first sample to the last, in % of
    one core. At each sample every live process counts its own CPU time plus that of its
    children it has waited for, so a process that ended within the window still counts
    (through its parent) and none counts twice. Memory: at each sample the sum over the live
    processes of their RSS (pages shared between forked processes count in each, as RSS
    does) and of their PSS (shared pages split among the processes that share them)."""

    def __init__(self, pid: int, pss: bool = True):
        self.root = psutil.Process(pid)
        self.with_pss = pss
        self.processes: dict[int, ProcessShare] = {}
        self._handles: dict[int, psutil.Process] = {pid: self.root}
        self.rss: list[int] = []  # the service's RSS at each sample
        self.pss: list[int] = []
        self.intervals = 0
        self._first: tuple[float, float] | None = None  # (monotonic, service CPU seconds)
        self._last: tuple[float, float] | None = None

    def _tree(self) -> list[psutil.Process]:
        try:
            children = self.root.children(recursive=True)
        except psutil.NoSuchProcess:
            return []
        found = [self.root]
        for child in children:  # keep one handle per pid: psutil caches per handle
            found.append(self._handles.setdefault(child.pid, child))
        return found

    def _depth(self, proc: psutil.Process) -> int:
        try:
            parent = proc.ppid()
        except psutil.NoSuchProcess:
            return 1
        known = self.processes.get(parent)
        return known.depth + 1 if known else 1

    def sample(self) -> None:
        first = self._first is None
        cpu_total, rss_total, pss_total = 0.0, 0, 0
        for proc in self._tree():
            try:
                with proc.oneshot():
                    times = proc.cpu_times()
                    memory = proc.memory_full_info() if self.with_pss else proc.memory_info()
                    name = proc.name()
            except (psutil.NoSuchProcess, psutil.ZombieProcess):
                continue  # gone: its CPU is its parent's now, counted as ended
            own = times.user + times.system
            waited = times.children_user + times.children_system
            share = self.processes.get(proc.pid)
            if share is None:
                depth = 0 if proc.pid == self.root.pid else self._depth(proc)
                share = ProcessShare(proc.pid, name, depth, first,
                                     cpu_first=own if first else 0.0)
                self.processes[proc.pid] = share
            share.cpu_last = own
            share.rss.append(memory.rss)
            rss_total += memory.rss
            if self.with_pss:
                share.pss.append(memory.pss)
                pss_total += memory.pss
            cpu_total += own + waited
        now = (time.monotonic(), cpu_total)
        self.rss.append(rss_total)
        if self.with_pss:
            self.pss.append(pss_total)
        if first:
            self._first = now
        else:
            self.intervals += 1
        self._last = now

    @property
    def seconds(self) -> float:
        """Wall seconds from the first sample to the last."""
        if self._first is None or self._last is None:
            return 0.0
        return self._last[0] - self._first[0]

    def cpu_seconds(self) -> float:
        if self._first is None or self._last is None:
            return float("nan")
        return self._last[1] - self._first[1]

    def cpu_percent(self) -> float:
        """Mean CPU in % of one core from the first sample to the last."""
        if self.seconds <= 0:
            return float("nan")
        return self.cpu_seconds() / self.seconds * 100

    def ended_cpu_seconds(self) -> float:
        """What the processes that ended within the window spent after their last sample."""
        return self.cpu_seconds() - sum(p.cpu_seconds for p in self.processes.values())

    def peak_rss(self) -> int:
        """The sum of the live processes' high-water marks (VmHWM), start-up included: at
        least the service's peak, more where the processes peaked at different times."""
        total = 0
        for proc in self._tree():
            try:
                total += peak_rss(proc.pid)
            except (OSError, RuntimeError):
                continue  # ended since it was listed
        return total

    def share_percent(self, cpu_seconds: float) -> float:
        return cpu_seconds / self.seconds * 100 if self.seconds > 0 else float("nan")


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
