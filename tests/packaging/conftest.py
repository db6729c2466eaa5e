"""The wheels, built once per session (or taken from NITROMETER_WHEELS, where `make test`
put them), and a Python 3.9 venv with the x86_64 wheel installed where no compiler is."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ARCHS = ("x86_64", "aarch64")
COMPILERS = ("gcc", "cc", "clang", "zig", "x86_64-linux-gnu-gcc", "aarch64-linux-gnu-gcc")


def find_wheels(directory: Path) -> dict[str, Path]:
    found = {}
    for arch in ARCHS:
        matches = sorted(directory.glob(f"nitrometer-*-cp39-abi3-manylinux2014_{arch}.whl"))
        if matches:
            found[arch] = matches[-1]
    return found


@pytest.fixture(scope="session")
def wheel_dir(tmp_path_factory) -> Path:
    given = os.environ.get("NITROMETER_WHEELS")
    if given:
        return ROOT / given
    out = tmp_path_factory.mktemp("wheels")
    done = subprocess.run([str(ROOT / "tests/tools/build-wheels")], cwd=ROOT,
                          env={**os.environ, "PYTHON": sys.executable, "WHEEL_DIR": str(out)},
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    return out


@pytest.fixture(scope="session")
def wheels(wheel_dir) -> dict[str, Path]:
    found = find_wheels(wheel_dir)
    assert set(found) == set(ARCHS), f"{wheel_dir} lacks a wheel: {found}"
    return found


@pytest.fixture(scope="session")
def deps(wheel_dir, wheels) -> Path:
    """The x86_64 wheel's dependencies for CPython 3.9, so installs ask no index."""
    if not (wheel_dir / "deps").is_dir():
        done = subprocess.run([str(ROOT / "tests/tools/fetch-wheel-deps")], cwd=ROOT,
                              env={**os.environ, "WHEEL_DIR": str(wheel_dir)},
                              capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, done.stderr[-3000:]
    return wheel_dir / "deps"


def python39() -> str:
    """CPython 3.9 (Amazon Linux 2023's system Python): on PATH, or from pyenv."""
    for candidate in ("python3.9",):
        path = shutil.which(candidate)
        if path and subprocess.run([path, "-c", ""], capture_output=True).returncode == 0:
            return path
    root = subprocess.run(["pyenv", "root"], capture_output=True, text=True).stdout.strip()
    found = sorted(Path(root or "/nonexistent", "versions").glob("3.9*/bin/python3.9"))
    if not found:
        pytest.fail("no CPython 3.9 to install the wheel with (install it with pyenv)")
    return str(found[-1])


class Install:
    """A venv with the x86_64 wheel installed; commands run with a PATH holding no compiler
    and from a directory away from the checkout, so the installed package is what runs."""

    def __init__(self, venv: Path, env: dict[str, str], cwd: Path):
        self.venv, self.env, self.cwd = venv, env, cwd

    def run(self, *args: str, timeout: float = 120, env: dict[str, str] | None = None,
            **kw) -> subprocess.CompletedProcess:
        return subprocess.run([str(self.venv / "bin" / args[0]), *args[1:]],
                              env=env or self.env, cwd=self.cwd, capture_output=True,
                              text=True, timeout=timeout, **kw)

    def popen(self, *args: str, **kw) -> subprocess.Popen:
        return subprocess.Popen([str(self.venv / "bin" / args[0]), *args[1:]], env=self.env,
                                cwd=self.cwd, **kw)


@pytest.fixture(scope="session")
def installed(wheels, deps, tmp_path_factory) -> Install:
    base = tmp_path_factory.mktemp("install")
    empty_bin = base / "bin"  # PATH: the venv and this, nothing else
    empty_bin.mkdir()
    venv = base / "venv"
    path = os.pathsep.join([str(venv / "bin"), str(empty_bin)])
    for compiler in COMPILERS:
        assert shutil.which(compiler, path=path) is None, compiler
    env = {k: v for k, v in os.environ.items() if k not in ("CC", "CXX", "PYTHONPATH")}
    env.update(PATH=path, PIP_DISABLE_PIP_VERSION_CHECK="1", AWS_EC2_METADATA_DISABLED="true",
               PIP_NO_INDEX="1", PIP_FIND_LINKS=str(deps))
    subprocess.run([python39(), "-m", "venv", str(venv)], env=env, check=True, timeout=300)
    install = Install(venv, env, base)
    # Only binary distributions: nothing may be built on this host.
    done = install.run("python", "-m", "pip", "install", "-q", "--only-binary", ":all:",
                       str(wheels["x86_64"]), timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    return install
