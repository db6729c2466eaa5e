"""A fake NVMe device for the real ioctl path: an LD_PRELOAD shim plus fixture files.

    shim = build_shim(tmp_dir)             # gcc once per session
    fake = FakeNvme(tmp_path, shim)
    fake.add("/dev/nvme1n1", identify=identify_bytes(...), page=encode_page(...))
    subprocess.run(cmd, env=fake.env())
    fake.fail("/dev/nvme1n1", "errno=EIO")   # takes effect on the next ioctl
    fake.owner("/dev/nvme1n1", 0, 0, 0o600)  # who may open it (EC2's by default, see below)
    fake.commands("/dev/nvme1n1")          # every admin command the process sent

The shim keeps what these files say in memory and reads them again only when the fixture's
generation counter (a file it maps) has moved: every change goes through this class, which
bumps it after writing.
"""

from __future__ import annotations

import grp
import os
import re
import shutil
import struct
import subprocess
import sys
from pathlib import Path

SHIM_SOURCES = [Path(__file__).with_name(name) for name in ("fakenvme.c", "fakestate.c")]
AMAZON_VID = 0x1D0F
MODEL_EBS = "Amazon Elastic Block Store"
MODEL_INSTANCE_STORE = "Amazon EC2 NVMe Instance Storage"
GENERATION = "generation"  # uint64 the shim maps: bumped after every change to the files
STATE = "state"  # per device: the position of each log's sequence, uint32 by log id
STATE_SIZE = 256 * 4


def ec2_owner(path: str) -> tuple[int, int, int]:
    """(uid, gid, mode) EC2's udev gives a node: a controller (/dev/nvme1) is root:root 0600,
    a namespace (/dev/nvme1n1, a block device) root:disk 0660."""
    if re.fullmatch(r"nvme\d+", os.path.basename(path)):
        return 0, 0, 0o600
    return 0, grp.getgrnam("disk").gr_gid, 0o660


def build_shim(out_dir: Path) -> Path:
    gcc = shutil.which("gcc")
    if gcc is None:
        raise RuntimeError("gcc is needed to build the fake NVMe device shim")
    out = Path(out_dir) / "fakenvme.so"
    subprocess.run([gcc, "-shared", "-fPIC", "-O1", "-Wall", "-Werror", "-o", str(out),
                    *map(str, SHIM_SOURCES), "-ldl", "-lpthread"], check=True)
    return out


def _padded(text: str, size: int) -> bytes:
    return text.encode().ljust(size, b" ")[:size]


def identify_bytes(serial: str, model: str, *, vid: int = AMAZON_VID, firmware: str = "1.0",
                   bdev: str = "") -> bytes:
    """An Identify Controller structure with the fields docs/logpage.md lists."""
    buf = bytearray(4096)
    struct.pack_into("<HH", buf, 0, vid, vid)
    buf[4:24] = _padded(serial, 20)
    buf[24:64] = _padded(model, 40)
    buf[64:72] = _padded(firmware, 8)
    if bdev:
        buf[3072:3104] = _padded(bdev, 32)
    return bytes(buf)


def parse_commands(text: str) -> list[dict[str, int]]:
    return [{k: int(v, 0) for k, v in (f.split("=") for f in line.split())}
            for line in text.splitlines() if line]


