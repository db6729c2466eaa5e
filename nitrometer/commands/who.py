"""Who drove it, for `diagnose`: each device's exceeded intervals split by workload, from
cgroup v2 io.stat read alongside every sample (see collectors/cgroups.py)."""

from __future__ import annotations

from nitrometer.collectors.cgroups import CgroupIO, io_controller_mounted, sysfs_devnum
from nitrometer.sampling.device import key_of
from nitrometer.sampling.workloads import EpisodeShares

WHOLE_WINDOW = 1 << 30  # intervals not exceeded never end the window's one "episode"


class Who:
    """Per device, every exceeded interval of the window and each workload's ops in it."""

    def __init__(self, cgroupfs: str, sysfs: str, devnum_of=None):
        self.cgroups = CgroupIO(cgroupfs, rescan_every=WHOLE_WINDOW)
        self.devnum_of = devnum_of or (lambda device: sysfs_devnum(sysfs, device))
        self.devnums: dict[tuple, str | None] = {}
        self.shares: dict[tuple, EpisodeShares] = {}

    @classmethod
    def open(cls, cgroupfs: str | None, sysfs: str, devnum_of=None) -> Who | None:
        """None when there is no cgroup v2 io controller to read there."""
        if not cgroupfs or not io_controller_mounted(cgroupfs):
            return None
        return cls(cgroupfs, sysfs, devnum_of)

    def _devnum(self, device) -> str | None:
        key = key_of(device)
        if self.devnums.get(key) is None:
            self.devnums[key] = self.devnum_of(device)
        return self.devnums[key]

    def tick(self, result) -> None:
        for device, _page in result.baselines:
            self._devnum(device)
        for iv in result.intervals:
            self._devnum(iv.device)
        grown = self.cgroups.tick({d for d in self.devnums.values() if d is not None})
        for iv in result.intervals:
            key = key_of(iv.device)
            shares = self.shares.setdefault(key, EpisodeShares(WHOLE_WINDOW))
            shares.add(iv, grown.get(self.devnums.get(key), {}))

    def of(self, device) -> EpisodeShares | None:
        shares = self.shares.get(key_of(device))
        return shares if shares is not None and shares.seconds else None


def open_who(args) -> tuple[Who | None, object]:
    """(Who, a wrapper for the sources): a simulation reads its own simulated workloads,
    anything else --path.cgroupfs."""
    if str(getattr(args, "source", "")).startswith("simulate"):
        from nitrometer.sim.cgroups import SimulatedCgroupfs, with_workloads

        simulated = SimulatedCgroupfs()
        who = Who(simulated.root, args.path_sysfs, simulated.devnum)
        who.simulated = simulated  # the tree lives as long as this
        return who, lambda sources: with_workloads(sources, simulated)
    return Who.open(getattr(args, "path_cgroupfs", None), args.path_sysfs), None


def who_line(shares: EpisodeShares) -> str:
    """'during the 14 exceeded seconds, 83 % of read ops came from X' for the op that did
    most of the IO in those seconds."""
    reads, writes = shares.device_ops
    which, op = (0, "read") if reads >= writes else (1, "write")
    top = shares.top(1, which)
    seconds = f"{shares.seconds:.0f} exceeded second{'s' if round(shares.seconds) != 1 else ''}"
    if not top:
        return f"during the {seconds}, no {op} ops came from a workload cgroup"
    name, share = top[0]
    return f"during the {seconds}, {share * 100:.0f} % of {op} ops came from {name}"


def who_record(shares: EpisodeShares, top: int = 5) -> dict:
    """The JSON form: the seconds, the device's ops and the top workloads' shares."""
    table = shares.shares()
    names = [name for name, _share in shares.top(top)]
    return {
        "exceeded_seconds": round(shares.seconds, 3),
        "read_ops": shares.device_ops[0], "write_ops": shares.device_ops[1],
        "workloads": [{"workload": n, "read_share": round(table[n][0], 4),
                       "write_share": round(table[n][1], 4),
                       "share": round(table[n][2], 4)} for n in names],
    }
