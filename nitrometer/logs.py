"""The agent's log lines in logfmt (the default, as Prometheus' own exporters) or JSON."""

from __future__ import annotations

import json
import logging
import sys
from datetime import datetime, timezone


def _time(record: logging.LogRecord) -> str:
    stamp = datetime.fromtimestamp(record.created, timezone.utc)
    return stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _fields(record: logging.LogRecord) -> dict:
    out = {"ts": _time(record), "level": record.levelname.lower(), "logger": record.name,
           "msg": record.getMessage()}
    if record.exc_info:
        out["err"] = logging.Formatter().formatException(record.exc_info)
    return out


def _logfmt_value(value: str) -> str:
    if value and not any(c in value for c in ' "=\n\\'):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


class LogfmtFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return " ".join(f"{k}={_logfmt_value(str(v))}" for k, v in _fields(record).items())


class JsonFormatter(logging.Formatter):
    """An event logged with extra={"fields": {...}} keeps its fields as JSON fields."""

    def format(self, record: logging.LogRecord) -> str:
        out = _fields(record)
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            out["msg"] = getattr(record, "summary", out["msg"])
            out.update((k, v) for k, v in fields.items() if k not in out)
        return json.dumps(out)


FORMATTERS = {"logfmt": LogfmtFormatter, "json": JsonFormatter}


class StderrHandler(logging.StreamHandler):
    """Writes to whatever sys.stderr is at the time (a test may have swapped it)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:
        pass


def setup_logging(level: str, fmt: str = "logfmt") -> None:
    """One handler on stderr for everything under "nitrometer"; called again on reload."""
    logger = logging.getLogger("nitrometer")
    handler = next((h for h in logger.handlers if getattr(h, "nitrometer_agent", False)), None)
    if handler is None:
        handler = StderrHandler()
        handler.nitrometer_agent = True
        logger.addHandler(handler)
    handler.setFormatter(FORMATTERS[fmt]())
    logger.setLevel({"warn": "WARNING"}.get(level, level.upper()))
