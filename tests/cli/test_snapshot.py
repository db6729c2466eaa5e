"""snapshot and replay end to end: simulated and recorded sources, JSON Lines, the fake device."""

from __future__ import annotations

import argparse
import io
import json
import re
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

from devkit.fakedev import MODEL_EBS, identify_bytes
from nitrometer.cli import main
from nitrometer.commands import devices, snapshot, view
from tests.cli.fixtures import EBS, EBS_BASE, EBS_NEXT, sampler_over

SCHEMA = json.loads((Path(__file__).parents[2] / "docs" / "snapshot.schema.json").read_text())
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)
SIM = ["--speed", "0", "--source", "simulate:i3en.xlarge:over-limit:gp3"]
TICK_HEADER = re.compile(r"^\d\d:\d\d:\d\d  op +IOPS +MB/s +avgrq +mean +p50 +p99 +p99\.9 +queue$")


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def records(text: str) -> list[dict]:
    rows = [json.loads(line) for line in text.splitlines()]
    for row in rows:
        VALIDATOR.validate(row)
    return rows


def test_cumulative_json_one_record_per_device(capsys):
    code, out, _ = run(capsys, "snapshot", "-j", *SIM)
    rows = records(out)
    assert code == 0
    assert [(r["view"], r["device"]["name"], r["device"]["kind"]) for r in rows] == [
        ("cumulative", "nvme1n1", "instance_store"), ("cumulative", "nvme2n1", "ebs")]
    local, ebs = rows
    assert len(local["io_size_bands"]) == 5 and ebs["io_size_bands"] == []
    assert local["read"]["iops"] is None and local["exceeded"]["instance_iops"]["percent"] is None
    assert sum(b["count"] for b in local["read"]["histogram"]) % 2**32 == \
        local["read"]["ops"] % 2**32


def test_interval_json_lines(capsys):
    code, out, err = run(capsys, "snapshot", "1", "3", "--json", *SIM)
    rows = records(out)
    assert code == 0 and len(rows) == 6
    assert [r["view"] for r in rows] == ["interval"] * 6
    assert [r["elapsed_s"] for r in rows[::2]] == [1.0, 2.0, 3.0]
    local = rows[0]
    assert local["interval_s"] == 1.0
    assert 70 <= local["exceeded"]["instance_iops"]["percent"] <= 100
    assert local["write"]["p99_us"] > 1000 > local["read"]["p99_us"]
    assert err.startswith("worst ")  # the summary stays off stdout in JSON mode


def test_interval_text_rows_then_summary(capsys):
    code, out, _ = run(capsys, "snapshot", "nvme1n1", "1", "2", *SIM)
    lines = out.splitlines()
    assert code == 0
    # No cumulative dump first: the first line is an interval header.
    assert TICK_HEADER.match(lines[0]), lines[0]
    assert sum(1 for line in lines if TICK_HEADER.match(line)) == 2
    assert sum(1 for line in lines if line.startswith("nvme1n1   read")) == 2
    assert all("nvme2n1" not in line for line in lines)
    assert lines[-1].startswith("worst ") and "instance IOPS limit" in lines[-1]
    assert all(len(line) <= 80 for line in lines)


def test_details_add_band_p99_rows(capsys):
    _, out, _ = run(capsys, "snapshot", "nvme1n1", "1", "1", "-d", *SIM)
    assert "IO size     <=512   <=4K   <=8K  <=32K   >32K" in out
    assert re.search(r"write p99 +\d", out)


def test_cumulative_text_has_histograms(capsys):
    _, out, _ = run(capsys, "snapshot", *SIM)
    assert "nvme1n1  instance store" in out and "nvme2n1  EBS volume" in out
    assert "read latency:" in out and "write latency:" in out
    assert "exceeded volume IOPS limit" in out  # EBS only
    assert out.count("exceeded volume") == 2


def _show(pages, count, out):
    """snapshot's interval view over one EBS device handing out `pages`."""
    steps = sampler_over([(EBS, pages)])
    reporter = devices.Reporter(io.StringIO())
    devices.first_tick(steps.engine, reporter)
    args = argparse.Namespace(json=False, details=False)
    return snapshot.show_intervals(steps.engine, reporter, count, args, out, view.Style())


def test_ctrl_c_ends_with_the_summary():
    out = io.StringIO()
    code = _show([EBS_BASE, EBS_NEXT, KeyboardInterrupt()], None, out)
    assert code == 0
    assert sum(1 for line in out.getvalue().splitlines() if TICK_HEADER.match(line)) == 1
    assert re.fullmatch(r"worst \d\d:\d\d:\d\d nvme1n1 \(volume IOPS limit, 85%\); "
                        r"total exceeded: nvme1n1 0\.85s", out.getvalue().splitlines()[-1])


