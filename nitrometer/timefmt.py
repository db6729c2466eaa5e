"""Durations and timestamps, parsed and written the same way by every command and the agent."""

from __future__ import annotations

import math
import re
from datetime import datetime, timezone

from nitrometer.errors import ConfigError

_DURATION = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*")
_SCALE = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0,
          None: 1.0}
# The device refreshes its statistics about once a second: a shorter interval shows
# alternate rows of zeros and doubled rates, a fractional one alternates one and two
# refreshes per interval (1.5 s: 16.6k and 33.5k IOPS on a steady 25k). Hence whole seconds.
MIN_INTERVAL = 1.0
MAX_INTERVAL = 3600.0
# Any other duration: far past any use, and well inside what timers and floats can hold.
MAX_DURATION = 366 * 86400.0


def shown(value, limit: int = 40) -> str:
    """repr() of a value for a one-line error, cut short when it is long."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def format_seconds(seconds: float) -> str:
    """3600 -> "1h", 90 -> "90s", 0.5 -> "500ms": the largest unit that divides it."""
    for unit in ("w", "d", "h", "m", "s"):
        scale = _SCALE[unit]
        if seconds >= scale and (seconds / scale).is_integer():
            return f"{seconds / scale:g}{unit}"
    return f"{seconds * 1000:g}ms"


def parse_duration(what: str, value, *, minimum: float | None = None,
                   maximum: float = MAX_DURATION) -> float:
    """1, 1.5, "500ms", "2s", "5m", "1h", "1d" -> seconds, up to `maximum`; ConfigError
    naming `what`."""
    if isinstance(value, bool):
        raise ConfigError(f"{what}: expected a duration like 1s or 5m, got {shown(value)}")
    if isinstance(value, (int, float)):
        try:
            seconds = float(value)
        except OverflowError:  # an integer too large for a float
            seconds = math.inf
        if math.isnan(seconds):
            raise ConfigError(f"{what}: expected a duration like 1s or 5m, got {shown(value)}")
    else:
        match = _DURATION.fullmatch(str(value))
        if not match:
            raise ConfigError(f"{what}: expected a duration like 1s or 5m, got {shown(value)}")
        seconds = float(match.group(1)) * _SCALE[match.group(2)]
    if not seconds > 0:
        raise ConfigError(f"{what}: must be more than zero, got {shown(value)}")
    if minimum is not None and seconds < minimum:
        raise ConfigError(f"{what}: at least {format_seconds(minimum)}, got {shown(value)}")
    if not seconds <= maximum:  # also infinity
        raise ConfigError(f"{what}: at most {format_seconds(maximum)}, got {shown(value)}")
    return seconds


def parse_interval(what: str, value) -> float:
    """A device polling interval: whole seconds from MIN_INTERVAL to MAX_INTERVAL, since the
    device updates its statistics once a second."""
    seconds = parse_duration(what, value, maximum=MAX_INTERVAL)
    if seconds < MIN_INTERVAL:
        raise ConfigError(f"{what}: at least 1s (the device refreshes its statistics about "
                          f"once a second), got {shown(value)}")
    if not seconds.is_integer():
        raise ConfigError(f"{what}: whole seconds only (the device refreshes its statistics "
                          f"about once a second, so {seconds:g}s would alternate between one "
                          f"and two refreshes), got {shown(value)}")
    return seconds


def parse_share(what: str, value) -> float:
    """"1%", "0.5 %", 0.01 -> a fraction in [0, 1]."""
    text = str(value).strip()
    try:
        share = float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError:
        raise ConfigError(f"{what}: expected a share like 1% or 0.01, got {shown(value)}") from None
    if not 0.0 <= share <= 1.0:
        raise ConfigError(f"{what}: must be between 0% and 100%, got {shown(value)}")
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
