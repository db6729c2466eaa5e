"""The workload collector in the agent: cgroup io.stat deltas per device each tick, the top
K workloads' counters and each device's exceeded-episode shares, and their metric families."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from nitrometer import metrics as m
from nitrometer.collectors.cgroups import CgroupIO, sysfs_devnum
from nitrometer.sampling.device import key_of
from nitrometer.sampling.workloads import OTHER, EpisodeShares, TopWorkloads

log = logging.getLogger("nitrometer.workloads")


@dataclass
class DeviceWorkloads:
    device: object
    devnum: str | None
    top: TopWorkloads
    episode: EpisodeShares


class WorkloadCollector:
    """Fed each tick's intervals by the sampler (outside the state lock); `view()` is what a
    scrape copies under it."""

    def __init__(self, cgroups: CgroupIO, devnum_of=None, *, sysfs_root: str = "/sys",
                 top: int = 5, episode_gap: int = 3, clock=time.monotonic):
        self.cgroups = cgroups
        self.devnum_of = devnum_of or (lambda device: sysfs_devnum(sysfs_root, device))
        self.top = top
        self.episode_gap = episode_gap
        self.clock = clock
        self.devices: dict[tuple, DeviceWorkloads] = {}
        self._devnums: dict[str, str | None] = {}  # device name -> MAJ:MIN
        self.kube = None  # agent.kubernetes.Directory, in a cluster
        self._pending: dict[str, dict] = {}  # MAJ:MIN -> growth not yet matched to a read
        self.seconds = 0.0  # time spent in ticks, for the self metric
        self.ticks = 0

    def _devnum(self, device) -> str | None:
        devnum = self._devnums.get(device.name)
        if devnum is None:
            devnum = self._devnums[device.name] = self.devnum_of(device)
        return devnum

    def read(self, result) -> tuple:
        """The cgroup reads of a tick: outside the state lock, so scrapes never wait on them
        (nothing a scrape sees changes here)."""
        started = time.perf_counter()
        for device in list(result.removed) + [old for old, _new in result.renamed]:
            self._pending.pop(self._devnums.pop(device.name, None), None)
        devnums = [(iv, self._devnum(iv.device)) for iv in result.intervals]
        for dev, _page in result.baselines:  # its first page: a baseline for cgroups too
            self._devnum(dev)
        # Every device still known, read this tick or not: one that missed a read keeps
        # its cgroup baselines.
        grown = self.cgroups.tick({d for d in self._devnums.values() if d is not None})
        self.seconds += time.perf_counter() - started
        self.ticks += 1
        return result.removed, devnums, grown

    def fold(self, read: tuple) -> None:
        """Adds a tick's reads up: under the state lock."""
        removed, devnums, grown = read
        for device in removed:
            self.devices.pop(key_of(device), None)
        now = self.clock()
        read_now = {devnum for _iv, devnum in devnums}
        for devnum, per in grown.items():  # a device that missed its read: held over
            if devnum not in read_now and per:
                self._pending[devnum] = merged(self._pending.get(devnum, {}), per)
        for iv, devnum in devnums:
            key = key_of(iv.device)
            t = self.devices.get(key)
            if t is None:
                t = self.devices[key] = DeviceWorkloads(
                    iv.device, devnum, TopWorkloads(self.top, width=5),
                    EpisodeShares(self.episode_gap))
            t.device, t.devnum = iv.device, devnum  # a rename keeps the counters
            deltas = grown.get(devnum, {}) if devnum is not None else {}
            if devnum in self._pending:
                deltas = merged(self._pending.pop(devnum), deltas)
            t.top.add(now, with_exceeded_seconds(iv, deltas))
            t.episode.add(iv, deltas)

    def tick(self, result) -> None:
        self.fold(self.read(result))

    def annotate(self, events: list[dict]) -> None:
        """Adds the top workloads of the device's exceeded intervals to its episode events."""
        for event in events:
            t = self.devices.get((event.get("kind"), event.get("serial")))
            if t is None or not t.episode.seconds:
                continue
            table = t.episode.shares()
            event["workloads"] = [
                {"workload": name, "share": round(share, 4),
                 "read_share": round(table[name][0], 4), "write_share": round(table[name][1], 4)}
                for name, share in t.episode.top(self.top)]

    def view(self) -> dict:
        """devices: (device, counters by workload, episode shares, ongoing, seconds);
        workloads: (label, namespace, pod, container) of exported pod workloads the API
        named; claims: (device, ClaimNames) of EBS volumes behind a PersistentVolume."""
        rows = []
        for t in self.devices.values():
            shares = dict(t.episode.top(self.top))
            if shares:
                rest = sum(s[2] for n, s in t.episode.shares().items() if n not in shares)
                if rest:
                    shares[OTHER] = rest
            rows.append((t.device, t.top.counters(), shares, t.episode.ongoing,
                         t.episode.seconds))
        named, claims = [], []
        kube = self.kube
        if kube is not None:
            exported = {w for row in rows for w in row[1]} | {w for row in rows for w in row[2]}
            for w in self.cgroups.workloads:
                if w.pod_uid and w.name in exported:
                    found = kube.names(w.pod_uid, w.container_id)
                    if found is not None:
                        named.append((w.name,) + found)
            for t in self.devices.values():
                claim = kube.claims.get(t.device.serial)
                if claim is not None:
                    claims.append((t.device, claim))
        return {"devices": rows, "workloads": sorted(set(named)), "claims": claims}


