"""What `savings` says about inputs it cannot use, and percentages as people write them."""

from __future__ import annotations

import gzip
import json
import os

import pytest

from devkit.synth_cur import Template, write_synthetic_cur
from nitrometer.cli import main

HEADER = "line_item_usage_type,line_item_usage_amount,line_item_line_item_type," \
         "line_item_unblended_cost\n"


def _err(capsys, *argv) -> tuple[int, str]:
    code = main(["savings", *argv])
    err = capsys.readouterr().err.strip()
    return code, err


@pytest.mark.parametrize("make, message", [
    (lambda tmp: "/dev/zero", "/dev/zero is a character device, not a file to read"),
    (lambda tmp: _fifo(tmp), "is a named pipe, not a file to read"),
    (lambda tmp: _write(tmp / "empty.csv", b""), "empty.csv is empty"),
    (lambda tmp: _dir(tmp / "nothing"), "nothing: no .parquet or .csv(.gz) report files inside"),
    (lambda tmp: _write(tmp / "zeros.csv", bytes(4096)), "is neither Parquet nor CSV: it "
                                                         "holds binary data"),
    (lambda tmp: _write(tmp / "latin1.csv", "région,x\n".encode("latin-1")),
     "its header line is not UTF-8 text"),
    (lambda tmp: _write(tmp / "photo.csv.gz", gzip.compress(bytes(range(256)) * 4)),
     "is neither Parquet nor CSV"),
    (lambda tmp: _write(tmp / "notes.csv", b"name,age\nada,36\n"),
     "is not a Cost and Usage Report"),
    (lambda tmp: _write(tmp / "ragged.csv", (HEADER + "BoxUsage:m5.large,1,Usage\n").encode()),
     "ragged.csv: unreadable line(s): line 2: Expected Number of Columns: 4 Found: 3"),
    (lambda tmp: _write(tmp / "bytes.csv", (HEADER + "BoxUsage:m5.large,1,Usage,0.1\n")
                        .encode() + b"BoxUsage:m5.\xfflarge,1,Usage,0.1\n"),
     "line 3: Invalid unicode"),
    (lambda tmp: tmp / "missing.parquet", "missing.parquet: no such file or directory"),
])
def test_unusable_report_is_one_line_in_words(tmp_path, capsys, make, message):
    code, err = _err(capsys, "--cur", str(make(tmp_path)))
    assert code == 2
    assert message in err and len(err.splitlines()) == 1, err


@pytest.mark.parametrize("make, message", [
    (lambda tmp: "/dev/zero", "/dev/zero is a character device, not a file to read"),
    (lambda tmp: _fifo(tmp), "is a named pipe, not a file to read"),
    (lambda tmp: _dir(tmp / "usage"), "usage is a directory, not a file to read"),
    (lambda tmp: _write(tmp / "empty.csv", b""), "empty.csv is empty"),
])
def test_unusable_usage_table_is_one_line_in_words(tmp_path, capsys, make, message):
    """Never read forever (/dev/zero has no end and no newline) nor block on a pipe."""
    code, err = _err(capsys, "--usage", str(make(tmp_path)))
    assert code == 2
    assert message in err and len(err.splitlines()) == 1, err


def _write(path, data: bytes):
    path.write_bytes(data)
    return path


def _dir(path):
    path.mkdir()
    return path


def _fifo(tmp):
    path = tmp / "pipe.csv"
    os.mkfifo(path)
    return path


@pytest.fixture(scope="module")
def small_bill(tmp_path_factory):
    path = tmp_path_factory.mktemp("nih") / "cur2.parquet"
    write_synthetic_cur(path, 500, templates=(Template("m5.large", "eligible", rate=0.096),))
    return path


def _reduction(capsys, bill, value: str) -> tuple[float, str]:
    code = main(["savings", "--cur", str(bill), "-o", "json", "--nih-reduction", value])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return json.loads(captured.out)["nih_reduction_pct"], captured.err


