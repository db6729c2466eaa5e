"""The wheels: manylinux2014 for x86_64 and aarch64 as auditwheel sees them, holding the core
built for their architecture, the sample pages and the lean set of dependencies."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

from tests.packaging.conftest import ARCHS
from tests.support.prometheus import require

pytestmark = pytest.mark.wheel
ROOT = Path(__file__).resolve().parents[2]
ELF_MACHINE = {"x86_64": 62, "aarch64": 183}  # e_machine: EM_X86_64, EM_AARCH64
AARCH64_SYSROOT = "/usr/aarch64-linux-gnu"  # the aarch64 loader and libc (libc6-arm64-cross)
CORES = ("_nmcore.abi3.so", "libnmcore.so")


@pytest.mark.parametrize("arch", ARCHS)
def test_auditwheel_confirms_manylinux2014(wheels, arch):
    done = subprocess.run([sys.executable, "-m", "auditwheel", "show", str(wheels[arch])],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    report = " ".join(done.stdout.split())
    assert f'consistent with the following platform tag: "manylinux_2_17_{arch}"' in report
    # Only glibc, and nothing newer than Amazon Linux 2's 2.26 (manylinux2014 is 2.17);
    # the reader's threads are in libpthread before glibc 2.34.
    libraries = set(re.findall(r"(\S+\.so\.\d+) with versions", report))
    assert "libc.so.6" in libraries, libraries
    assert libraries <= {"libc.so.6", "libm.so.6", "libpthread.so.0"}, libraries
    glibc = [tuple(map(int, v)) for v in re.findall(r"GLIBC_(\d+)\.(\d+)", report)]
    assert glibc and max(glibc) <= (2, 17), glibc


@pytest.mark.parametrize("arch", ARCHS)
def test_wheel_holds_the_core_for_its_architecture(wheels, arch):
    """The cffi API-mode extension, and the plain library with its declarations for ABI mode:
    both built for the wheel's architecture, and no other compiled module."""
    with zipfile.ZipFile(wheels[arch]) as whl:
        cores = {name: whl.read(f"nitrometer/{name}") for name in CORES}
        names = set(whl.namelist())
    for core in cores.values():
        assert core[:4] == b"\x7fELF"
        assert int.from_bytes(core[18:20], "little") == ELF_MACHINE[arch]
    assert b"PyInit__nmcore" in cores["_nmcore.abi3.so"]
    assert b"PyInit" not in cores["libnmcore.so"]  # no Python in the fallback
    assert "nitrometer/_ffi.py" in names and "nitrometer/native.py" in names
    assert {n for n in names if n.endswith(".so")} == {f"nitrometer/{n}" for n in CORES}


def test_the_wheel_extension_loads_in_this_python(wheels, tmp_path):
    """One abi3 build, against one Python's headers, for every CPython from 3.9: the
    test sessions run this on each of theirs (3.9 and 3.13 in `make test`)."""
    with zipfile.ZipFile(wheels["x86_64"]) as whl:
        whl.extractall(tmp_path, [n for n in whl.namelist() if n.startswith("nitrometer/")])
    package = tmp_path / "nitrometer"
    code = ("import sys; sys.path.insert(0, sys.argv[1]); from nitrometer import native; "
            "page = native.decode(open(sys.argv[2], 'rb').read()); "
            "print(native.BINDING, sys.modules['nitrometer._nmcore'].__file__, page.kind, "
            "page['total_read_ops'])")
    env = {k: v for k, v in os.environ.items() if k != "NITROMETER_NATIVE"}
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path),
                           str(package / "data/samples/ebs.bin")], capture_output=True,
                          text=True, timeout=120, cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr
    binding, loaded, kind, reads = done.stdout.split()
    assert (binding, loaded, kind) == ("api", str(package / "_nmcore.abi3.so"), "ebs")
    assert int(reads) > 0


@pytest.mark.parametrize("arch", ARCHS)
def test_wheel_holds_the_privileged_reader_for_its_architecture(wheels, arch, tmp_path):
    """The keeper and reader program, executable, built for the wheel's architecture, and
    running there (aarch64 under qemu, with that architecture's loader and libc)."""
    with zipfile.ZipFile(wheels[arch]) as whl:
        info = whl.getinfo("nitrometer/nitrometer-reader")
        program = whl.read(info)
    assert (info.external_attr >> 16) & 0o777 == 0o755
    assert program[:4] == b"\x7fELF"
    assert int.from_bytes(program[18:20], "little") == ELF_MACHINE[arch]
    path = tmp_path / "nitrometer-reader"
    path.write_bytes(program)
    path.chmod(0o755)
    command = [str(path)] if arch == "x86_64" else \
        [require("qemu-aarch64"), "-L", AARCH64_SYSROOT, str(path)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2  # started by hand, it says how it is meant to run
    assert done.stderr.startswith("usage: nitrometer-reader CONTROL_FD DEV_ROOT AGENT_PID")


def test_wheel_ships_the_sample_pages(wheels):
    with zipfile.ZipFile(wheels["x86_64"]) as whl:
        ebs = whl.read("nitrometer/data/samples/ebs.bin")
        store = whl.read("nitrometer/data/samples/instance-store.bin")
    samples = ROOT / "nitrometer/data/samples"
    assert ebs == (samples / "ebs.bin").read_bytes() and len(ebs) == 4096
    assert store == (samples / "instance-store.bin").read_bytes() and len(store) == 8192


def test_pandas_and_pyarrow_are_only_in_the_savings_extra(wheels):
    with zipfile.ZipFile(wheels["x86_64"]) as whl:
        meta_name = next(n for n in whl.namelist() if n.endswith(".dist-info/METADATA"))
        meta = Parser().parsestr(whl.read(meta_name).decode())
    assert meta["Requires-Python"] == ">=3.9"
    requires = meta.get_all("Requires-Dist")
    heavy = [r for r in requires if r.lower().startswith(("pandas", "pyarrow"))]
    assert heavy and all('extra == "savings"' in r for r in heavy), heavy
    base = [r for r in requires if "extra ==" not in r]
    assert base and not [r for r in base if r.lower().startswith(("pandas", "pyarrow"))]


def test_the_wheel_carries_the_license_and_no_numpy_in_its_base(wheels):
    with zipfile.ZipFile(wheels["x86_64"]) as whl:
        names = whl.namelist()
        meta_name = next(n for n in names if n.endswith(".dist-info/METADATA"))
        meta = Parser().parsestr(whl.read(meta_name).decode())
        [license_name] = [n for n in names if n.endswith(".dist-info/licenses/LICENSE")]
        assert whl.read(license_name) == (ROOT / "LICENSE").read_bytes()
    assert meta["License-Expression"] == "Apache-2.0"
    numpy = [r for r in meta.get_all("Requires-Dist") if r.lower().startswith("numpy")]
    assert [r.split("extra == ")[1] for r in numpy] == ['"savings"']
