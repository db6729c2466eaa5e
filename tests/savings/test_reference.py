"""The packaged reference data: prices, normalization factors, mapping, user prices."""

from __future__ import annotations

import subprocess
import sys

import pytest

from nitrometer.errors import ConfigError
from nitrometer.savings import reference as ref_module


def test_packaged_prices_and_targets(reference):
    assert reference.price("m5.large", "us-east-1") == pytest.approx(0.096)
    assert reference.price("m5.large", "eu-west-1") is None
    target = reference.graviton_target("m5.large", "us-east-1")
    assert (target.instance_type, target.price) == ("m6g.large", pytest.approx(0.077))
    assert reference.prices_as_of == "2026-07-20"
    assert set(reference.sources()) == {"prices", "normalization_factors", "mapping"}


@pytest.mark.parametrize("generation, expected", [
    ("latest", "m7g.xlarge"), ("graviton2", "m6g.xlarge"), ("graviton3", "m7g.xlarge"),
    ("graviton4", "m8g.xlarge")])
def test_target_by_generation(reference, generation, expected):
    assert reference.graviton_type("m6i.xlarge", generation) == expected


def test_no_equivalent_and_unknown_generation(reference):
    assert reference.graviton_target("d3.xlarge", "us-east-1") is None
    # m6g has no 24xlarge: the same-size target does not exist
    assert reference.graviton_target("m5.24xlarge", "us-east-1") is None
    with pytest.raises(ConfigError, match="unknown generation"):
        reference.graviton_type("m5.large", "graviton9")


@pytest.mark.parametrize("instance_type, factor", [
    ("m5.large", 4), ("t3.nano", 0.25), ("m5.24xlarge", 192),
    ("t2.micro", 0.5),          # not in the price table: from the size
    ("z9.112xlarge", 896),      # any N xlarge is 8 N
    ("m7g.metal-48xl", 384),    # metal-Nxl is N xlarge
    ("m5.metal", 192),          # explicit metal row in the docs table
])
def test_normalization_factors(reference, instance_type, factor):
    assert reference.normalization_factor(instance_type) == factor


def test_plain_metal_not_in_table_takes_largest_size_with_same_vcpus():
    reference = ref_module.Reference()
    spec = reference.specs.pop("c5.metal")  # as if the table lacked the metal row
    assert reference.normalization_factor("c5.metal") == 192  # c5.24xlarge, 96 vCPUs
    assert reference._metal_factor("c5", spec.vcpu) == 192
    assert reference._metal_factor("c5", 72) == 144  # c5.18xlarge has 72 vCPUs


def test_user_prices_override(tmp_path):
    prices = tmp_path / "prices.csv"
    prices.write_text("instance_type,price,region\nm5.large,0.05,us-east-1\n"
                      "m6g.large,0.07,eu-west-1\nm5.large,0.2,eu-west-1\n")
    reference = ref_module.Reference()
    assert reference.load_prices(prices) == 3
    assert reference.price("m5.large", "us-east-1") == 0.05
    target = reference.graviton_target("m5.large", "eu-west-1")
    assert (target.instance_type, target.price) == ("m6g.large", 0.07)


def test_bad_price_file(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("type,cost\nm5.large,1\n")
    with pytest.raises(ConfigError, match="instance_type and price"):
        ref_module.Reference().load_prices(bad)
    bad.write_text("instance_type,price\nm5.large,cheap\n")
    with pytest.raises(ConfigError, match=r"bad\.csv:2"):
        ref_module.Reference().load_prices(bad)


def test_agent_lookups_do_not_import_pandas():
    code = ("import sys, nitrometer.savings, nitrometer.savings.reference as r;"
            "assert r.lookup_price('m5.large', 'us-east-1') == 0.096;"
            "assert r.lookup_graviton('m5.large', 'us-east-1').instance_type == 'm6g.large';"
            "assert r.lookup_normalization_factor('m5.large') == 4;"
            "print(sorted(m for m in ('pandas', 'pyarrow', 'numpy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"
