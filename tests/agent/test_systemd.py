"""The shipped unit file: systemd-analyze verify clean, security exposure at most 2.0."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parents[2] / "deploy" / "nitrometer.service"
MAX_EXPOSURE = 2.0


def analyze():
    path = shutil.which("systemd-analyze")
    if path is None:
        pytest.fail("systemd-analyze is not installed: run `make sysdeps`")
    return path


def test_unit_verifies_clean(tmp_path):
    # verify needs ExecStart to exist: point a copy at this venv's nitrometer.
    binary = Path(sys.executable).parent / "nitrometer"
    text = UNIT.read_text().replace("/opt/nitrometer/bin/nitrometer", str(binary))
    assert str(binary) in text
    unit = tmp_path / "nitrometer.service"
    unit.write_text(text)
    done = subprocess.run([analyze(), "verify", str(unit)], capture_output=True, timeout=60)
    assert done.returncode == 0 and done.stdout + done.stderr == b"", done.stderr.decode()


def test_security_exposure_is_at_most_2():
    done = subprocess.run([analyze(), "security", "--offline=yes", str(UNIT)],
                          capture_output=True, timeout=60)
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", done.stdout.decode())
    assert match, done.stdout.decode() + done.stderr.decode()
    assert float(match.group(1)) <= MAX_EXPOSURE


def test_unit_has_the_promised_settings():
    text = UNIT.read_text()
    for line in ("Type=notify", "WatchdogSec=", "CapabilityBoundingSet=CAP_SYS_ADMIN",
                 "NoNewPrivileges=yes", "ProtectSystem=strict", "PrivateTmp=yes",
                 "DevicePolicy=closed", "MemoryDenyWriteExecute=yes",
                 "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6",
                 "SystemCallFilter=@system-service", "LimitNOFILE=", "MemoryMax=",
                 "TasksMax="):
        assert line in text, line
