"""A fixture cgroup v2 tree and sysfs `dev` files, as the kernel lays them out.

io.stat follows Documentation/admin-guide/cgroup-v2.rst ("io.stat"): one line per device,
`MAJ:MIN rbytes=N wbytes=N rios=N wios=N dbytes=N dios=N`. The root's cgroup.controllers
lists the enabled controllers, space separated ("cgroup.controllers" in the same document).
A namespace's MAJ:MIN is in /sys/class/nvme/nvmeX/nvmeXnY/dev (Documentation/ABI/stable/
sysfs-block: "dev").
"""

from __future__ import annotations

from pathlib import Path

# The layouts systemd and the kubelet create: a systemd-driver pod slice with a containerd
# scope, a cgroupfs-driver pod directory with a container, a Docker scope.
POD_UID = "0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0"
CONTAINER_ID = "4f0a6c7e9d1b2a3c5e7f9a1b3c5d7e9f0a2b4c6d8e0f1a3b5c7d9e1f3a5b7c9d"
POD_SLICE = ("kubepods.slice/kubepods-burstable.slice/"
             f"kubepods-burstable-pod{POD_UID.replace('-', '_')}.slice")
POD_CONTAINER = f"{POD_SLICE}/cri-containerd-{CONTAINER_ID}.scope"
CGROUPFS_POD_UID = "9a8b7c6d-5e4f-3a2b-1c0d-e1f2a3b4c5d6"
CGROUPFS_CONTAINER = f"kubepods/besteffort/pod{CGROUPFS_POD_UID}/{'ab' * 32}"
DOCKER_SCOPE = f"system.slice/docker-{'cd' * 32}.scope"


class CgroupTree:
    """Cumulative counters per cgroup and device; write() lays them out as io.stat files."""

    def __init__(self, root: Path, controllers: str = "cpuset cpu io memory pids"):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "cgroup.controllers").write_text(controllers + "\n")
        self.counters: dict[str, dict[str, list]] = {}

    def add(self, path: str, devnum: str, rios=0, wios=0, rbytes=0, wbytes=0) -> None:
        counts = self.counters.setdefault(path, {}).setdefault(devnum, [0, 0, 0, 0])
        for i, value in enumerate((rios, wios, rbytes, wbytes)):
            counts[i] += value
        self.write(path)

    def write(self, path: str) -> None:
        directory = self.root / path
        directory.mkdir(parents=True, exist_ok=True)
        lines = [f"{devnum} rbytes={c[2]} wbytes={c[3]} rios={c[0]} wios={c[1]} dbytes=0 "
                 "dios=0" for devnum, c in sorted(self.counters.get(path, {}).items())]
        (directory / "io.stat").write_text("".join(line + "\n" for line in lines))

    def recreate(self, path: str) -> None:
        """The cgroup removed and made again: its counters start from zero."""
        self.counters[path] = {}
        self.write(path)

    def mkdir(self, path: str) -> None:
        (self.root / path).mkdir(parents=True, exist_ok=True)
        (self.root / path / "io.stat").write_text("")


def write_devnums(sysfs: Path, devnums: dict[str, str]) -> None:
    """<sysfs>/class/nvme/nvmeN/nvmeNn1/dev for each device name."""
    for name, devnum in devnums.items():
        controller = name[: name.index("n", 4)]
        directory = Path(sysfs) / "class" / "nvme" / controller / name
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "dev").write_text(devnum + "\n")
