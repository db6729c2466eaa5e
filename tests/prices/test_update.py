"""`nitrometer prices update` against a mirror of the Price List Bulk API in its documented
layout (devkit.offers), two regions, with every kind of look-alike row."""

from __future__ import annotations

import pytest

from devkit import offers
from nitrometer.cli import main
from nitrometer.prices.cache import ON_DEMAND, RESERVED, SAVINGS_PLAN, RateKey
from nitrometer.prices.ec2_rows import RULES as EC2_RULES
from nitrometer.prices.lookup import load_region
from nitrometer.prices.plans import RULES as SP_RULES

REGIONS = ("us-east-1", "eu-west-1")


def update(url: str, cache, *regions: str) -> int:
    return main(["prices", "update", "--base-url", url, "--cache-dir", str(cache),
                 "--no-progress", *(["--region", *regions] if regions else [])])


@pytest.fixture(scope="module")
def mirror(tmp_path_factory):
    return offers.write_tree(tmp_path_factory.mktemp("pricing"))


@pytest.fixture(scope="module")
def cache(tmp_path_factory, mirror):
    cache = tmp_path_factory.mktemp("cache")
    with offers.serve(mirror) as url:
        assert update(url, cache) == 0  # every region the index lists
    return cache


def rates(cache, region: str, term: str) -> dict[RateKey, float]:
    cached = load_region(cache, region)
    try:
        return {k: v for k, v in cached.rates().items() if k.term == term}
    finally:
        cached.close()


@pytest.mark.parametrize("region", REGIONS)
def test_every_on_demand_rate_is_the_region_row(cache, region):
    expected = {RateKey(t, op): price for (r, t, op), price in offers.ON_DEMAND.items()
                if r == region}
    assert rates(cache, region, ON_DEMAND) == expected


@pytest.mark.parametrize("region", REGIONS)
def test_reserved_rates_of_every_term(cache, region):
    expected = {RateKey(t, "RunInstances", RESERVED, *term): offers.ri_rate(r, t, *term)
                for r, t in offers.RI_TYPES if r == region for term in offers.RI_TERMS}
    got = rates(cache, region, RESERVED)
    assert got.keys() == expected.keys()
    for key, rate in expected.items():
        assert got[key] == pytest.approx(rate, rel=1e-12), key


@pytest.mark.parametrize("region", REGIONS)
def test_savings_plans_rates_come_through_the_ec2_offer(cache, region):
    expected = {RateKey(t, op, SAVINGS_PLAN, *offers.PLANS[sku][:3]): price
                for (r, sku, t, op), price in offers.SP.items() if r == region}
    got = rates(cache, region, SAVINGS_PLAN)
    assert got == expected
    assert any(k.offering == "ComputeSavingsPlans" for k in got)


@pytest.mark.parametrize("region", REGIONS)
def test_each_rule_reports_the_rows_it_set_aside(cache, region):
    cached = load_region(cache, region)
    for kind, rules, section in (("ec2", EC2_RULES, "ec2"), ("sp", SP_RULES, "savings_plans")):
        expected = {rule: offers.DECOYS[(region, kind, rule)] for rule, _ in rules}
        assert cached.meta[section]["set_aside"] == expected, kind
    assert cached.as_of == "2026-11-20"
    assert cached.meta["ec2"]["version"] == offers.VERSION
    cached.close()


def test_update_says_what_it_kept_and_set_aside(capsys, mirror, tmp_path):
    with offers.serve(mirror) as url:
        assert update(url, tmp_path, "us-east-1") == 0
    out = capsys.readouterr().out
    aside = offers.DECOYS[("us-east-1", "ec2", "location type")]
    assert f"{aside:,} location type" in out
    assert "15 on-demand, 36 reserved, 5 Savings Plans" in out
    assert not list((tmp_path / "prices").glob(".*"))  # no scratch files left


def test_savings_plans_index_through_the_version_index(tmp_path):
    """Without currentSavingsPlanIndexUrl: savingsPlanVersionIndexUrl, then its
    currentOfferVersionUrl, as the version index page documents."""
    root = offers.write_tree(tmp_path / "pricing", current_sp_index=False)
    with offers.serve(root) as url:
        assert update(url, tmp_path / "cache", "eu-west-1") == 0
    assert len(rates(tmp_path / "cache", "eu-west-1", SAVINGS_PLAN)) == 2


def test_no_savings_plans_link_is_said(capsys, tmp_path):
    root = offers.write_tree(tmp_path / "pricing", current_sp_index=False)
    index = offers.index_files()["/offers/v1.0/aws/index.json"]
    del index["offers"]["AmazonEC2"]["savingsPlanVersionIndexUrl"]
    del index["offers"]["AmazonEC2"]["currentSavingsPlanIndexUrl"]
    offers.write(root, "/offers/v1.0/aws/index.json", __import__("json").dumps(index))
    with offers.serve(root) as url:
        assert update(url, tmp_path / "cache", "us-east-1") == 0
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no savingsPlanVersionIndexUrl" in err
    assert rates(tmp_path / "cache", "us-east-1", SAVINGS_PLAN) == {}


def test_update_refuses_a_region_the_list_lacks(capsys, mirror, tmp_path):
    with offers.serve(mirror) as url:
        code = update(url, tmp_path, "xx-nowhere-1")
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "xx-nowhere-1" in err


def test_update_says_when_the_endpoint_is_not_there(capsys, tmp_path):
    code = update("http://127.0.0.1:9", tmp_path)
    err = capsys.readouterr().err
    assert code == 2 and "cannot read http://127.0.0.1:9/" in err
    assert err.endswith(": connection refused (nothing listens there)\n"), err
