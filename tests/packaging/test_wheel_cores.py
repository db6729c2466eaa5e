"""The cores inside the two wheels give the very same results, bit for bit: the native
driver is linked against each wheel's libnmcore.so and the aarch64 one runs under qemu."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.support.prometheus import require

pytestmark = [pytest.mark.wheel, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]
ITERATIONS = "3000"
TOOLCHAIN = {"x86_64": "gcc", "aarch64": "aarch64-linux-gnu-gcc"}
SYSROOT = "/usr/aarch64-linux-gnu"  # the aarch64 loader and libc (libc6-arm64-cross)


def driver_against_wheel(wheel: Path, arch: str, out: Path) -> list[str]:
    """Builds the driver for arch, linked to the wheel's core; returns how to run it."""
    lib_dir = out / arch
    lib_dir.mkdir()
    with zipfile.ZipFile(wheel) as whl:
        (lib_dir / "libnmcore.so").write_bytes(whl.read("nitrometer/libnmcore.so"))
    driver = lib_dir / "driver"
    subprocess.run([require(TOOLCHAIN[arch]), "-std=c11", "-O2", "-include", "stdint.h",
                    "-include", "stddef.h", f"-I{ROOT / 'native'}",
                    str(ROOT / "tests/native/sanitize_driver.c"), f"-L{lib_dir}", "-lnmcore",
                    "-o", str(driver)], check=True, timeout=300)
    if arch == "x86_64":
        return [str(driver)]
    return [require("qemu-aarch64"), "-L", SYSROOT, str(driver)]


def test_aarch64_wheel_core_matches_x86_64(wheels, tmp_path):
    seeds = tmp_path / "seeds"
    subprocess.run([str(ROOT / "tests/tools/native-seeds"), str(seeds)], check=True,
                   env={**os.environ, "PY": sys.executable}, timeout=300)
    seed_files = sorted(str(p) for p in seeds.glob("*.bin"))
    digests = {}
    for arch in ("x86_64", "aarch64"):
        command = driver_against_wheel(wheels[arch], arch, tmp_path)
        env = {**os.environ, "LD_LIBRARY_PATH": str(tmp_path / arch)}
        done = subprocess.run([*command, ITERATIONS, *seed_files], env=env,
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-2000:]
        digests[arch] = done.stdout.strip()
    assert digests["x86_64"] and "digest" in digests["x86_64"], digests
    assert digests["aarch64"] == digests["x86_64"]
