"""Fixtures for the device sources: sysfs trees and device directories."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

SYSFS_FIXTURES = Path(__file__).resolve().parent.parent / "sysfs"


@pytest.fixture
def sysfs(tmp_path) -> Path:
    """A writable copy of the mixed EC2 tree, so tests can plug and unplug controllers."""
    root = tmp_path / "sys"
    shutil.copytree(SYSFS_FIXTURES / "ec2-mixed", root)
    return root


@pytest.fixture
def dev_root(tmp_path) -> Path:
    root = tmp_path / "dev"
    root.mkdir()
    return root