def with_exceeded_seconds(interval, deltas: dict) -> dict:
    """Each delta with a fifth value: the interval's length times the workload's share of
    the device's ops when the interval counted as exceeded, else 0."""
    device_ops = interval.op("read").ops + interval.op("write").ops
    if not interval.throttled() or not device_ops:
        return {name: tuple(d) + (0.0,) for name, d in deltas.items()}
    seconds = interval.seconds
    return {name: tuple(d) + (seconds * min((d[0] + d[1]) / device_ops, 1.0),)
            for name, d in deltas.items()}


def merged(a: dict, b: dict) -> dict:
    out = dict(a)
    for name, values in b.items():
        old = out.get(name)
        out[name] = values if old is None else tuple(x + y for x, y in zip(old, values))
    return out


COUNTERS = (
    (m.WORKLOAD_READ_OPS, 0, "Read operations of the workload (a cgroup) on the device."),
    (m.WORKLOAD_WRITE_OPS, 1, "Write operations of the workload (a cgroup) on the device."),
    (m.WORKLOAD_READ_BYTES, 2, "Bytes the workload (a cgroup) read from the device."),
    (m.WORKLOAD_WRITE_BYTES, 3, "Bytes the workload (a cgroup) wrote to the device."),
    (m.WORKLOAD_EXCEEDED_SECONDS, 4, "Seconds counted as exceeded on the device, each "
     "split by the workload's share of the device's ops in it."),
)


def families(view) -> list:
    """The workload families from a view, written as every other family is."""
    from nitrometer.agent.exposition import Family, labelstr

    names = m.DEVICE_LABELS + ("workload",)
    rows = sorted(view["devices"], key=lambda row: row[0].name)
    out = []
    for name, index, doc in COUNTERS:
        fam = Family(name, "counter", doc + " The top workloads by ops over the last minute "
                     "have their own series; the rest add to workload=\"other\".")
        for device, counters, _shares, _ongoing, _seconds in rows:
            values = (device.name, device.serial, device.kind)
            for workload in sorted(counters):
                fam.add(labelstr(names, values + (workload,)), counters[workload][index])
        out.append(fam)
    share = Family(m.WORKLOAD_EXCEEDED_SHARE, "gauge", "Share of the device's ops the "
                   "workload did in the exceeded intervals of the current or last episode.")
    for device, _counters, shares, _ongoing, _seconds in rows:
        values = (device.name, device.serial, device.kind)
        for workload in sorted(shares):
            share.add(labelstr(names, values + (workload,)), shares[workload])
    out.append(share)
    if view["workloads"]:
        info = Family(m.WORKLOAD_INFO, "gauge", "Kubernetes names of a workload; value 1.")
        for workload, namespace, pod, container in view["workloads"]:
            info.add(labelstr(("workload", "namespace", "pod", "container"),
                              (workload, namespace, pod, container)), 1)
        out.append(info)
    if view["claims"]:
        claims = Family(m.VOLUME_CLAIM_INFO, "gauge", "The PersistentVolume and claim "
                        "behind an EBS volume; value 1.")
        for device, c in sorted(view["claims"], key=lambda row: row[0].name):
            claims.add(labelstr(m.DEVICE_LABELS + ("persistentvolume", "namespace",
                                                   "persistentvolumeclaim"),
                                (device.name, device.serial, device.kind, c.persistentvolume,
                                 c.namespace, c.persistentvolumeclaim)), 1)
        out.append(claims)
    return out
