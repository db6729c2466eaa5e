"""`make run` builds an environment with the package alone: the agent and its simulated
devices need no test, wheel-building, savings or EC2 API package, numpy included."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.support.processes import stop
from tests.support.prometheus import free_port
from tests.support.scrape import metrics_text

try:
    import tomllib
except ImportError:  # Python < 3.11: pytest brings tomli
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[2]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
EXTRAS = PROJECT["optional-dependencies"]


def run_recipe() -> str:
    """The commands of the Makefile's run environment (`make run` depends on it)."""
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^run: \$\(VENV\)/\.installed-run ", makefile, re.M)
    recipe = re.search(r"^\$\(VENV\)/\.installed-run:.*?\n((?:\t.*\n)+)", makefile, re.M)
    assert recipe, "no recipe for the run environment"
    return recipe.group(1)


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


def test_the_run_environment_is_the_package_alone():
    installs = [line.strip() for line in run_recipe().splitlines() if "pip install" in line]
    assert installs == ["$(PY) -m pip install -q --upgrade pip", "$(PY) -m pip install -q -e ."]


def test_the_base_dependencies_pull_in_no_extra_package():
    run = closure(PROJECT["dependencies"])
    base = {canonicalize_name(Requirement(r).name) for r in PROJECT["dependencies"]}
    others = direct("test") | direct("wheels") | direct("savings") | direct("ec2api")
    assert {"pytest", "ruff", "ziglang", "auditwheel", "numpy", "pandas", "botocore"} <= others
    assert run & (others - base) == set()


def test_the_wheel_toolchain_is_only_in_its_own_extra():
    assert direct("wheels") == {"ziglang", "auditwheel"}
    for extra in set(EXTRAS) - {"wheels"}:
        assert not direct(extra) & {"ziglang", "auditwheel"}, extra


def without_numpy(tmp_path: Path) -> dict[str, str]:
    """An environment in which `import numpy` fails, as in the run environment."""
    blocker = tmp_path / "no-numpy" / "numpy"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text("raise ImportError('numpy is not installed')\n")
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(blocker.parent), str(ROOT)])}


def test_simulated_devices_need_no_numpy(tmp_path):
    done = subprocess.run([sys.executable, "-m", "nitrometer", "snapshot", "--source",
                           "simulate:i3en.xlarge:over-limit:gp3", "--speed", "0", "1", "2"],
                          capture_output=True, text=True, timeout=120, env=without_numpy(tmp_path))
    assert done.returncode == 0, done.stderr
    assert "instance store (i3en.xlarge) at" in done.stdout


def test_the_demo_serves_without_numpy(tmp_path):
    (tmp_path / "sys" / "class" / "nvme").mkdir(parents=True)  # no Amazon NVMe device here
    port = free_port()
    agent = subprocess.Popen(
        [sys.executable, "-m", "nitrometer", "run", "--demo", f"--path.sysfs={tmp_path}/sys",
         f"--web.listen-address=127.0.0.1:{port}", "--no-collector.identity"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=without_numpy(tmp_path))
    text = ""
    try:
        deadline = time.monotonic() + 60
        while "ec2_nvme_read_ops_total{" not in text and time.monotonic() < deadline:
            assert agent.poll() is None, agent.stdout.read().decode()[-2000:]
            time.sleep(0.2)
            text = metrics_text(port, timeout=5)
    finally:
        stop(agent)
    assert "ec2_nvme_read_ops_total{" in text
    assert agent.returncode == 0
