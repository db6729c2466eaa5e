"""Durations, intervals, shares and timestamps: one parser for the agent and every command."""

import pytest

from nitrometer.errors import ConfigError
from nitrometer.timefmt import parse_duration, parse_interval, parse_share, rfc3339


@pytest.mark.parametrize("text, seconds", [("40s", 40), ("2m", 120), ("90", 90),
                                           ("1.5h", 5400), ("500ms", 0.5), (3, 3.0),
                                           (" 1d ", 86400)])
def test_durations(text, seconds):
    assert parse_duration("--duration", text) == seconds


@pytest.mark.parametrize("text, message", [("soon", "expected a duration"),
                                           ("0s", "more than zero"), (True, "expected"),
                                           ("-1s", "expected a duration")])
def test_bad_durations_name_the_setting(text, message):
    with pytest.raises(ConfigError, match=message) as info:
        parse_duration("poll.interval", text)
    assert str(info.value).startswith("poll.interval: ")


def test_minimum():
    with pytest.raises(ConfigError, match="at least 2s"):
        parse_duration("--duration", "1s", minimum=2)


@pytest.mark.parametrize("text", ["0.5", "999ms", 0.2])
def test_intervals_under_a_second_are_refused(text):
    with pytest.raises(ConfigError, match="at least 1s .*once a second"):
        parse_interval("INTERVAL", text)
    assert parse_interval("INTERVAL", "1") == 1.0


@pytest.mark.parametrize("text, share", [("1%", 0.01), ("0.5 %", 0.005), ("0.02", 0.02),
                                         (0, 0.0), ("100%", 1.0)])
def test_shares(text, share):
    assert parse_share("exceeded.min-share", text) == pytest.approx(share)


@pytest.mark.parametrize("text", ["101%", "-1%", "lots", "1.5"])
def test_bad_shares(text):
    with pytest.raises(ConfigError, match="exceeded.min-share"):
        parse_share("exceeded.min-share", text)


def test_rfc3339_is_utc_with_milliseconds():
    assert rfc3339(0) == "1970-01-01T00:00:00.000Z"
    assert rfc3339(1764583200.1234) == "2025-12-01T10:00:00.123Z"
