"""The test suite on every supported CPython: `make test-matrix` (all five) or
`nox -s tests-3.9 tests-3.13`. Interpreters come from PATH, or from pyenv when it has them."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import nox

PYTHONS = ("3.9", "3.10", "3.11", "3.12", "3.13")

nox.options.sessions = ["tests"]
nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_missing_interpreters = True  # a missing 3.9 must fail, not skip


def _pyenv_bins() -> list[str]:
    try:
        root = subprocess.run(["pyenv", "root"], capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return []
    return [str(p / "bin") for p in sorted(Path(root, "versions").glob("3.*"))]


os.environ["PATH"] = os.pathsep.join([*_pyenv_bins(), os.environ.get("PATH", "")])


@nox.session(python=PYTHONS)
def tests(session: nox.Session) -> None:
    # Editable: the core's build is the same for every Python, so the sessions share it.
    session.install("-q", "-e", ".[test,wheels]")  # wheels: auditwheel checks them
    session.run("python", "-m", "pytest", "-q", *session.posargs)
