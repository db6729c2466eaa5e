"""Fixtures shared across the suite: the fake NVMe device for the real ioctl path."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from devkit.fakedev import FakeNvme, build_shim

# Tests talk only to 127.0.0.1: nothing here, nor any agent it starts, asks 169.254.169.254.
os.environ["AWS_EC2_METADATA_DISABLED"] = "true"
# Agents started as root keep uid 0 (still without any capability), so they can read the
# fixtures under pytest's private temporary directories; the tests of the drop to another
# user pass --run-as-user themselves.
os.environ["NITROMETER_RUN_AS_USER"] = "root"


@pytest.fixture(scope="session")
def shim(tmp_path_factory) -> Path:
    """The LD_PRELOAD shim, built once per test session."""
    return build_shim(tmp_path_factory.mktemp("fakenvme"))


@pytest.fixture
def fake(tmp_path, shim) -> FakeNvme:
    return FakeNvme(tmp_path / "fake", shim)
