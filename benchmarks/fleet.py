"""Agents to measure: `nitrometer run` on simulated devices or on fake ioctl devices.

Each agent runs as its own process through benchmarks.agent_probe, which is
`nitrometer run` plus a note of when each tick started (for the jitter figures).
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import weakref
from pathlib import Path

import psutil

from benchmarks.common import PYTHON, ROOT
from devkit.ports import free_port

SIM_1 = "simulate:i3en.large:steady"  # one instance-store volume


def simulated_spec(devices: int) -> str:
    """i3en.6xlarge has two instance-store volumes; the rest are EBS volumes."""
    if devices == 1:
        return SIM_1
    volumes = ",".join(("gp3", "io2")[i % 2] for i in range(devices - 2))
    return f"simulate:i3en.6xlarge:steady:{volumes}"


# One second of a busy local disk, per IO-size band (the page's five bands): IO size in
# bytes, reads, writes, and the power-of-two latency bins they mostly land in (bin 7 is
# 64-128 us).
BANDS = ((512, 900, 300, 6, 5), (4096, 11_000, 4_000, 7, 5), (8192, 3_000, 1_500, 7, 6),
         (32768, 3_000, 1_500, 8, 7), (131_072, 2_100, 700, 9, 8))
READS_PER_SECOND = sum(band[1] for band in BANDS)
AGE = 36_000  # seconds of that load behind each device before the first page
# Pages per device, one a poll, after which the device stays still: enough for the longest
# run on a fleet (section 5, 330 s) and its start-up. 3.2 MiB of tmpfs per device.
GROWTH_SECONDS = 400
MEMORY_FS = Path("/dev/shm")


def in_memory(owner: object, root: Path) -> Path:
    """A directory on tmpfs, reached as `root`, removed with `owner`: the fake device reads
    each page of a sequence from its file once, which on a disk file system costs the
    reading process more than the read itself does."""
    if not (MEMORY_FS.is_dir() and os.access(MEMORY_FS, os.W_OK)):
        return root
    target = Path(tempfile.mkdtemp(prefix="nitrometer-fake-", dir=MEMORY_FS))
    weakref.finalize(owner, shutil.rmtree, target, ignore_errors=True)
    root.parent.mkdir(parents=True, exist_ok=True)
    root.symlink_to(target, target_is_directory=True)
    return root


def busy_second(builder, second: int, times: int = 1) -> None:
    """`times` seconds of the load: the same ops every second, so a page's read ops say how
    many seconds it is into the run, but a share that moves from second to second one
    latency bin slower, and a short spell over the instance's IOPS limit every 30 s."""
    slow = (second % 10) / 20
    over = {("instance", "iops"): 250_000} if second % 30 < 3 and times == 1 else None
    for band, (size, reads, writes, read_bin, write_bin) in enumerate(BANDS):
        slow_reads, slow_writes = int(reads * slow) * times, int(writes * slow) * times
        builder.advance(reads * times - slow_reads, writes * times - slow_writes,
                        read_bin=read_bin, write_bin=write_bin, read_size=size,
                        write_size=size, band=band, exceeded=over, queue=1 + second % 4)
        builder.advance(slow_reads, slow_writes, read_bin=read_bin + 1,
                        write_bin=write_bin + 1, read_size=size, write_size=size, band=band)
        over = None


def growing_pages(device_index: int, seconds: int) -> list[bytes]:
    """The pages a device shows over `seconds` polls, each one second of load past the last."""
    from devkit.pages import PageBuilder

    builder = PageBuilder("instance_store")
    busy_second(builder, 0, times=AGE + 600 * device_index)  # devices of different ages
    pages = []
    for second in range(seconds):
        busy_second(builder, second)
        pages.append(builder.page())
    return pages


