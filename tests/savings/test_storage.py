"""Storage-aware targets: local NVMe of source and target side by side, and a mapping that
keeps at least the source's capacity when asked."""

from __future__ import annotations

import json

import jsonschema
import pytest

from nitrometer.cli import main
from nitrometer.savings.schema import JSON_SCHEMA
from nitrometer.savings.storage import host_checks


@pytest.fixture
def usage(tmp_path):
    path = tmp_path / "usage.csv"
    path.write_text("instance_type,hours\ni3en.xlarge,720\ni3en.3xlarge,720\nm5.large,720\n")
    return path


def _json(capsys, *argv) -> tuple[dict, str]:
    assert main(["savings", *argv, "-o", "json"]) == 0
    out, err = capsys.readouterr()
    doc = json.loads(out)
    jsonschema.validate(doc, JSON_SCHEMA)
    return doc, err


def test_the_dashboard_mapping_shows_what_the_disk_becomes(capsys, usage):
    doc, err = _json(capsys, "--usage", str(usage))
    rows = {r["instance_type"]: r for r in doc["by_instance_type"]}
    assert rows["i3en.xlarge"]["target_type"] == "i4g.xlarge"
    assert (rows["i3en.xlarge"]["local_storage_gb"],
            rows["i3en.xlarge"]["target_local_storage_gb"]) == (2500, 937)
    assert (rows["m5.large"]["local_storage_gb"], rows["m5.large"]["target_local_storage_gb"]) \
        == (0, 0)
    assert "i3en.xlarge -> i4g.xlarge: 937 GB of local NVMe against 2500 GB" in err
    reasons = {e["reason"]: e["lines"] for e in doc["exclusions"]}
    assert reasons["no Graviton equivalent"] == 1  # i4g has no 3xlarge
    assert main(["savings", "--usage", str(usage)]) == 0
    table = capsys.readouterr().out
    assert "local disk" in table and "2,500 GB" in table and "937 GB" in table


def test_keep_local_storage_picks_a_target_with_the_disk(capsys, tmp_path, reference):
    # billed above on demand (say, a dedicated host), so that keeping the disk saves money
    usage = tmp_path / "usage.csv"
    usage.write_text("instance_type,hours,cost\ni3en.xlarge,720,720\ni3en.3xlarge,720,1440\n"
                     "m5.large,720,69.12\n")
    doc, err = _json(capsys, "--usage", str(usage), "--keep-local-storage")
    assert doc["keep_local_storage"] is True
    rows = {r["instance_type"]: r for r in doc["by_instance_type"]}
    assert rows["i3en.xlarge"]["target_type"] == "is4gen.xlarge"
    assert rows["i3en.xlarge"]["target_local_storage_gb"] == 3750
    # no i4g.3xlarge: the cheapest Graviton type with 7.5 TB and 12 vCPUs, a size up
    resized = rows["i3en.3xlarge"]
    assert resized["target_type"] == "im4gn.4xlarge"
    assert resized["graviton_cost"] == pytest.approx(720 * reference.price("im4gn.4xlarge",
                                                                           "us-east-1"))
    # the normalized hours follow the target: 4xlarge is 32 per hour, not 3xlarge's 24
    assert resized["nih"] == pytest.approx(720 * 24)
    assert resized["projected_nih"] == pytest.approx(720 * 32 * 0.9)
    assert rows["m5.large"]["target_type"] == "m6g.large"  # no local disk: unchanged
    assert "local NVMe against" not in err


def test_host_checks_against_instance_store_limits():
    # is4gen.xlarge: 125,000 read and 100,000 write IOPS on its instance store
    checks = {c["metric"]: c for c in host_checks("is4gen.xlarge", {
        ("instance_store", "read", "iops"): 80_000.0,
        ("instance_store", "write", "iops"): 120_000.0,
        ("instance_store", "read", "throughput"): 1e9})}
    assert checks["read_iops"]["fits"] and checks["read_iops"]["headroom_pct"] == \
        pytest.approx(36.0)
    assert checks["write_iops"]["fits"] is False
    assert checks["write_iops"]["limit"] == 100_000
    # no throughput in the guide: write IOPS at 16 KiB
    assert checks["throughput_bytes_per_second"]["limit"] == 100_000 * 16384
    assert host_checks("zz9.large", {("ebs", "read", "iops"): 1.0})[0]["fits"] is None


def test_a_move_that_costs_more_stays(capsys, usage, reference):
    """At on-demand rates both disk-keeping moves cost more than the i3en they replace: they
    are no recommendation, but a "stay" row with what the move would cost."""
    doc, err = _json(capsys, "--usage", str(usage), "--keep-local-storage")
    assert {r["instance_type"] for r in doc["by_instance_type"]} == {"m5.large"}
    reasons = {e["reason"]: e for e in doc["exclusions"]}
    stay = reasons["stay: Graviton costs more"]
    assert stay["lines"] == 2 and stay["cost"] == pytest.approx(
        720 * (reference.price("i3en.xlarge", "us-east-1")
               + reference.price("i3en.3xlarge", "us-east-1")))
    more = 720 * (reference.price("is4gen.xlarge", "us-east-1")
                  - reference.price("i3en.xlarge", "us-east-1"))
    assert f"i3en.xlarge stays: is4gen.xlarge would cost ${more:,.2f} more" in err
    assert doc["totals"]["eligible_lines"] == 1
    assert all(s["total_savings"] >= 0 for s in doc["sweep"])
