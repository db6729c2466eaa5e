"""The agent's own-type lookup: the same answers as the savings model's reference, from the
cache or the packaged snapshot, without importing the savings model."""

from __future__ import annotations

import subprocess
import sys

import pytest

from nitrometer.agent.instance import InstanceContext, _price
from nitrometer.ec2 import looks_graviton
from nitrometer.prices.instance import instance_pricing, instance_specs
from nitrometer.savings.reference import Reference


def priced(instance_type: str, region: str) -> InstanceContext:
    ctx = InstanceContext("i-0", instance_type, *instance_type.split("."), "", region, "",
                          "config")
    _price(ctx)
    return ctx


def test_agent_prices_come_from_the_cache(mirrored_cache, monkeypatch):
    monkeypatch.setenv("NITROMETER_CACHE_DIR", str(mirrored_cache))
    ctx = priced("m5.large", "eu-west-1")  # a region the packaged snapshot lacks
    assert (ctx.price, ctx.graviton_type, ctx.graviton_price) == (0.107, "m6g.large", 0.086)
    assert ctx.normalization_factor == 4 and ctx.arch == "x86_64"
    assert priced("m5.metal", "us-east-1").price == 4.608  # bare metal, from the bulk API
    assert priced("m5.xlarge", "us-east-1").price == 0.192  # not the Local Zone's rate
    graviton = priced("r6g.xlarge", "us-east-1")  # not the Spot-like row's rate
    assert (graviton.price, graviton.graviton_type, graviton.graviton_price) == \
        (0.2016, "r6g.xlarge", 0.2016)
    monkeypatch.setenv("NITROMETER_CACHE_DIR", str(mirrored_cache / "missing"))
    assert priced("m5.large", "us-east-1").price == 0.096  # the packaged snapshot
    assert priced("m5.large", "eu-west-1").price is None


@pytest.mark.parametrize("use_cache", [False, True])
def test_agent_lookup_agrees_with_the_savings_reference(mirrored_cache, use_cache):
    reference = Reference(cache_dir=mirrored_cache, use_cache=use_cache)
    cache_dir = mirrored_cache if use_cache else mirrored_cache / "missing"
    types = sorted(t for (region, t) in reference.types if region == "us-east-1")
    types += ["m5.lareg", "m9z.large", "m6g.metal", "x2gd.metal"]
    for instance_type in types:
        got = instance_pricing(instance_type, "us-east-1", cache_dir)
        target = reference.graviton_target(instance_type, "us-east-1")
        assert got.price == reference.price(instance_type, "us-east-1"), instance_type
        assert got.specs.normalization_factor == \
            reference.normalization_factor(instance_type), instance_type
        assert got.specs.known == reference.known(instance_type), instance_type
        if got.specs.known:
            assert got.specs.arch == reference.arch(instance_type), instance_type
        if not looks_graviton(instance_type.split(".")[0]):
            assert (got.graviton_type, got.graviton_price) == \
                ((target.instance_type, target.price) if target else (None, None)), \
                instance_type


def test_simulated_host_specs():
    assert instance_specs("m7g.2xlarge").arch == "arm64"
    assert instance_specs("m7g.2xlarge").normalization_factor == 16
    assert instance_specs("nonsense").arch == ""


def test_the_agent_lookup_imports_no_app():
    code = ("import sys; from nitrometer.prices.instance import instance_pricing;"
            "p = instance_pricing('m5.large', 'us-east-1', '/nonexistent');"
            "assert p.price == 0.096 and p.graviton_type == 'm6g.large', p;"
            "print(sorted(m for m in sys.modules if m.startswith(('nitrometer.savings',"
            "'nitrometer.agent', 'pandas', 'pyarrow', 'numpy'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"
