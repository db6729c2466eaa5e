"""Durations and timestamps, parsed and written the same way by every command and the agent."""

from __future__ import annotations

import re
from datetime import datetime, timezone

from nitrometer.errors import ConfigError

_DURATION = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*")
_SCALE = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0,
          None: 1.0}
# The device refreshes its statistics about once a second: a shorter interval shows
# alternate rows of zeros and doubled rates.
MIN_INTERVAL = 1.0


def parse_duration(what: str, value, *, minimum: float | None = None) -> float:
    """1, 1.5, "500ms", "2s", "5m", "1h", "1d" -> seconds; ConfigError naming `what`."""
    if isinstance(value, bool):
        raise ConfigError(f"{what}: expected a duration like 1s or 5m, got {value!r}")
    if isinstance(value, (int, float)):
        seconds = float(value)
    else:
        match = _DURATION.fullmatch(str(value))
        if not match:
            raise ConfigError(f"{what}: expected a duration like 1s or 5m, got {value!r}")
        seconds = float(match.group(1)) * _SCALE[match.group(2)]
    if not seconds > 0:
        raise ConfigError(f"{what}: must be more than zero, got {value!r}")
    if minimum is not None and seconds < minimum:
        raise ConfigError(f"{what}: at least {minimum:g}s, got {value!r}")
    return seconds


def parse_interval(what: str, value) -> float:
    """A sampling interval: at least MIN_INTERVAL, since the device updates once a second."""
    seconds = parse_duration(what, value)
    if seconds < MIN_INTERVAL:
        raise ConfigError(f"{what}: at least 1s (the device refreshes its statistics about "
                          f"once a second), got {value!r}")
    return seconds


def parse_share(what: str, value) -> float:
    """"1%", "0.5 %", 0.01 -> a fraction in [0, 1]."""
    text = str(value).strip()
    try:
        share = float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError:
        raise ConfigError(f"{what}: expected a share like 1% or 0.01, got {value!r}") from None
    if not 0.0 <= share <= 1.0:
        raise ConfigError(f"{what}: must be between 0% and 100%, got {value!r}")
    return share


def parse_time(text: str) -> float:
    """Unix seconds or RFC 3339 / ISO 8601 (a date alone is midnight UTC)."""
    try:
        return float(text)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(f"bad time {text!r} (unix seconds or e.g. 2026-07-01T00:00:00Z)"
                          ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()


def rfc3339(wall: float) -> str:
    """2026-12-01T10:00:00.000Z: UTC with milliseconds."""
    stamp = datetime.fromtimestamp(wall, timezone.utc).isoformat(timespec="milliseconds")
    return stamp.replace("+00:00", "Z")
