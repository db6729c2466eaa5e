"""What every page source shares: the device it reads, the read() interface, the clock."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Protocol

from nitrometer.errors import ConfigError

KIND_EBS = "ebs"
KIND_INSTANCE_STORE = "instance_store"
KIND_OTHER = "other"  # an NVMe device that is not Amazon's: listed, never polled
# The longest single wait: inputs are bounded when parsed, so a deadline further off comes
# from a crafted recording's times; it shortens the wait rather than overflow the timer.
MAX_WAIT = 86400.0


@dataclass(frozen=True)
class Device:
    name: str  # block device name, nvme1n1
    path: str  # what is opened for the ioctl, /dev/nvme1n1
    kind: str  # ebs | instance_store | other
    serial: str  # EBS: the volume id vol-...; instance store: the AWS... serial
    model: str
    controller: str = ""  # nvme1
    bdev: str = ""  # EBS: the name given at attach time (sdf, /dev/xvdf)
    firmware: str = ""
    nsid: int = 1

    @property
    def labels(self) -> dict[str, str]:
        return {"device": self.name, "serial": self.serial, "kind": self.kind}


class PageSource(Protocol):
    device: Device

    def read(self) -> tuple[bytes, float]:
        """One raw page and the monotonic time it was read (the source's clock)."""

    def close(self) -> None: ...


class Clock:
    """Real time. Sources and loops take a clock so simulation and replay can run faster."""

    speed = 1.0

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep_until(self, deadline: float, stop=None) -> None:
        """Sleep until deadline (monotonic); stop, a threading.Event, wakes it early."""
        delay = min(max(deadline - self.monotonic(), 0.0), MAX_WAIT)
        if stop is not None:
            stop.wait(delay)
        elif delay:
            time.sleep(delay)


class FastClock(Clock):
    """Time that runs `speed` times faster than the wall clock (speed 0: no waiting at all)."""

    def __init__(self, speed: float = 0.0, start: float | None = None):
        self.speed = speed
        # Where its time starts: now (like a monotonic clock), or a given time (tests).
        self._start_real = time.monotonic() if start is None else start
        self._virtual = 0.0

    def monotonic(self) -> float:
        if self.speed:
            return self._start_real + (time.monotonic() - self._start_real) * self.speed
        return self._start_real + self._virtual

    def sleep_until(self, deadline: float, stop=None) -> None:
        if self.speed:
            real_delay = min(max(deadline - self.monotonic(), 0.0) / self.speed, MAX_WAIT)
            if stop is not None:
                stop.wait(real_delay)
            else:
                time.sleep(real_delay)
        else:
            self._virtual = max(self._virtual, deadline - self._start_real)


@dataclass(frozen=True)
class SourceSpec:
    """--source: ioctl | nvme-cli | replay:FILE | simulate:TYPE[:SCENARIO[:EBS,...]]."""

    kind: str
    target: str = ""  # replay: the file; simulate: the instance type
    scenario: str = ""  # simulate: the scenario name
    ebs_volumes: tuple[str, ...] = ()  # simulate: EBS volume types attached (gp3, io2)

    def __str__(self) -> str:
        parts = [self.kind, self.target, self.scenario, ",".join(self.ebs_volumes)]
        while parts and not parts[-1]:
            parts.pop()
        return ":".join(parts)


SOURCE_KINDS = ("ioctl", "nvme-cli", "replay", "simulate")


def parse_source(text: str) -> SourceSpec:
    kind, _, rest = text.partition(":")
    if kind not in SOURCE_KINDS:
        raise ConfigError(
            f"--source {text!r}: expected ioctl, nvme-cli, replay:FILE or "
            "simulate:TYPE[:SCENARIO[:EBS,...]]"
        )
    if kind in ("ioctl", "nvme-cli"):
        if rest:
            raise ConfigError(f"--source {text!r}: {kind} takes no argument")
        return SourceSpec(kind)
    if not rest:
        what = "FILE" if kind == "replay" else "an instance type, e.g. simulate:i3en.xlarge"
        raise ConfigError(f"--source {text!r}: {kind} needs {what}")
    if kind == "replay":
        return SourceSpec(kind, rest)
    target, _, rest = rest.partition(":")
    scenario, _, volumes = rest.partition(":")
    return SourceSpec(kind, target, scenario or "steady",
                      tuple(v for v in volumes.split(",") if v))
