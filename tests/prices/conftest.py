"""The price tests' own cache directory: never the user's; and a cache filled from the price
list mirror, which tests read or copy but never change."""

from __future__ import annotations

import pytest

from devkit import offers
from nitrometer.cli import main


@pytest.fixture(autouse=True)
def empty_price_cache(tmp_path, monkeypatch):
    cache = tmp_path / "nitrometer-cache"
    monkeypatch.setenv("NITROMETER_CACHE_DIR", str(cache))
    return cache


@pytest.fixture(scope="session")
def mirrored_cache(tmp_path_factory):
    cache = tmp_path_factory.mktemp("cache")
    root = offers.write_tree(tmp_path_factory.mktemp("pricing"))
    with offers.serve(root) as url:
        assert main(["prices", "update", "--base-url", url, "--cache-dir", str(cache),
                     "--no-progress"]) == 0
    return cache
