"""Builds the C core as a plain shared library and its cffi declarations, and the privileged
reader (native/reader/) as an executable beside them; not installed.

The library has no Python.h in it: nitrometer/native.py loads it through cffi's ABI mode
(out-of-line), so one build serves every CPython from 3.9 on, and any C compiler for the
target will do (`CC="python -m ziglang cc -target aarch64-linux-gnu.2.17"` for Graviton).
"""

from __future__ import annotations

import os
import shlex
import subprocess
from pathlib import Path

from cffi import FFI

HERE = Path(__file__).resolve().parent
HEADER = HERE / "nitrometer_native.h"
SOURCES = tuple(sorted(p.name for p in HERE.glob("*.c")))
LIBRARY = "libnmcore.so"  # what native.py dlopens, beside it in the package
FFI_MODULE = "_ffi.py"  # nitrometer._ffi: the declarations, pure Python
READER = "nitrometer-reader"  # what nitrometer/keeper.py executes, beside the library
READER_SOURCES = (*sorted(HERE.glob("reader/*.c")), HERE / "nvme_ioctl.c")
CFLAGS = ("-O2", "-std=c11", "-fPIC", "-Wall", "-Wextra",
          "-Werror=implicit-function-declaration")

ffibuilder = FFI()
ffibuilder.cdef(HEADER.read_text())
ffibuilder.set_source("nitrometer._ffi", None)


def compiler() -> list[str]:
    return shlex.split(os.environ.get("CC") or "cc")


def _compile(command: list[str]) -> None:
    try:
        subprocess.run(command, check=True)
    except FileNotFoundError:
        raise SystemExit(f"native/build.py: no C compiler ({command[0]}): install gcc, or "
                         "install nitrometer from a wheel, which needs none") from None


def build_reader(out: Path, cc: list[str] | None = None, flags: tuple[str, ...] = ()) -> Path:
    """The keeper and reader executable (native/reader/), with the core's ioctl code."""
    _compile([*(cc or compiler()), *CFLAGS, *flags, f"-I{HERE}",
              *(str(s) for s in READER_SOURCES), "-pthread", "-o", str(out)])
    out.chmod(0o755)  # run by the unit's dynamic user too
    return out


def build(package_dir: Path, cc: list[str] | None = None) -> list[Path]:
    """Writes the library, the declarations module and the reader into package_dir
    (nitrometer/)."""
    package_dir.mkdir(parents=True, exist_ok=True)
    library = package_dir / LIBRARY
    _compile([*(cc or compiler()), *CFLAGS, "-shared", f"-I{HERE}",
              *(str(HERE / s) for s in SOURCES), "-lm", "-o", str(library)])
    module = package_dir / FFI_MODULE
    ffibuilder.emit_python_code(str(module))
    return [library, module, build_reader(package_dir / READER, cc)]


if __name__ == "__main__":
    import sys

    if sys.argv[1:2] == ["--reader"]:  # --reader OUT [CFLAGS...]: that program alone
        print(build_reader(Path(sys.argv[2]), flags=tuple(sys.argv[3:])))
    else:
        for path in build(HERE.parent / "nitrometer"):
            print(path)