@pytest.mark.parametrize("value", ["10%", "10 %", " 10%", "10", "10.0"])
def test_nih_reduction_as_people_write_it(capsys, small_bill, value):
    pct, err = _reduction(capsys, small_bill, value)
    assert pct == pytest.approx(10.0) and "warning" not in err


def test_bare_fraction_is_a_percentage_with_a_warning(capsys, small_bill):
    """A bare number has always been a percentage: 0.1 is 0.1 %, and is said to be."""
    pct, err = _reduction(capsys, small_bill, "0.1")
    assert pct == pytest.approx(0.1)
    assert "--nih-reduction 0.1 is read as 0.1 %; write 10% for 10 %" in err
    pct, err = _reduction(capsys, small_bill, "0.5%")
    assert pct == pytest.approx(0.5) and "warning" not in err


@pytest.mark.parametrize("value, message", [
    ("55", "NIH reduction 55 % is outside 0-40 %"),
    ("41%", "NIH reduction 41 % is outside 0-40 %"),
    ("-1", "outside 0-40 %"),
    ("ten", "--nih-reduction 'ten' is not a percentage (write 10% or 10)"),
    ("10%%", "is not a percentage"),
    ("nan", "is not a percentage"),
    ("inf%", "is not a percentage"),
])
def test_bad_nih_reduction_is_one_line(capsys, small_bill, value, message):
    code, err = _err(capsys, "--cur", str(small_bill), "--nih-reduction", value)
    assert code == 2 and message in err and len(err.splitlines()) == 1, err


def test_progress_bar_only_on_a_terminal(small_bill, tmp_path):
    """The bar goes to stderr when it is a terminal (a pty here), and never into a pipe."""
    import fcntl
    import pty
    import struct
    import subprocess
    import sys
    import termios

    command = [sys.executable, "-m", "nitrometer", "savings", "--cur", str(small_bill),
               "--out", str(tmp_path / "report.txt")]
    piped = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert piped.returncode == 0 and "reading usage" not in piped.stderr
    controller, terminal = pty.openpty()
    # 24 rows of 80 columns: a new pty has none, and tqdm fits the bar to the width
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    try:
        done = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=terminal,
                              timeout=120)
        os.close(terminal)
        shown = b""
        while True:
            try:
                chunk = os.read(controller, 65536)
            except OSError:  # the terminal side is closed: all read
                break
            if not chunk:
                break
            shown += chunk
    finally:
        os.close(controller)
    assert done.returncode == 0
    assert b"reading usage" in shown and b"100%" in shown
    quiet = subprocess.run([*command, "--no-progress"], capture_output=True, text=True,
                           timeout=120)
    assert "reading usage" not in quiet.stderr


def test_legacy_csv_with_repeated_tag_headers_and_a_quote_in_its_name(tmp_path):
    """Legacy CUR repeats tag columns that differ only in case (resourceTags/user:Name and
    resourceTags/user:name): SQL sees them as one name, so they are told apart."""
    from nitrometer.savings.cur import read_usage

    path = tmp_path / "bill's.csv"
    path.write_text(
        "lineItem/UsageType,lineItem/UsageAmount,lineItem/LineItemType,lineItem/UnblendedCost,"
        "resourceTags/user:Name,resourceTags/user:name,lineItem/UsageStartDate\n"
        "BoxUsage:m5.large,2,Usage,0.192,web,Web,2026-05-03T00:00:00Z\n"
        "BoxUsage:m5.large,1.5,Usage,not-a-number,web,Web,2026-05-04T00:00:00Z\n")
    usage = read_usage([path]).set_index("category")
    assert usage.loc["usage", ["hours", "cost", "lines"]].tolist() == [2.0, 0.192, 1]
    assert usage.loc["invalid", "lines"] == 1 and usage.loc["usage", "month"] == "2026-05"
