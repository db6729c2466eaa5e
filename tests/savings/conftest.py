"""Fixtures for the savings tests: the shared sample reports and the packaged reference."""

from __future__ import annotations

from pathlib import Path

import pytest

from nitrometer.prices.cache import COMPUTE_SP, INSTANCE_SP, SAVINGS_PLAN, RateKey, write_region
from nitrometer.savings.reference import Reference

# Savings Plan rates of the Graviton targets the synthetic reports buy that way.
SP_RATES = {RateKey("m7g.large", "RunInstances", SAVINGS_PLAN, COMPUTE_SP, "1yr",
                    "No Upfront"): 0.0604,
            RateKey("c7g.large", "RunInstances", SAVINGS_PLAN, INSTANCE_SP, "3yr",
                    "All Upfront"): 0.0312}

# AWS Well-Architected Labs' sample CUR (its README, LICENSE and NOTICE beside it).
SAMPLE_2018 = Path(__file__).resolve().parents[1] / "fixtures" / "cur-samples" / \
    "wa-labs-workshop-cur-2018"


@pytest.fixture(scope="session")
def reference() -> Reference:
    return Reference()


@pytest.fixture(scope="session")
def sample_2018() -> list[Path]:
    parts = sorted(SAMPLE_2018.glob("*.parquet"))
    assert len(parts) == 3, f"the 2018 sample CUR is missing from {SAMPLE_2018}"
    return parts


@pytest.fixture(scope="session")
def cached_reference(tmp_path_factory) -> Reference:
    """us-east-1 from a price cache: the packaged on-demand Linux rates plus SP_RATES."""
    packaged = Reference()
    rates = {RateKey(t): item.price for (region, t), item in packaged.types.items()
             if region == "us-east-1" and item.price is not None}
    rates.update(SP_RATES)
    cache = tmp_path_factory.mktemp("price-cache")
    write_region(cache, "us-east-1", rates, {"base_url": "http://127.0.0.1/test",
                                             "ec2": {"publication_date": "2026-07-20T00:00:00Z"}})
    return Reference(cache_dir=cache, use_cache=True)


@pytest.fixture(autouse=True)
def empty_price_cache(tmp_path, monkeypatch):
    """The CLI reads the price cache: the tests' own, empty unless a test fills it."""
    cache = tmp_path / "nitrometer-cache"
    monkeypatch.setenv("NITROMETER_CACHE_DIR", str(cache))
    return cache
