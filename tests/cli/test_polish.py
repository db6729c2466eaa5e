"""The CLI as an iostat user meets it: options and operands in any order, one-line usage
errors, --source everywhere, a hint for a recording given to decode, columns that stay
aligned, average request size, and -z."""

from __future__ import annotations

import argparse
import io
import json

import pytest

from nitrometer import native
from nitrometer.cli import main
from nitrometer.commands import devices, snapshot, view
from tests.cli.fixtures import (
    EBS,
    EBS_BASE,
    LOCAL,
    LOCAL_BASE,
    LOCAL_NEXT,
    page,
    sampler_over,
)

SIM = ["--source", "simulate:i3en.2xlarge:steady:gp3", "--speed", "0"]


def test_options_and_operands_in_any_order(capsys):
    assert main(["snapshot", "1", *SIM, "nvme3n1", "2", "-j"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["device"]["name"] for r in rows] == ["nvme3n1", "nvme3n1"]


@pytest.mark.parametrize("argv", [["snapshot", "--bogus"], ["diagnose", "--duration"],
                                  ["replay"], ["list", "--json=yes"], ["frobnicate"]])
def test_every_usage_error_is_one_line(capsys, argv):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("nitrometer: "), err
    assert "usage:" not in err


def test_list_takes_a_source(capsys):
    assert main(["list", *SIM[:2], "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["device"], r["kind"], r["readable"]) for r in rows] == [
        ("nvme1n1", "instance_store", True), ("nvme2n1", "instance_store", True),
        ("nvme3n1", "ebs", True)]


def test_decode_says_to_replay_a_recording(tmp_path, capsys):
    rec = tmp_path / "incident.nmrec"
    assert main(["record", "--out", str(rec), "--count", "1", *SIM]) == 0
    capsys.readouterr()
    assert main(["decode", str(rec)]) == 2
    err = capsys.readouterr().err
    assert err == (f"nitrometer: {rec}: a nitrometer recording, not a page: look at it with "
                   f"`nitrometer replay {rec}`\n")


def test_decode_errors_carry_no_internal_suffix(tmp_path, capsys):
    bad = tmp_path / "bad.bin"
    bad.write_bytes(b"\x00" * 4096)
    assert main(["decode", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "originated" not in err and "unknown magic" in err


def test_histogram_columns_stay_aligned_for_any_count():
    huge = page("instance_store", read={4: 4_000_000_000, 9: 7}, write={5: 3})
    lines = view.render_histogram("read latency", native.decode(huge).read, view.Style())
    rows = [line for line in lines[1:] if "%" in line or line.rstrip().endswith("0")]
    assert len({line.index("%") for line in rows if "%" in line}) == 1
    assert "4,000,000,000" in "\n".join(lines)
    text = view.render_cumulative(LOCAL, native.decode(huge), view.Style(), details=True)
    header = next(line for line in text.splitlines() if line.strip().startswith("IO size"))
    assert len(header) == len(next(line for line in text.splitlines()
                                   if line.strip().startswith("<=512")))


def test_skip_idle_and_average_request_size():
    steps = sampler_over([(EBS, [EBS_BASE, EBS_BASE, EBS_BASE]),  # no IO at all
                          (LOCAL, [LOCAL_BASE, LOCAL_NEXT, LOCAL_NEXT])])
    reporter = devices.Reporter(io.StringIO())
    devices.first_tick(steps.engine, reporter)
    out = io.StringIO()
    args = argparse.Namespace(json=False, details=False, skip_idle=True)
    snapshot.show_intervals(steps.engine, reporter, 2, args, out, view.Style())
    rows = [line.split()[0] for line in out.getvalue().splitlines()
            if line.startswith("nvme")]
    assert rows == ["nvme2n1"]  # the idle EBS volume is left out, the local disk shown once
    # 4 KiB reads and 32 KiB writes in LOCAL_NEXT's second.
    assert " 4.0K " in out.getvalue() and "32.0K" in out.getvalue()


def test_interval_view_shows_how_close_to_the_limits(capsys):
    over = ["--source", "simulate:i3en.2xlarge:over-limit:gp3", "--speed", "0"]
    assert main(["snapshot", "1", "1", *over]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert all(len(line) <= 80 for line in lines[:-1])  # wrapped; the summary line is last
    lines = out.replace("\n    ", " ").splitlines()  # wrapped notes back on one line
    volume = next(line for line in lines if "volume (gp3) at" in line)
    assert volume.startswith("  nvme3n1 ") and "% of 3,000 IOPS" in volume
    store = next(line for line in lines if line.startswith("  instance store (i3en.2xlarge)"))
    # The scenario asks for writes past the instance's write IOPS limit: at the limit.
    assert "writes 100% of 130,000 IOPS" in store and "reads" in store
    assert any(line.startswith("  instance EBS (i3en.2xlarge) at ") for line in lines)
    # An instance type nitrometer has no limits for: no such lines, nothing made up.
    assert main(["snapshot", "1", "1", *over, "--instance.type", "t3.nano"]) == 0
    assert "instance store (" not in capsys.readouterr().out
