"""deploy/install.sh takes the wheel when there is one, and without one builds nothing and
says what it needs. systemd is not running here: systemctl is replaced by a recorder."""

from __future__ import annotations

import os
import subprocess
import zipfile
from pathlib import Path

import pytest

from tests.packaging.conftest import python39

pytestmark = [pytest.mark.wheel, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def target(tmp_path, deps):
    if os.geteuid() != 0:
        pytest.skip("install.sh runs as root only")
    fake_bin = tmp_path / "fake-bin"
    fake_bin.mkdir()
    (tmp_path / "unit").mkdir()  # /etc/systemd/system is there on any systemd host
    systemctl = fake_bin / "systemctl"
    systemctl.write_text(f'#!/bin/sh\necho "$*" >> {tmp_path}/systemctl.log\n')
    systemctl.chmod(0o755)
    env = {**os.environ, "PATH": f"{fake_bin}{os.pathsep}{os.environ['PATH']}",
           "PREFIX": str(tmp_path / "opt"), "UNIT_DIR": str(tmp_path / "unit"),
           "CONFIG_DIR": str(tmp_path / "etc"), "PYTHON": python39(),
           "PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(deps)}
    env.pop("CC", None)
    return tmp_path, env


def test_installs_the_given_wheel(target, wheels):
    tmp_path, env = target
    env["WHEEL"] = str(wheels["x86_64"])
    done = subprocess.run(["sh", str(ROOT / "deploy/install.sh")], env=env, capture_output=True,
                          text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    installed = next((tmp_path / "opt/lib").glob("python3.9/site-packages/nitrometer"))
    with zipfile.ZipFile(wheels["x86_64"]) as whl:  # the wheel's core, not a fresh build
        for core in ("_nmcore.abi3.so", "libnmcore.so"):
            assert (installed / core).read_bytes() == whl.read(f"nitrometer/{core}")
    assert "enable --now nitrometer.service" in (tmp_path / "systemctl.log").read_text()
    assert (tmp_path / "unit/nitrometer.service").exists()


def test_without_a_wheel_it_builds_nothing_and_says_what_it_needs(target):
    tmp_path, env = target
    env["CC"] = str(tmp_path / "no-such-compiler")
    env["WHEEL"] = ""
    script = tmp_path / "checkout/deploy/install.sh"  # a checkout with no dist/ wheels
    script.parent.mkdir(parents=True)
    script.write_bytes((ROOT / "deploy/install.sh").read_bytes())
    (script.parent / "constraints.txt").write_bytes((ROOT / "deploy/constraints.txt").read_bytes())
    done = subprocess.run(["sh", str(script)], env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 2
    assert "no wheel for" in done.stderr and "make wheels" in done.stderr
    assert not (tmp_path / "unit/nitrometer.service").exists()