@pytest.fixture
def recording(tmp_path) -> Path:
    path = tmp_path / "over-limit.nmr"
    proc = subprocess.run([sys.executable, "-m", "nitrometer", "record", "--out", str(path),
                           "--count", "6", "--source", "simulate:i3en.xlarge:over-limit:gp3"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return path


def test_replay_whole_recording_and_intervals(capsys, recording):
    code, out, _ = run(capsys, "replay", str(recording), "--json")
    rows = records(out)
    assert code == 0
    assert [(r["view"], r["device"]["name"]) for r in rows] == [
        ("recording", "nvme1n1"), ("recording", "nvme2n1")]
    assert 4.5 <= rows[0]["interval_s"] <= 5.5  # six pages a second apart
    code, out, _ = run(capsys, "replay", str(recording), "nvme2n1", "2")
    lines = out.splitlines()
    assert sum(1 for line in lines if TICK_HEADER.match(line)) == 2  # 5 s of pages, 2 s rows
    assert "! volume IOPS limit exceeded" in out
    assert lines[-1].startswith("worst ")


def test_replay_source_in_snapshot_and_diagnose(capsys, recording):
    code, out, _ = run(capsys, "snapshot", "--source", f"replay:{recording}", "--speed", "0",
                       "1", "--json")
    assert code == 0 and len(records(out)) == 10
    code, out, _ = run(capsys, "diagnose", "--source", f"replay:{recording}", "--speed", "0",
                       "--json")
    report = json.loads(out)
    VALIDATOR.validate(report)
    assert code == 1 and report["devices"][0]["intervals"] == 5


def test_snapshot_of_a_fake_device_through_the_ioctl_path(fake):
    fake.add("/dev/nvme1n1", identify=identify_bytes("vol0123456789abcdef0", MODEL_EBS,
                                                     bdev="sdf"), page=EBS_BASE)
    proc = fake.nitrometer("snapshot", "/dev/nvme1n1")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[0] == "nvme1n1  EBS volume  vol-0123456789abcdef0  " \
                                          "attached as sdf"
    assert "exceeded volume IOPS limit                  2,500,000us     2.50s" in proc.stdout
    proc = fake.nitrometer("snapshot", "/dev/nvme1n1", "--json")
    (row,) = records(proc.stdout)
    assert (row["read"]["ops"], row["exceeded"]["volume_iops"]["us"]) == (9004, 2_500_000)


def test_device_failing_mid_run_still_prints_the_summary():
    from nitrometer.errors import DeviceError

    out = io.StringIO()
    failure = DeviceError("/dev/nvme1n1: I/O error during Get Log Page 0xD0")
    with pytest.raises(DeviceError, match="I/O error during Get Log Page"):
        _show([EBS_BASE, EBS_NEXT, failure], 5, out)
    assert out.getvalue().splitlines()[-1].startswith("worst ")


def test_a_device_failing_mid_run_drops_out_while_the_others_go_on(fake):
    import json
    import subprocess
    import sys
    import threading
    import time

    for path, serial in (("/dev/nvme1n1", "vol0123456789abcdef0"),
                         ("/dev/nvme2n1", "vol0fedcba9876543210")):
        fake.add(path, identify=identify_bytes(serial, MODEL_EBS, bdev="sdf"), page=EBS_BASE)
    proc = subprocess.Popen([sys.executable, "-m", "nitrometer", "snapshot", "/dev/nvme1n1",
                             "/dev/nvme2n1", "1", "6", "--json"], env=fake.env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def fault():
        time.sleep(1.5)
        fake.fail("/dev/nvme1n1", "errno=EIO")
        time.sleep(2.0)
        fake.fail("/dev/nvme1n1", "")

    threading.Thread(target=fault, daemon=True).start()
    out, err = proc.communicate(timeout=60)
    rows = [json.loads(line) for line in out.splitlines()]
    per_device = {name: sum(r["device"]["name"] == name for r in rows)
                  for name in ("nvme1n1", "nvme2n1")}
    assert per_device["nvme2n1"] == 6  # never missed an interval
    assert 1 <= per_device["nvme1n1"] <= 4  # gone while it failed, back after
    assert err.count("showing the other devices") == 1, err
    assert err.count("nvme1n1 is readable again") == 1, err
    assert "Traceback" not in err
    assert proc.returncode == 2  # a device failed: scripts must hear of it


def test_interval_json_carries_headroom_against_the_known_limits(capsys):
    code, out, _ = run(capsys, "snapshot", "1", "2", "--json", *SIM)
    rows = records(out)
    assert code == 0 and len(rows) == 4
    for row in rows:
        rate = {"iops": "iops", "throughput": "mb_per_s"}
        for h in row["headroom"]:
            ops = ("read", "write") if h["op"] == "total" else (h["op"],)
            used = sum(row[op][rate[h["limit"]]] for op in ops)
            assert h["used"] == pytest.approx(used * (1e6 if h["limit"] == "throughput" else 1))
            assert h["percent"] == pytest.approx(100 * h["used"] / h["bound"])
        for key, over in row["exceeded"].items():
            assert over["counted"] == (over["percent"] >= 1.0), key  # the default 1 %
    local, ebs = rows[:2]
    assert {(h["scope"], h["op"], h["limit"]) for h in local["headroom"]} == {
        ("instance", "read", "iops"), ("instance", "write", "iops")}
    assert {(h["scope"], h["limit"], h["bound"]) for h in ebs["headroom"]
            if h["scope"] == "volume"} == {("volume", "iops", 3000.0),
                                           ("volume", "throughput", 131072000.0)}
