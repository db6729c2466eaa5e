"""Builds the C core, and the privileged reader (native/reader/) as an executable beside it;
not installed.

The core is built twice from the same sources. `nitrometer/_nmcore.abi3.so` is a cffi API-mode
extension on CPython's stable ABI (Py_LIMITED_API 3.9): the compiler binds each call, so a
call costs less than half of what ABI mode's generic one does, and one build still serves
every CPython from 3.9 on. `nitrometer/libnmcore.so` + `nitrometer/_ffi.py` are the same
core as a plain library loaded through cffi's ABI mode: the fallback where the extension
cannot be built (no Python.h on the build host) or is not wanted (NITROMETER_NATIVE=abi).
Any C compiler for the target will do, for both (`CC="python -m ziglang cc -target
aarch64-linux-gnu.2.17"` for Graviton); no distutils or setuptools compiler is involved.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

from cffi import FFI

HERE = Path(__file__).resolve().parent
HEADER = HERE / "nitrometer_native.h"
SOURCES = tuple(sorted(p.name for p in HERE.glob("*.c")))
EXTENSION = "_nmcore.abi3.so"  # nitrometer._nmcore, what native.py imports first
LIMITED_API = "0x03090000"  # the stable ABI of CPython 3.9, the oldest one supported
LIBRARY = "libnmcore.so"  # what native.py dlopens otherwise, beside it in the package
FFI_MODULE = "_ffi.py"  # nitrometer._ffi: the library's declarations, pure Python
READER = "nitrometer-reader"  # what nitrometer/keeper.py executes, beside the library
READER_SOURCES = (*sorted(HERE.glob("reader/*.c")), HERE / "nvme_ioctl.c")
CFLAGS = ("-O2", "-std=c11", "-fPIC", "-Wall", "-Wextra",
          "-Werror=implicit-function-declaration")

ffibuilder = FFI()  # ABI mode: declarations only
ffibuilder.cdef(HEADER.read_text())
ffibuilder.set_source("nitrometer._ffi", None)

extension_builder = FFI()  # API mode: C that calls the core directly
extension_builder.cdef(HEADER.read_text())
extension_builder.set_source(  # the header includes nothing itself
    "nitrometer._nmcore", "#include <stddef.h>\n#include <stdint.h>\n"
    '#include "nitrometer_native.h"\n', py_limited_api=True)


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


def build_extension(out: Path, cc: list[str] | None = None,
                    python_include: str | None = None) -> Path | None:
    """The core as nitrometer._nmcore, against the build Python's headers; None, with a
    note, when they are not installed."""
    include = Path(python_include or sysconfig.get_paths()["include"])
    out.unlink(missing_ok=True)  # never leave an extension older than the library beside it
    if not (include / "Python.h").is_file():
        print(f"native/build.py: no Python.h in {include} (python3-devel): the core is built "
              "for cffi's ABI mode only, each call slower", file=sys.stderr)
        return None
    with tempfile.TemporaryDirectory() as scratch:
        source = Path(scratch) / "_nmcore.c"
        extension_builder.emit_c_code(str(source))
        _compile([*(cc or compiler()), *CFLAGS, "-shared", f"-DPy_LIMITED_API={LIMITED_API}",
                  f"-I{include}", f"-I{HERE}", str(source),
                  *(str(HERE / s) for s in SOURCES), "-lm", "-o", str(out)])
    return out


def build(package_dir: Path, cc: list[str] | None = None,
          python_include: str | None = None) -> list[Path]:
    """Writes the extension (when Python.h is there), the library, its declarations module
    and the reader into package_dir (nitrometer/)."""
    package_dir.mkdir(parents=True, exist_ok=True)
    extension = build_extension(package_dir / EXTENSION, cc, python_include)
    library = package_dir / LIBRARY
    _compile([*(cc or compiler()), *CFLAGS, "-shared", f"-I{HERE}",
              *(str(HERE / s) for s in SOURCES), "-lm", "-o", str(library)])
    module = package_dir / FFI_MODULE
    ffibuilder.emit_python_code(str(module))
    built = [library, module, build_reader(package_dir / READER, cc)]
    return [extension, *built] if extension else built


if __name__ == "__main__":
    import sys

    if sys.argv[1:2] == ["--reader"]:  # --reader OUT [CFLAGS...]: that program alone
        print(build_reader(Path(sys.argv[2]), flags=tuple(sys.argv[3:])))
    else:
        for path in build(HERE.parent / "nitrometer"):
            print(path)
