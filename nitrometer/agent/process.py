"""The agent's own process metrics, read from /proc/self: the names, types and help texts the
Prometheus client libraries share (prometheus.io/docs/instrumenting/writing_clientlibs,
"Process metrics"), plus python_info as the Python client writes it."""

from __future__ import annotations

import os
import platform
import resource

from nitrometer.agent.exposition import Family, labelstr

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


class ProcessMetrics:
    """process_* of the process under `proc` (default this one), read at each render."""

    def __init__(self, proc: str = "/proc", pid: str = "self"):
        self.proc = proc
        self.dir = os.path.join(proc, pid)
        # This very process: CPU from times(2) and memory from statm, which the kernel
        # answers without walking every thread as it does for stat, read at every render.
        self.own = (proc, pid) == ("/proc", "self")
        self._boot_time: float | None = None
        self._start_time: float | None = None
        version = platform.python_version_tuple()
        self.python_info = labelstr(
            ("implementation", "major", "minor", "patchlevel", "version"),
            (platform.python_implementation(), *version, platform.python_version()))

    def boot_time(self) -> float:
        """Seconds since the epoch at boot: btime in /proc/stat (proc(5)); it never changes."""
        if self._boot_time is None:
            with open(os.path.join(self.proc, "stat"), "rb") as stat:
                for line in stat:
                    if line.startswith(b"btime "):
                        self._boot_time = float(line.split()[1])
                        break
                else:
                    raise OSError(f"no btime in {self.proc}/stat")
        return self._boot_time

    def families(self) -> list[Family]:
        out = []
        try:
            out += self._stat_families()
        except OSError:
            pass  # no /proc (or another pid gone): only what can be read
        try:
            out += self._fd_families()
        except OSError:
            pass
        info = Family("python_info", "gauge", "Python platform information")
        info.add(self.python_info, 1)
        return out + [info]

    def _stat(self) -> tuple[float, float, int, int]:
        """CPU seconds, start time (epoch seconds), virtual and resident bytes."""
        if self.own and self._start_time is not None:
            times = os.times()
            with open("/proc/self/statm", "rb") as f:
                size, resident = f.read().split()[:2]  # proc_pid_statm(5): pages
            return (times.user + times.system, self._start_time, int(size) * PAGE_SIZE,
                    int(resident) * PAGE_SIZE)
        with open(os.path.join(self.dir, "stat"), "rb") as f:
            # Fields after "(comm)", which may itself hold spaces and parentheses; the
            # field numbers of proc(5) start at 1 with pid: state (3) is fields[0].
            fields = f.read().rpartition(b")")[2].split()
        utime, stime = int(fields[11]), int(fields[12])  # (14), (15): clock ticks
        start = int(fields[19]) / CLOCK_TICKS + self.boot_time()  # (22): ticks after boot
        self._start_time = start
        vsize, rss = int(fields[20]), int(fields[21])  # (23) bytes, (24) pages
        return (utime + stime) / CLOCK_TICKS, start, vsize, rss * PAGE_SIZE

    def _stat_families(self) -> list[Family]:
        cpu_seconds, start, vsize, rss = self._stat()
        vmem = Family("process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.")
        vmem.add("", vsize)
        resident = Family("process_resident_memory_bytes", "gauge",
                          "Resident memory size in bytes.")
        resident.add("", rss)
        started = Family("process_start_time_seconds", "gauge",
                         "Start time of the process since unix epoch in seconds.")
        started.add("", start)
        cpu = Family("process_cpu_seconds_total", "counter",
                     "Total user and system CPU time spent in seconds.")
        cpu.add("", cpu_seconds)
        return [vmem, resident, started, cpu]

    def _fd_families(self) -> list[Family]:
        open_fds = Family("process_open_fds", "gauge", "Number of open file descriptors.")
        open_fds.add("", len(os.listdir(os.path.join(self.dir, "fd"))))
        out = [open_fds]
        limit = self.max_fds()
        if limit is not None:
            max_fds = Family("process_max_fds", "gauge",
                             "Maximum number of open file descriptors.")
            max_fds.add("", limit)
            out.append(max_fds)
        return out

    def max_fds(self) -> int | None:
        """The soft limit on open files, from /proc/PID/limits; None when unlimited."""
        if self.own:
            soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
            return None if soft == resource.RLIM_INFINITY else soft
        with open(os.path.join(self.dir, "limits")) as f:
            for line in f:
                if line.startswith("Max open files"):
                    soft = line[len("Max open files"):].split()[0]
                    return None if soft == "unlimited" else int(soft)
        return None
