"""Per-workload IO from cgroup v2: `io.stat` of the cgroups that stand for workloads.

io.stat, as the kernel documents it (Documentation/admin-guide/cgroup-v2.rst, "io.stat"),
has one line per device, keyed by major:minor:

    8:16 rbytes=1459200 wbytes=314773504 rios=192 wios=353 dbytes=0 dios=0

Workloads are the cgroups whose path (relative to the cgroupfs root) matches a pattern
(fnmatch: `*` also matches `/`), at most `depth` levels down. A match with a matching
descendant is left out for that descendant: cgroup v2 keeps processes only in leaves, so
the deepest matches split the IO without counting any of it twice.

Counters are cumulative per cgroup. A cgroup seen for the first time, or whose counters went
down (it was removed and created again), gives its values as the new baseline: no delta
for that tick, counting from its new value. Each tick reads each workload's io.stat once.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from fnmatch import fnmatchcase

from nitrometer.errors import ConfigError

DEFAULT_ROOT = "/sys/fs/cgroup"
DEFAULT_DEPTH = 6
# systemd units under system.slice and user.slice (Docker and containerd scopes among them),
# Kubernetes pods and their containers (systemd and cgroupfs drivers), Docker's cgroupfs
# driver.
DEFAULT_PATTERNS = (
    "system.slice/*.service",
    "system.slice/*.scope",
    "user.slice/*.service",
    "user.slice/*.scope",
    "kubepods*-pod*",  # systemd driver: kubepods[-QOS]-pod<UID>.slice and below
    "kubepods/*pod*",  # cgroupfs driver: kubepods[/QOS]/pod<UID> and below
    "docker/*",
)
FIELDS = ("rios", "wios", "rbytes", "wbytes")
MAX_IO_STAT = 1 << 16  # one line per device: a few KiB at most
_POD_SLICE = re.compile(r"kubepods(?:-[a-z]+)*-pod([0-9a-f_]+)\.slice$")
_POD_DIR = re.compile(r"pod([0-9a-f-]{8,})$")
_CONTAINER_SCOPE = re.compile(r"(?:cri-containerd|crio|docker)-([0-9a-f]{12,})\.scope$")
_CONTAINER_ID = re.compile(r"[0-9a-f]{12,}$")
SHORT_ID = 12


def io_controller_mounted(root: str = DEFAULT_ROOT) -> bool:
    """cgroup v2 with the io controller: the root's cgroup.controllers lists `io`."""
    try:
        with open(os.path.join(root, "cgroup.controllers")) as f:
            return "io" in f.read().split()
    except OSError:
        return False


def parse_patterns(text: str) -> tuple[str, ...]:
    patterns = tuple(p.strip().strip("/") for p in str(text).split(",") if p.strip())
    if not patterns:
        raise ConfigError("collector.workload.patterns: expected comma-separated patterns "
                          "such as system.slice/*.service, got none")
    return patterns


def parse_io_stat(text: str) -> dict[str, tuple[int, int, int, int]]:
    """major:minor -> (rios, wios, rbytes, wbytes); lines or fields that do not parse are
    left out (a kernel may add keys: only the four are read)."""
    out = {}
    for line in text.splitlines():
        parts = line.split()
        if not parts or ":" not in parts[0]:
            continue
        values = {}
        for part in parts[1:]:
            key, _, value = part.partition("=")
            if key in FIELDS and value.isdigit():
                values[key] = int(value)
        out[parts[0]] = tuple(values.get(k, 0) for k in FIELDS)
    return out


@dataclass(frozen=True)
class Workload:
    name: str  # the workload label: a unit path, pod/<uid>/<container>, docker/<id>
    path: str  # relative to the cgroupfs root
    pod_uid: str = ""
    container_id: str = ""


def workload_of(path: str) -> Workload:
    """The label of a cgroup: Kubernetes pod UID and container id when the path has them,
    else the unit path (system.slice/postgresql.service)."""
    parts = path.split("/")
    pod_uid, pod_index = "", -1
    for i, part in enumerate(parts):
        match = _POD_SLICE.match(part) or (_POD_DIR.match(part)
                                           if i and parts[0].startswith("kubepods") else None)
        if match:
            pod_uid, pod_index = match.group(1).replace("_", "-"), i
    container = ""
    last = parts[-1]
    scope = _CONTAINER_SCOPE.match(last)
    if scope:
        container = scope.group(1)
    elif pod_index >= 0 and pod_index < len(parts) - 1 and _CONTAINER_ID.match(last):
        container = last
    elif parts[0] == "docker" and len(parts) == 2 and _CONTAINER_ID.match(last):
        container = last
    if pod_uid:
        name = f"pod/{pod_uid}" + (f"/{container[:SHORT_ID]}" if container and
                                   pod_index < len(parts) - 1 else "")
    elif container:
        name = f"docker/{container[:SHORT_ID]}" if "docker" in path else \
            f"container/{container[:SHORT_ID]}"
    else:
        name = path
    return Workload(name, path, pod_uid, container)


def find_workloads(root: str, patterns=DEFAULT_PATTERNS, depth: int = DEFAULT_DEPTH
                   ) -> list[Workload]:
    """The deepest matching cgroups under root, at most `depth` levels down, sorted."""
    matches: list[str] = []
    stack = [("", 0)]
    while stack:
        rel, level = stack.pop()
        if level >= depth:
            continue
        try:
            entries = os.scandir(os.path.join(root, rel) if rel else root)
        except OSError:  # removed while walking
            continue
        with entries:
            for entry in entries:
                try:
                    if not entry.is_dir(follow_symlinks=False):
                        continue
                except OSError:
                    continue
                child = f"{rel}/{entry.name}" if rel else entry.name
                if any(fnmatchcase(child, p) for p in patterns):
                    matches.append(child)
                stack.append((child, level + 1))
    matches.sort()
    # Sorted, a cgroup's descendants follow it directly: drop a match whose next match is
    # below it.
    leaves = [p for i, p in enumerate(matches)
              if not (i + 1 < len(matches) and matches[i + 1].startswith(p + "/"))]
    return [workload_of(p) for p in leaves]


