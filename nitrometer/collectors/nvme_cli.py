"""Pages through nvme-cli: `nvme amzn stats -d -o json DEV`, rebuilt into the raw page."""

from __future__ import annotations

import re
import subprocess
import time

from nitrometer.collectors.base import Device
from nitrometer.collectors.nvme_cli_format import StatsFormatError, parse_stats
from nitrometer.errors import DeviceError

NEEDED = "nvme-cli 2.12 or newer (the first with `nvme amzn stats`)"
NVME = "nvme"


def _version(timeout: float) -> str:
    try:
        out = subprocess.run([NVME, "version"], capture_output=True, text=True,
                             timeout=timeout).stdout
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    found = re.search(r"nvme version (\S+)", out)
    return found.group(1) if found else "unknown"


class NvmeCliSource:
    """nvme-cli sends the admin command with the kernel's default timeout; a slow answer is
    waited for (on this source's own read thread), and close() ends a run still going."""

    def __init__(self, device: Device, timeout: float = 60.0):
        self.device = device
        self.timeout = timeout
        self._proc: subprocess.Popen | None = None
        self._closed = False

    def _run(self) -> subprocess.CompletedProcess:
        argv = [NVME, "amzn", "stats", "-d", "-o", "json", self.device.path]
        try:
            if self._closed:
                raise DeviceError(f"{self.device.name}: nvme-cli source is closed")
            self._proc = proc = subprocess.Popen(argv, stdout=subprocess.PIPE,
                                                 stderr=subprocess.PIPE, text=True)
            try:
                out, err = proc.communicate(timeout=self.timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.communicate()
                raise
            finally:
                self._proc = None
            return subprocess.CompletedProcess(argv, proc.returncode, out, err)
        except FileNotFoundError:
            raise DeviceError(f"{self.device.name}: `nvme` is not installed or not on PATH; "
                              f"the nvme-cli source needs {NEEDED}") from None
        except subprocess.TimeoutExpired:
            raise DeviceError(f"{self.device.name}: `{' '.join(argv)}` did not answer "
                              f"within {self.timeout:g} s") from None
        except OSError as exc:
            raise DeviceError(f"{self.device.name}: cannot run nvme: {exc.strerror}") from None

    def read(self) -> tuple[bytes, float]:
        proc = self._run()
        when = time.monotonic()
        out, err = proc.stdout, proc.stderr.strip()
        if "Invalid sub-command" in err or "Invalid plugin" in err or (
                proc.returncode and "amzn" in err and "stats" in err):
            raise DeviceError(f"{self.device.name}: nvme-cli {_version(self.timeout)} has no "
                              f"`amzn stats`; the nvme-cli source needs {NEEDED}")
        if "Not an EC2 device" in out + err:
            raise DeviceError(f"{self.device.name}: nvme-cli says it is not an EC2 device")
        if proc.returncode:
            detail = (err or out).strip().splitlines()
            raise DeviceError(f"{self.device.name}: nvme amzn stats failed (exit "
                              f"{proc.returncode}): {detail[-1] if detail else 'no output'}")
        try:
            return parse_stats(out).page(self.device.kind), when
        except StatsFormatError as exc:
            raise DeviceError(f"{self.device.name}: {exc}") from None

    def close(self) -> None:
        """Ends a run still going (agent stopping, device gone) without waiting for it."""
        self._closed = True
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.kill()
