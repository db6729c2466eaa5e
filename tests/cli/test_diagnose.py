"""diagnose on the simulator's EC2-guide scenarios, its rules on their own, and its report."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema

from nitrometer.cli import main
from nitrometer.commands import findings
from tests.cli.fixtures import EBS, add, page, sampler_over

SCHEMA = json.loads((Path(__file__).parents[2] / "docs" / "snapshot.schema.json").read_text())
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)


def diagnose(capsys, *args: str) -> tuple[int, str]:
    code = main(["diagnose", "--speed", "0", *args])
    return code, capsys.readouterr().out


def diagnose_json(capsys, source: str) -> tuple[int, dict]:
    code, out = diagnose(capsys, "--json", "--source", source)
    report = json.loads(out)
    VALIDATOR.validate(report)
    return code, report


def kinds(device_report: dict) -> list[tuple]:
    return [(f["kind"], f.get("scope"), f.get("limit")) for f in device_report["findings"]]


def test_over_limit_finds_the_instance_iops_limit_only(capsys):
    code, report = diagnose_json(capsys, "simulate:i3en.xlarge:over-limit")
    assert code == 1 and report["healthy"] is False
    (device,) = report["devices"]
    assert device["intervals"] == 40
    assert kinds(device) == [("limit_exceeded", "instance", "iops")]
    finding = device["findings"][0]
    assert 30 <= finding["seconds"] <= 40
    # ~85 % of each second over the limit: about 34 s of the 40 s window.
    assert 30e6 <= finding["exceeded_us"] <= 38e6
    assert "larger instance size" in finding["advice"]


def test_large_write_interference_names_the_bands(capsys):
    code, report = diagnose_json(capsys, "simulate:i3en.xlarge:large-write-interference")
    assert code == 1
    (device,) = report["devices"]
    assert kinds(device) == [("limit_exceeded", "instance", "throughput"),
                             ("io_size_interference", None, None)]
    interference = device["findings"][1]
    slow = {b["band"]: b["p99_us"] for b in interference["slow_read_bands"]}
    large = {b["band"]: b["p99_us"] for b in interference["large_write_bands"]}
    assert sorted(slow) == ["(0, 512B]", "(512B, 4KiB]"]
    assert list(large) == ["(32KiB, max]"]
    # Small reads land in the 8-16 ms bins, far above the read baseline.
    assert all(8192 <= p99 <= 16384 for p99 in slow.values())
    assert interference["read_baseline_us"] <= 250
    assert "smaller writes" in interference["advice"]


def test_steady_finds_nothing(capsys):
    code, out = diagnose(capsys, "--source", "simulate:i3en.xlarge:steady:gp3")
    assert code == 0
    assert "PROBLEM" not in out
    assert out.count("nothing wrong: no limit exceeded") == 2
    assert out.rstrip().endswith("Result: nothing wrong found.")


def test_text_report_explains_with_numbers_and_advice(capsys):
    code, out = diagnose(capsys, "--source", "simulate:i3en.xlarge:over-limit:gp3")
    assert code == 1
    assert "PROBLEM  instance IOPS limit exceeded in 40 of 40 s" in out
    assert "PROBLEM  volume IOPS limit exceeded in 40 of 40 s" in out
    assert "provisioned IOPS" in out  # the EBS volume's advice
    assert all(len(line) <= 80 for line in out.splitlines())


def test_named_device_only(capsys):
    _, report = diagnose_json(capsys, "simulate:i3en.xlarge:over-limit:gp3")
    assert len(report["devices"]) == 2
    _, out = diagnose(capsys, "nvme2n1", "--json", "--source",
                         "simulate:i3en.xlarge:over-limit:gp3")
    assert [d["device"]["name"] for d in json.loads(out)["devices"]] == ["nvme2n1"]


def test_duration_sets_the_window(capsys):
    _, out = diagnose(capsys, "--duration", "5s", "--json", "--source",
                         "simulate:i3en.xlarge:steady")
    assert json.loads(out)["devices"][0]["intervals"] == 5


# --- the busy-not-throttled rule on pages built by hand ---------------------------------

def window_of(pages: list[bytes], device=EBS) -> findings.Window:
    sampler = sampler_over([(device, pages)])
    sampler.first()
    intervals = [sampler.step()[0] for _ in pages[1:]]
    return findings.Window(device, intervals)


def growing(seconds: int, *, queue=lambda t: 2, slow=lambda t: False) -> list[bytes]:
    reads: dict[int, int] = {}
    out = []
    for t in range(seconds + 1):
        reads = add(reads, {8: 1000, 15: 200} if slow(t) else {8: 1000})
        out.append(page("ebs", read=reads, write={}, queue=queue(t)))
    return out


def test_queue_build_up_without_limits():
    window = window_of(growing(10, queue=lambda t: 40 + t))
    (finding,) = findings.analyze(window)
    assert finding.kind == "queue_buildup"
    assert finding.numbers["max_queue_length"] == 50
    assert "busy, not throttled" in finding.detail


def test_latency_outliers_without_limits():
    window = window_of(growing(10, slow=lambda t: t in (4, 7)))
    (finding,) = findings.analyze(window)
    assert (finding.kind, finding.numbers["op"], finding.numbers["seconds"]) == (
        "latency_outliers", "read", 2)


def test_quiet_device_has_no_findings():
    assert findings.analyze(window_of(growing(10))) == []
