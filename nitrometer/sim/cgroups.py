"""Simulated workloads: a private cgroup v2 tree whose io.stat files split each simulated
device's IO among named workloads in known shares, for the workload collector to read.

Each device's workloads get fixed shares of its reads and writes (ops and bytes alike,
rounded down, so a few IOs a second stay unattributed like the kernel's own); the files
follow the kernel's io.stat format (Documentation/admin-guide/cgroup-v2.rst, "io.stat").
"""

from __future__ import annotations

import os
import shutil
import tempfile
import weakref

SIM_MAJOR = 259  # the block extended major NVMe namespaces get
POD_A = "5f1c0a2e-7b3d-4e59-9c61-2a8b4d6e0f13"
POD_B = "c7d2e4f6-0a1b-4c3d-8e5f-6a7b8c9d0e1f"
# (cgroup path, share of reads, share of writes), the busiest first for device 0; each
# further device rotates the list by one, so every device has another leader.
WORKLOADS = (
    ("system.slice/postgresql.service", 0.55, 0.30),
    ("kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod"
     f"{POD_A.replace('-', '_')}.slice/cri-containerd-{'3a7f' * 16}.scope", 0.20, 0.45),
    ("system.slice/nginx.service", 0.15, 0.05),
    (f"kubepods/besteffort/pod{POD_B}/{'9c1e' * 16}", 0.05, 0.15),
    ("user.slice/user-1000.slice/session-2.scope", 0.03, 0.02),
)
FIELDS = ("total_read_ops", "total_write_ops", "total_read_bytes", "total_write_bytes")


def shares_for(index: int) -> list[tuple[str, float, float]]:
    """The workloads of the index-th simulated device with their read and write shares."""
    paths = [w[0] for w in WORKLOADS]
    k = index % len(paths)
    rotated = paths[k:] + paths[:k]
    return [(path, read, write) for path, (_p, read, write) in zip(rotated, WORKLOADS)]


class SimulatedCgroupfs:
    """The tree, in a private temporary directory removed when this object goes."""

    def __init__(self, root: str | None = None):
        self.root = root or tempfile.mkdtemp(prefix="nitrometer-cgroupfs-")
        if root is None:
            self._cleanup = weakref.finalize(self, shutil.rmtree, self.root, True)
        with open(os.path.join(self.root, "cgroup.controllers"), "w") as f:
            f.write("cpuset cpu io memory pids\n")
        self.devnums: dict[str, str] = {}  # device name -> MAJ:MIN
        self.index: dict[str, int] = {}
        self.stats: dict[str, dict[str, tuple]] = {}  # path -> devnum -> counters

    def devnum(self, device) -> str:
        name = device.name
        if name not in self.devnums:
            self.index[name] = len(self.devnums)
            self.devnums[name] = f"{SIM_MAJOR}:{len(self.devnums)}"
        return self.devnums[name]

    def update(self, device, counters: dict) -> None:
        """The device's cumulative counters, split among its workloads' io.stat files."""
        devnum = self.devnum(device)
        ops_r, ops_w, bytes_r, bytes_w = (int(counters.get(k, 0)) for k in FIELDS)
        for path, read, write in shares_for(self.index[device.name]):
            per = self.stats.setdefault(path, {})
            per[devnum] = (int(ops_r * read), int(ops_w * write), int(bytes_r * read),
                           int(bytes_w * write))
            self._write(path, per)

    def _write(self, path: str, per: dict) -> None:
        directory = os.path.join(self.root, path)
        os.makedirs(directory, exist_ok=True)
        text = "".join(f"{devnum} rbytes={c[2]} wbytes={c[3]} rios={c[0]} wios={c[1]} "
                       "dbytes=0 dios=0\n" for devnum, c in sorted(per.items()))
        tmp = os.path.join(directory, ".io.stat")
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, os.path.join(directory, "io.stat"))  # never half a file to a reader


class WorkloadSource:
    """A simulated source whose reads also write its workloads' io.stat, under the
    simulated host's lock so the page and the files agree."""

    def __init__(self, source, cgroups: SimulatedCgroupfs):
        self.source = source
        self.cgroups = cgroups
        self.device = source.device
        self.volume_limits = getattr(source, "volume_limits", None)
        cgroups.devnum(source.device)

    def read(self) -> tuple[bytes, float]:
        host, model = self.source.host, self.source.model
        now = host.advance()
        with host.lock:
            page = model.page()
            self.cgroups.update(self.device, model.state.counters)
        return page, now

    def close(self) -> None:
        self.source.close()


def with_workloads(sources: list, cgroups: SimulatedCgroupfs) -> list:
    """Simulated sources wrapped to write the tree; any other source as it is."""
    return [WorkloadSource(s, cgroups) if hasattr(s, "model") and hasattr(s, "host") else s
            for s in sources]