class FakeFleet:
    """N instance-store devices (8 KiB pages, five IO-size bands: the largest exposition)
    behind the fake NVMe shim, with the sysfs tree discovery walks. Each device's page
    grows by one second of load at each read, for `seconds` reads, as a busy disk's does, so
    the agent decodes, checks and summarizes real growth every second."""

    def __init__(self, root: Path, shim: Path, devices: int, seconds: int = GROWTH_SECONDS):
        from devkit.fakedev import MODEL_INSTANCE_STORE, FakeNvme, identify_bytes

        self.sysfs, self.dev = root / "sys", root / "dev"
        self.dev.mkdir(parents=True)
        self.fake = FakeNvme(in_memory(self, root / "fake"), shim, log_commands=False)
        self.seconds = seconds
        self.paths: list[str] = []
        for i in range(1, devices + 1):
            serial = f"AWS{i:017d}"
            ctrl = self.sysfs / "class" / "nvme" / f"nvme{i}"
            (ctrl / f"nvme{i}n1").mkdir(parents=True)
            (ctrl / f"nvme{i}n1" / "nsid").write_text("1\n")
            for attr, value in (("model", MODEL_INSTANCE_STORE), ("serial", serial),
                                ("firmware_rev", "0"), ("state", "live")):
                (ctrl / attr).write_text(value + "\n")
            path = str(self.dev / f"nvme{i}n1")
            pages = growing_pages(i, seconds)
            self.fake.add(path, page=pages[0],
                          identify=identify_bytes(serial, MODEL_INSTANCE_STORE))
            self.fake.set_sequence(path, pages)
            self.paths.append(path)

    def positions(self) -> list[int]:
        """The index of the page each device serves next: at seconds - 1 its growth ended."""
        return [self.fake.position(path) for path in self.paths]

    def args(self) -> list[str]:
        return ["--source=ioctl", f"--path.sysfs={self.sysfs}", f"--path.dev={self.dev}",
                "--instance.type=i3en.24xlarge"]

    def env(self) -> dict[str, str]:
        return self.fake.env()


class Agent:
    def __init__(self, label: str, args: list[str], workdir: Path, env=None, preexec_fn=None,
                 fleet: FakeFleet | None = None):
        self.label = label
        self.fleet = fleet  # the fake devices it reads, if any
        self.port = free_port()
        self.ticks_file = workdir / f"ticks-{self.port}.json"
        self.log_file = workdir / f"agent-{self.port}.log"
        argv = [PYTHON, "-m", "benchmarks.agent_probe", str(self.ticks_file), *args,
                f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warning"]
        with open(self.log_file, "wb") as log:
            self.proc = subprocess.Popen(argv, cwd=ROOT, env=env or dict(os.environ),
                                         stdout=log, stderr=subprocess.STDOUT,
                                         preexec_fn=preexec_fn)
        self.ps = psutil.Process(self.proc.pid)

    def scrape(self, timeout: float = 10.0, headers=None) -> tuple[bytes, float]:
        """The /metrics body and the seconds from connecting to the last byte."""
        start = time.perf_counter()
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request("GET", "/metrics", headers=headers or {})
            resp = conn.getresponse()
            body = resp.read()
            if resp.status != 200:
                raise RuntimeError(f"{self.label}: /metrics answered {resp.status}")
        finally:
            conn.close()
        return body, time.perf_counter() - start

    def wait_ready(self, devices: int, timeout: float = 90.0) -> None:
        """Until /metrics shows every device polled at least twice (a delta exists)."""
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.label} exited: {self.log()}")
            try:
                body = self.scrape()[0].decode()
                ready = sum(1 for line in body.splitlines()
                            if line.startswith("ec2_nvme_read_ops_total{"))
                ticks = metric(body, "nitrometer_poll_duration_seconds_count")
                if ready >= devices and ticks >= 2:
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.label} not ready in {timeout:.0f} s: {self.log()}")
            time.sleep(0.5)

    def stop(self) -> list[float]:
        """SIGTERM, wait, and the monotonic start time of every tick."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise RuntimeError(f"{self.label} did not stop on SIGTERM") from None
        if self.proc.returncode != 0:
            raise RuntimeError(f"{self.label} exited {self.proc.returncode}: {self.log()}")
        return json.loads(self.ticks_file.read_text())

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def log(self) -> str:
        try:
            return self.log_file.read_text()[-1500:]
        except OSError:
            return ""


def metric(body: str, name: str) -> float:
    """The value of an unlabelled sample in an exposition (0 when absent)."""
    for line in body.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{}"):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def series(text: str, name: str) -> dict[str, float]:
    """Every sample of one series name in an exposition (text or OpenMetrics): labels -> value."""
    found = {}
    for line in text.splitlines():
        if not line.startswith(name) or line[len(name):len(name) + 1] not in ("{", " "):
            continue
        rest = line[len(name):]
        end = label_set_end(rest) if rest[0] == "{" else 0
        found[rest[:end]] = float(rest[end:].split()[0])  # value; a timestamp may follow
    return found


def label_set_end(text: str) -> int:
    """Where a `{...}` label set at the start of text ends: its values may hold spaces,
    braces and escaped quotes."""
    quoted = escaped = False
    for i, c in enumerate(text):
        if escaped:
            escaped = False
        elif c == "\\":
            escaped = True
        elif c == '"':
            quoted = not quoted
        elif c == "}" and not quoted:
            return i + 1
    raise ValueError(f"unterminated label set: {text[:80]}")


def samples_of(text: str) -> int:
    """Samples in an exposition: every line that is not a comment (# HELP, # TYPE, # EOF)."""
    return sum(1 for line in text.splitlines() if line and not line.startswith("#"))