class FakeNvme:
    """Fixture files for the shim: one directory per fake device path.

    `log_commands=False` leaves out the log of admin commands (commands() is then empty):
    a benchmark's fleet reads for minutes, and the log costs the reading process a file
    append per command."""

    def __init__(self, root: Path, shim: Path, *, log_commands: bool = True):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.shim = Path(shim)
        self.log_commands = log_commands
        self._dirs: dict[str, Path] = {}
        self._added = 0
        generation = self.root / GENERATION
        if not generation.exists():
            generation.write_bytes(bytes(8))

    def _changed(self) -> None:
        """Tells every process with the shim to read the fixture files again."""
        fd = os.open(self.root / GENERATION, os.O_RDWR)
        try:
            (value,) = struct.unpack("<Q", os.pread(fd, 8, 0))
            os.pwrite(fd, struct.pack("<Q", value + 1), 0)
        finally:
            os.close(fd)

    def add(self, path: str, *, identify: bytes, page: bytes | None = None,
            log_pages: dict[int, bytes] | None = None,
            owner: tuple[int, int, int] | None = None) -> Path:
        """`owner`: (uid, gid, mode) the node has; default EC2's (ec2_owner)."""
        devdir = self.root / f"dev{self._added}"
        devdir.mkdir()
        self._added += 1
        (devdir / "identify.bin").write_bytes(identify)
        (devdir / STATE).write_bytes(bytes(STATE_SIZE))
        if not self.log_commands:
            (devdir / "commands.off").touch()
        uid, gid, mode = owner or ec2_owner(path)
        (devdir / "mode").write_text(f"{uid} {gid} {mode:o}\n")
        pages = dict(log_pages or {})
        if page is not None:
            pages[0xD0] = page
        for log_id, data in pages.items():
            (devdir / f"log-{log_id:02x}.bin").write_bytes(data)
        self._dirs[path] = devdir
        self._write_map()
        return devdir

    def owner(self, path: str, uid: int, gid: int, mode: int) -> None:
        tmp = self._dirs[path] / "mode.tmp"
        tmp.write_text(f"{uid} {gid} {mode:o}\n")
        tmp.replace(self._dirs[path] / "mode")
        self._changed()

    def remove(self, path: str) -> None:
        del self._dirs[path]
        self._write_map()

    def _write_map(self) -> None:
        lines = "".join(f"{path} {devdir}\n" for path, devdir in self._dirs.items())
        tmp = self.root / "devices.tmp"
        tmp.write_text(lines)
        tmp.replace(self.root / "devices")
        self._changed()

    def set_page(self, path: str, page: bytes, log_id: int = 0xD0) -> None:
        """Atomic, so a device read while the page changes sees the old or the new one."""
        tmp = self._dirs[path] / f"log-{log_id:02x}.tmp"
        tmp.write_bytes(page)
        tmp.replace(self._dirs[path] / f"log-{log_id:02x}.bin")
        self._changed()

    def set_sequence(self, path: str, pages: list[bytes], log_id: int = 0xD0) -> None:
        """Each whole read gets the next page of `pages`; the last one stays."""
        devdir = self._dirs[path]
        for i, page in enumerate(pages):
            (devdir / f"log-{log_id:02x}.{i}.bin").write_bytes(page)
        (devdir / f"log-{log_id:02x}.seq").write_text(f"{len(pages)}\n")
        self._state(path, log_id, 0)
        self._changed()

    def _state(self, path: str, log_id: int, value: int | None = None) -> int:
        """A log's position in the device's state file, written in place (the shim maps it)."""
        fd = os.open(self._dirs[path] / STATE, os.O_RDWR)
        try:
            if value is not None:
                os.pwrite(fd, struct.pack("<I", value), 4 * log_id)
            (current,) = struct.unpack("<I", os.pread(fd, 4, 4 * log_id))
            return current
        finally:
            os.close(fd)

    def position(self, path: str, log_id: int = 0xD0) -> int:
        """How far a sequence has been read (the next page's index)."""
        return self._state(path, log_id)

    def alias(self, path: str, existing: str) -> None:
        """The same fake device under a second path (a renamed node)."""
        self._dirs[path] = self._dirs[existing]
        self._write_map()

    def fail(self, path: str, control: str) -> None:
        """gone | errno=EACCES|EIO|ENODEV|... | hang=MS | hang-identify=MS | status=HEX;
        "" heals."""
        tmp = self._dirs[path] / "control.tmp"
        tmp.write_text(control + "\n")
        tmp.replace(self._dirs[path] / "control")
        self._changed()

    def commands(self, path: str) -> list[dict[str, int]]:
        log = self._dirs[path] / "commands"
        return parse_commands(log.read_text()) if log.exists() else []

    def open_flags(self, path: str) -> list[int]:
        log = self._dirs[path] / "opens"
        if not log.exists():
            return []
        return [int(line.split("=")[1], 0) for line in log.read_text().splitlines()]

    def clear_log(self, path: str) -> None:
        for name in ("commands", "opens"):
            (self._dirs[path] / name).unlink(missing_ok=True)

    def env(self, base: dict[str, str] | None = None) -> dict[str, str]:
        env = dict(os.environ if base is None else base)
        env["LD_PRELOAD"] = str(self.shim)
        env["FAKENVME_DIR"] = str(self.root)
        env.pop("PYTHONSTARTUP", None)
        return env

    def run(self, args: list[str], timeout: float = 60) -> subprocess.CompletedProcess:
        """Runs a command with the shim loaded, capturing text output."""
        return subprocess.run(args, env=self.env(), capture_output=True, text=True,
                              timeout=timeout)

    def python(self, code: str, timeout: float = 60) -> subprocess.CompletedProcess:
        return self.run([sys.executable, "-c", code], timeout=timeout)

    def nitrometer(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        return self.run([sys.executable, "-m", "nitrometer", *args], timeout=timeout)
