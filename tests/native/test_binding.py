"""The core's two bindings (native/build.py): the cffi API-mode extension, which native.py
loads when it imports, and the plain library through cffi's ABI mode, its fallback and what
NITROMETER_NATIVE=abi forces. Both give the very same results; the build makes the library
alone where the build Python has no headers."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from nitrometer import devicecore, native
from tests.native.pages import realistic_page

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "nitrometer"


def python(code: str, timeout: float = 300, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, **env})


def one_call_results() -> list:
    """What the one call per device gives over both kinds' pages: steady growth, a spike
    held then dropped, a restart, a page of another layout and a page too short."""
    results = []
    for kind in ("instance_store", "ebs"):
        pages = [realistic_page(kind, seed=7, scale=s) for s in (1, 2, 4, 5, 9, 10)]
        pages[3] = realistic_page(kind, seed=7, scale=10**6)  # implausible growth
        pages += [realistic_page(kind, seed=7, scale=1),  # counters back: a restart
                  realistic_page("ebs" if kind != "ebs" else "instance_store", seed=3),
                  pages[0][:100]]
        device = devicecore.Device(1e6, 1e10)
        for t, raw in enumerate(pages):
            try:
                flags = device.step(raw, float(t))
            except native.PageError as exc:
                results.append(["error", exc.code])
                continue
            out = device.summary()
            quantiles = [[repr(q) for q in row] for row in out._quantiles()]
            results.append([flags, out.delta.counters, out.band_read_ops, out.band_write_ops,
                            quantiles, device.totals.page.counters,
                            device.totals.page.read.counts, device.totals.band_sums_us()])
    return results


def test_the_extension_is_what_native_loads_here():
    assert native.BINDING == "api"
    extension = sys.modules["nitrometer._nmcore"]
    assert extension.__file__ == str(PACKAGE / "_nmcore.abi3.so")
    assert native.lib is extension.lib and native.ffi is extension.ffi


def test_the_one_call_gives_the_same_results_through_the_library():
    want = json.loads(json.dumps(one_call_results()))
    done = python("import json, sys; from nitrometer import native; "
                  "from tests.native.test_binding import one_call_results; "
                  "assert 'nitrometer._nmcore' not in sys.modules; "
                  "print(native.BINDING, json.dumps(one_call_results()))",
                  NITROMETER_NATIVE="abi")
    assert done.returncode == 0, done.stderr
    binding, got = done.stdout.split(" ", 1)
    assert binding == "abi"
    assert json.loads(got) == want
    errors = [r for r in want if r[0] == "error"]
    committed = [r for r in want if r[0] == 0]
    assert [e[1] for e in errors] == [native.lib.NM_ELAYOUT, native.lib.NM_ESHORT] * 2
    assert len(committed) == 6 and all(r[5]["total_read_ops"] > 0 for r in committed)
    assert {r[0] for r in want} >= {native.lib.NM_DELTA_HELD, native.lib.NM_DELTA_DROPPED}


@pytest.mark.slow
def test_the_native_tests_pass_through_the_library():
    files = sorted(str(p.relative_to(ROOT)) for p in Path(__file__).parent.glob("test_*.py")
                   if p.name != Path(__file__).name)
    done = python("import sys, pytest; from nitrometer import native; "
                  "assert native.BINDING == 'abi', native.BINDING; "
                  f"sys.exit(pytest.main(['-q', '-p', 'no:cacheprovider', *{files!r}]))",
                  timeout=900, NITROMETER_NATIVE="abi")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    summary = done.stdout.strip().splitlines()[-1]
    assert re.match(r"\d+ passed in ", summary), summary


def test_without_the_extension_native_falls_back_to_the_library():
    sample = PACKAGE / "data/samples/ebs.bin"
    done = python("import sys; sys.modules['nitrometer._nmcore'] = None; "
                  "from nitrometer import native; print(native.BINDING, "
                  f"native.decode(open({str(sample)!r}, 'rb').read()).kind)")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["abi", "ebs"]


def test_with_neither_binding_the_commands_say_so_in_one_line():
    blocked = ("import runpy, sys; sys.modules['nitrometer._nmcore'] = None; "
               "sys.modules['nitrometer._ffi'] = None; sys.argv = ['nitrometer', 'decode', "
               "'--sample', 'ebs']; runpy.run_module('nitrometer', run_name='__main__')")
    done = python(blocked)
    assert done.returncode != 0 and done.stdout == ""
    [line] = done.stderr.strip().splitlines()
    assert "the C core of nitrometer is missing" in line and "make venv" in line


def test_an_unknown_binding_is_refused_in_one_line():
    done = subprocess.run([sys.executable, "-m", "nitrometer", "decode", "--sample", "ebs"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "NITROMETER_NATIVE": "fast"})
    assert done.returncode != 0 and done.stdout == ""
    assert done.stderr.strip().splitlines() == [
        "nitrometer: NITROMETER_NATIVE='fast': expected 'api' or 'abi' (or unset)"]


def test_the_build_without_python_headers_makes_the_library_alone(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("nitrometer_build", ROOT / "native/build.py")
    build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build)
    package = tmp_path / "nitrometer"
    package.mkdir()
    (package / build.EXTENSION).write_bytes(b"an earlier build")  # must not outlive this one
    no_headers = tmp_path / "include"
    no_headers.mkdir()
    built = build.build(package, python_include=str(no_headers))
    assert capsys.readouterr().err.splitlines() == [
        f"native/build.py: no Python.h in {no_headers} (python3-devel): the core is built "
        "for cffi's ABI mode only, each call slower"]
    assert sorted(p.name for p in package.iterdir()) == sorted(p.name for p in built) == sorted(
        [build.LIBRARY, build.FFI_MODULE, build.READER])
    assert (package / build.LIBRARY).read_bytes()[:4] == b"\x7fELF"
