"""The price tests' own cache directory: never the user's."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def empty_price_cache(tmp_path, monkeypatch):
    cache = tmp_path / "nitrometer-cache"
    monkeypatch.setenv("NITROMETER_CACHE_DIR", str(cache))
    return cache
