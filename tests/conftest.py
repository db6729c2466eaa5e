"""Fixtures shared across the suite: the fake NVMe device for the real ioctl path."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fakedev import FakeNvme, build_shim


@pytest.fixture(scope="session")
def shim(tmp_path_factory) -> Path:
    """The LD_PRELOAD shim, built once per test session."""
    return build_shim(tmp_path_factory.mktemp("fakenvme"))


@pytest.fixture
def fake(tmp_path, shim) -> FakeNvme:
    return FakeNvme(tmp_path / "fake", shim)
