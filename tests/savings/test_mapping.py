"""The x86 -> Graviton mapping's per-generation columns name targets of that generation."""

from __future__ import annotations

import csv

import pytest

from nitrometer.savings import reference as ref_module
from nitrometer.savings.model import run_model
from nitrometer.savings.usage import usage_frame

# The processor of Graviton families the packaged price table does not carry, from the
# "Instance family summary" tables of the Amazon EC2 Instance Types guide
# (docs.aws.amazon.com/ec2/latest/instancetypes/: gp.html, co.html, mo.html, so.html,
# ac.html, hpc.html). Graviton3E (c7gn, hpc7g) is a Graviton3.
PROCESSOR = {"c6gn": "graviton2", "g5g": "graviton2", "c7gd": "graviton3",
             "c7gn": "graviton3", "m7gd": "graviton3", "r7gd": "graviton3",
             "hpc7g": "graviton3", "i8g": "graviton4", "i8ge": "graviton4",
             "m8gd": "graviton4", "r8gd": "graviton4", "x8g": "graviton4"}


def _processors() -> dict[str, str]:
    """Graviton family -> processor, from the packaged price table's processor_family."""
    found = dict(PROCESSOR)
    with open(ref_module.PRICES_FILE, newline="") as f:
        for row in csv.DictReader(f):
            if row["arch"] == "arm64":
                found[row["family"]] = row["processor_family"]
    return found


def test_each_generation_column_names_targets_of_that_processor():
    processors = _processors()
    with open(ref_module.MAPPING_FILE, newline="") as f:
        rows = list(csv.DictReader(f))
    assert rows
    for row in rows:
        for generation in ("graviton2", "graviton3", "graviton4"):
            target = row[generation].strip()
            if target:
                assert processors[target] == generation, (row["x86_family"], generation,
                                                          target)


@pytest.mark.parametrize("family", ["i2", "i3", "i3en", "i4i", "i7i", "i7ie"])
def test_storage_families_find_their_graviton2_target(reference, family):
    # I4g runs on Graviton2 (so.html, "Instance family summary"); there is no Graviton3
    # storage-optimized family
    assert reference.graviton_type(f"{family}.xlarge", "graviton2") == "i4g.xlarge"
    assert reference.graviton_type(f"{family}.xlarge", "graviton3") is None


def test_generation_graviton2_prices_i3_on_i4g(reference):
    usage = usage_frame([{"month": "", "region": "us-east-1", "instance_type": "i3.xlarge",
                          "category": "usage", "hours": 100.0, "nih": 800.0,
                          "hours_without_nf": 0.0, "cost": float("nan"), "lines": 1,
                          "source": "test"}])
    line = run_model(usage, reference, generation="graviton2").lines.iloc[0]
    assert (line["reason"], line["target_type"]) == ("eligible", "i4g.xlarge")
    assert line["graviton_cost"] == pytest.approx(
        100 * reference.price("i4g.xlarge", "us-east-1"))
