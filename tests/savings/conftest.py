"""Fixtures for the savings tests: the shared sample reports and the packaged reference."""

from __future__ import annotations

from pathlib import Path

import pytest

from nitrometer.savings.reference import Reference

SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
SAMPLE_2018 = SHARED_DATA / "cur-samples" / "wa-labs-workshop-cur-2018"


@pytest.fixture(scope="session")
def reference() -> Reference:
    return Reference()


@pytest.fixture(scope="session")
def sample_2018() -> list[Path]:
    parts = sorted(SAMPLE_2018.glob("*.parquet"))
    if not parts:
        pytest.skip(f"the shared 2018 sample CUR is not at {SAMPLE_2018}")
    return parts
