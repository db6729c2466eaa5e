"""cffi build script (out-of-line API mode) for nitrometer._native; not installed."""

import os
from pathlib import Path

from cffi import FFI

HERE = Path(__file__).resolve().parent
HEADER = HERE / "nitrometer_native.h"
SOURCES = sorted(p.name for p in HERE.glob("*.c"))

ffibuilder = FFI()
ffibuilder.cdef(HEADER.read_text())
ffibuilder.set_source(
    "nitrometer._native",
    '#include <stdint.h>\n#include <stddef.h>\n#include "nitrometer_native.h"\n',
    # setuptools wants source paths relative to the project root.
    sources=[os.path.relpath(HERE / s) for s in SOURCES],
    include_dirs=[str(HERE)],
    extra_compile_args=["-O2", "-std=c11", "-Wall", "-Wextra",
                        "-Werror=implicit-function-declaration"],
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
