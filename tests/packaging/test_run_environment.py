"""`make run` builds an environment with what the agent and its simulated devices need and
nothing else: no test, wheel-building, savings or EC2 API package."""

from __future__ import annotations

import re
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

try:
    import tomllib
except ImportError:  # Python < 3.11: pytest brings tomli
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[2]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
EXTRAS = PROJECT["optional-dependencies"]


def run_extras() -> list[str]:
    """The extras the Makefile's run environment installs (RUN_EXTRAS)."""
    makefile = (ROOT / "Makefile").read_text()
    recipe = re.search(r"^\$\(VENV\)/\.installed-run:.*?\n((?:\t.*\n)+)", makefile, re.M)
    assert recipe and "pip install -q -e '.[$(RUN_EXTRAS)]'" in recipe.group(1), recipe
    return re.search(r"^RUN_EXTRAS := (.*)$", makefile, re.M).group(1).split(",")


def closure(requirements: list[str]) -> set[str]:
    """Every distribution these requirements pull in, from the installed metadata."""
    seen: set[str] = set()
    todo = [Requirement(r) for r in requirements]
    while todo:
        req = todo.pop()
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue
        name = canonicalize_name(req.name)
        if name in seen:
            continue
        seen.add(name)
        todo += [Requirement(r) for r in metadata.distribution(name).requires or ()]
    return seen


def direct(extra: str) -> set[str]:
    return {canonicalize_name(Requirement(r).name) for r in EXTRAS[extra]} - {"nitrometer"}


def test_the_run_environment_has_no_test_only_package():
    extras = run_extras()
    assert extras == ["demo"]
    run = closure(PROJECT["dependencies"] + [r for e in extras for r in EXTRAS[e]])
    wanted_there = {canonicalize_name(Requirement(r).name)
                    for r in PROJECT["dependencies"] + EXTRAS["demo"]}
    others = (direct("test") | direct("wheels") | direct("savings") | direct("ec2api"))
    assert {"pytest", "ruff", "ziglang", "auditwheel", "pandas", "botocore"} <= others
    assert run & (others - wanted_there) == set()
    assert "numpy" in run


def test_the_agent_alone_needs_no_numpy():
    assert "numpy" not in closure(PROJECT["dependencies"])
    assert "numpy" in direct("demo") and "numpy" in direct("savings")


def test_the_wheel_toolchain_is_only_in_its_own_extra():
    assert direct("wheels") == {"ziglang", "auditwheel"}
    for extra in set(EXTRAS) - {"wheels"}:
        assert not direct(extra) & {"ziglang", "auditwheel"}, extra


BLOCK_NUMPY = "import sys; sys.modules['numpy'] = None; from nitrometer.cli import main; "


def without_numpy(code: str):
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-c", BLOCK_NUMPY + code], capture_output=True,
                          text=True, timeout=120, cwd=ROOT)


def test_without_numpy_the_agent_decodes_and_simulation_says_what_to_install(tmp_path):
    done = without_numpy("import nitrometer.agent.main, nitrometer.agent.exporter, "
                         "nitrometer.agent.sampler, nitrometer.collectors.replay; "
                         "sys.exit(main(['decode', '--sample', 'ebs']))")
    assert done.returncode == 0 and "numpy" not in done.stderr, done.stderr
    done = without_numpy("sys.exit(main(['snapshot', '--source', 'simulate:i3en.xlarge', "
                         "'1', '1']))")
    assert (done.returncode, done.stderr) == (
        2, "nitrometer: simulated devices need numpy: pip install 'nitrometer[demo]'\n")


def test_without_numpy_the_demo_says_what_to_install(tmp_path):
    from tests.support.prometheus import free_port

    (tmp_path / "class" / "nvme").mkdir(parents=True)  # no Amazon NVMe device here
    done = without_numpy(f"sys.exit(main(['run', '--demo', '--path.sysfs', '{tmp_path}', "
                         f"'--web.listen-address', '127.0.0.1:{free_port()}']))")
    assert done.returncode == 2, done.stderr
    assert done.stderr.splitlines()[-1] == (
        "nitrometer: simulated devices need numpy: pip install 'nitrometer[demo]'")
    assert "Traceback" not in done.stderr