# The kernel writes the keys in this order (blkcg_print_one_stat): one scan in C per file.
_KERNEL_LINE = re.compile(r"^(\d+:\d+) rbytes=(\d+) wbytes=(\d+) rios=(\d+) wios=(\d+)",
                          re.MULTILINE)


def read_io_stat(path: str) -> bytes | None:
    """The raw io.stat text; None when the cgroup is gone (or unreadable)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        return os.read(fd, MAX_IO_STAT)
    except OSError:
        return None
    finally:
        os.close(fd)


def wanted_stats(data: str, wanted) -> dict[str, tuple[int, int, int, int]]:
    """The counters of the wanted major:minor numbers in one io.stat."""
    out = {}
    for devnum, rbytes, wbytes, rios, wios in _KERNEL_LINE.findall(data):
        if devnum in wanted:
            out[devnum] = (int(rios), int(wios), int(rbytes), int(wbytes))
    if not out and data.strip():  # keys in another order: the general parser
        parsed = parse_io_stat(data)
        out = {k: v for k, v in parsed.items() if k in wanted}
    return out


class CgroupIO:
    """Per tick: for each watched major:minor, each workload's IO since the last tick.

    `rescan_every` ticks the tree is walked again for cgroups that came or went; a workload
    whose io.stat is gone is dropped at once."""

    def __init__(self, root: str = DEFAULT_ROOT, patterns=DEFAULT_PATTERNS,
                 depth: int = DEFAULT_DEPTH, rescan_every: int = 30):
        self.root = root
        self.patterns = tuple(patterns)
        self.depth = depth
        self.rescan_every = max(1, rescan_every)
        self.workloads: list[Workload] = []
        self._last: dict[str, dict[str, tuple]] = {}  # path -> devnum -> counters
        self._text: dict[str, bytes] = {}  # path -> io.stat as last read: unchanged, no parse
        self._ticks = 0
        self._wanted: frozenset = frozenset()
        self.reads = 0  # io.stat files read, for the benchmark and tests
        self.scans = 0

    def rescan(self) -> None:
        self.workloads = find_workloads(self.root, self.patterns, self.depth)
        known = {w.path for w in self.workloads}
        for path in [p for p in self._last if p not in known]:
            del self._last[path]
            self._text.pop(path, None)
        self.scans += 1

    def tick(self, devnums) -> dict[str, dict[str, tuple[int, int, int, int]]]:
        """devnum -> workload name -> (read ops, write ops, read bytes, write bytes) grown
        since the last tick, for the devnums asked for; workloads with no growth left out."""
        wanted = frozenset(devnums)
        if not wanted:  # no device to match: nothing read
            self._wanted = wanted
            return {}
        if self._ticks % self.rescan_every == 0:
            self.rescan()
        self._ticks += 1
        if wanted != self._wanted:  # a device came or went: parse every file again
            for stats in self._last.values():  # one (back) in the set starts a baseline
                for devnum in wanted - self._wanted:
                    stats.pop(devnum, None)
            self._wanted = wanted
            self._text.clear()
        out: dict[str, dict[str, tuple]] = {d: {} for d in wanted}
        gone = []
        root = self.root
        for w in self.workloads:
            data = read_io_stat(f"{root}/{w.path}/io.stat")
            self.reads += 1
            if data is None:
                gone.append(w)
                continue
            if self._text.get(w.path) == data:
                continue  # nothing grew
            self._text[w.path] = data
            stats = wanted_stats(data.decode("ascii", "replace"), wanted)
            last = self._last.get(w.path)
            self._last[w.path] = stats
            if last is None:
                continue  # first sight: the baseline
            for devnum, now in stats.items():
                before = last.get(devnum)
                if before is None or now == before:
                    continue  # new on this device (a baseline), or idle on it
                r, wr = now[0] - before[0], now[1] - before[1]
                rb, wb = now[2] - before[2], now[3] - before[3]
                if r < 0 or wr < 0 or rb < 0 or wb < 0:
                    continue  # recreated: counts from its new value
                per = out[devnum]
                old = per.get(w.name)  # two cgroups may share a label (pod without ids)
                per[w.name] = (r, wr, rb, wb) if old is None else (
                    old[0] + r, old[1] + wr, old[2] + rb, old[3] + wb)
        for w in gone:
            self.workloads.remove(w)
            self._last.pop(w.path, None)
            self._text.pop(w.path, None)
        return out


def sysfs_devnum(sysfs_root: str, device) -> str | None:
    """MAJ:MIN of an NVMe namespace: /sys/class/nvme/nvmeX/nvmeXnY/dev, else
    /sys/class/block/nvmeXnY/dev."""
    candidates = [os.path.join(sysfs_root, "class", "block", device.name, "dev")]
    if device.controller:
        candidates.insert(0, os.path.join(sysfs_root, "class", "nvme", device.controller,
                                          device.name, "dev"))
    for path in candidates:
        try:
            with open(path) as f:
                text = f.read(64).strip()
        except OSError:
            continue
        if re.fullmatch(r"\d+:\d+", text):
            return text
    return None
