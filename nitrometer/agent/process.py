"""The agent's own process metrics, read from /proc/self: the names, types and help texts the
Prometheus client libraries share (prometheus.io/docs/instrumenting/writing_clientlibs,
"Process metrics"), plus python_info as the Python client writes it."""

from __future__ import annotations

import os
import platform

from nitrometer.agent.exposition import Family, labelstr

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


class ProcessMetrics:
    """process_* of the process under `proc` (default this one), read at each render."""

    def __init__(self, proc: str = "/proc", pid: str = "self"):
        self.proc = proc
        self.dir = os.path.join(proc, pid)
        self._boot_time: float | None = None
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

    def _stat_families(self) -> list[Family]:
        with open(os.path.join(self.dir, "stat"), "rb") as f:
            # Fields after "(comm)", which may itself hold spaces and parentheses; the
            # field numbers of proc(5) start at 1 with pid: state (3) is fields[0].
            fields = f.read().rpartition(b")")[2].split()
        utime, stime = int(fields[11]), int(fields[12])  # (14), (15): clock ticks
        start = int(fields[19])  # (22) starttime: clock ticks after boot
        vsize, rss = int(fields[20]), int(fields[21])  # (23) bytes, (24) pages
        vmem = Family("process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.")
        vmem.add("", vsize)
        resident = Family("process_resident_memory_bytes", "gauge",
                          "Resident memory size in bytes.")
        resident.add("", rss * PAGE_SIZE)
        started = Family("process_start_time_seconds", "gauge",
                         "Start time of the process since unix epoch in seconds.")
        started.add("", start / CLOCK_TICKS + self.boot_time())
        cpu = Family("process_cpu_seconds_total", "counter",
                     "Total user and system CPU time spent in seconds.")
        cpu.add("", (utime + stime) / CLOCK_TICKS)
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
        with open(os.path.join(self.dir, "limits")) as f:
            for line in f:
                if line.startswith("Max open files"):
                    soft = line[len("Max open files"):].split()[0]
                    return None if soft == "unlimited" else int(soft)
        return None
