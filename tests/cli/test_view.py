"""Golden text for the cumulative and interval views, and the units people read."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from nitrometer import native
from nitrometer.commands import view
from tests.cli.fixtures import (
    EBS,
    EBS_BASE,
    EBS_NEXT,
    LOCAL,
    LOCAL_BASE,
    LOCAL_NEXT,
    bins,
    sampler_over,
)
from tests.support.golden import check_golden

GOLDEN = Path(__file__).with_name("golden")
PLAIN = view.Style()
WALL0 = 1_700_000_000.0  # 2023-11-14 22:13:20 UTC


def golden(name: str, text: str) -> None:
    check_golden(GOLDEN / name, text)


@pytest.fixture(autouse=True)
def utc(monkeypatch):
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def one_tick():
    sampler = sampler_over([(EBS, [EBS_BASE, EBS_NEXT]), (LOCAL, [LOCAL_BASE, LOCAL_NEXT])])
    sampler.first()
    return sampler.step()


def test_cumulative_golden():
    text = "\n".join(view.render_cumulative(d, native.decode(p), PLAIN)
                     for d, p in ((EBS, EBS_BASE), (LOCAL, LOCAL_BASE)))
    golden("cumulative.txt", text)


def test_cumulative_details_golden():
    golden("cumulative-details.txt",
           view.render_cumulative(LOCAL, native.decode(LOCAL_BASE), PLAIN, details=True))


def test_interval_golden():
    ticks = one_tick()
    golden("interval.txt", view.render_tick(ticks, WALL0, PLAIN)
           + view.render_summary(ticks, WALL0) + "\n")


def test_interval_details_golden():
    golden("interval-details.txt", view.render_tick(one_tick(), WALL0, PLAIN, details=True))


def test_every_line_fits_80_columns():
    ticks = one_tick()
    texts = [view.render_tick(ticks, WALL0, PLAIN, details=True)]
    texts += [view.render_cumulative(d, native.decode(p), PLAIN, details=True)
              for d, p in ((EBS, EBS_BASE), (LOCAL, LOCAL_BASE))]
    texts.append(view.render_summary(ticks, WALL0))
    for text in texts:
        for line in text.splitlines():
            assert len(line) <= 80, line


def test_throttled_device_is_flagged_with_the_numbers():
    ebs, local = one_tick()
    lines = view.render_interval(ebs, PLAIN)
    assert lines[-1] == "  ! volume IOPS limit exceeded 850,000us, 85% of 1.00s"
    # The local disk's instance counter did not move in this second: no flag.
    assert not any("!" in line for line in view.render_interval(local, PLAIN))


def test_summary_names_the_worst_second_and_total_exceeded():
    line = view.render_summary(one_tick(), WALL0)
    assert line == ("worst 22:13:21 nvme1n1 (volume IOPS limit, 85%); "
                    "total exceeded: nvme1n1 0.85s")


@pytest.mark.parametrize("us, text", [
    (None, "-"), (float("nan"), "-"), (0, "0us"), (0.5, "0.5us"), (7, "7us"), (999, "999us"),
    (1024, "1.02ms"), (16384, "16.4ms"), (131072, "131ms"), (2_500_000, "2.50s"),
])
def test_latency_units(us, text):
    assert view.fmt_us(us) == text


@pytest.mark.parametrize("lower, upper, text", [
    (0, 1, "0-1us"), (16, 32, "16-32us"), (512, 1024, "512us-1.02ms"),
    (8192, 16384, "8.19-16.4ms"), (1 << 25, 2**64 - 1, ">33.6s"),
])
def test_bin_labels(lower, upper, text):
    assert view.fmt_range(lower, upper) == text


def test_empty_bins_collapse():
    rows = view.histogram_rows([(lo, up, c) for lo, up, c in bins({3: 5, 4: 7, 9: 1})])
    assert rows == [("4-8us", 5), ("8-16us", 7), ("16-256us", 0), ("256-512us", 1)]
    assert view.histogram_rows(bins({})) == []


def test_colour_only_on_a_terminal_and_never_with_no_color(monkeypatch):
    class Tty:
        encoding = "utf-8"

        def isatty(self):
            return True

    monkeypatch.delenv("NO_COLOR", raising=False)
    assert view.terminal_style(Tty()) == view.Style(color=True, bar="\u2588")
    monkeypatch.setenv("NO_COLOR", "1")
    assert view.terminal_style(Tty()).color is False

    class Pipe(Tty):
        def isatty(self):
            return False

    monkeypatch.delenv("NO_COLOR")
    assert view.terminal_style(Pipe()) == view.Style(color=False, bar="#")
    coloured = view.render_interval(one_tick()[0], view.Style(color=True))
    assert "\033[1m\033[31mnvme1n1" in coloured[0]
    assert "\033[" not in "".join(view.render_interval(one_tick()[0], PLAIN))
