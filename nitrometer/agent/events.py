"""Where episode events go: the log, and one JSON line each in events.file when set."""

from __future__ import annotations

import json
import logging
import threading

from nitrometer.errors import ConfigError

log = logging.getLogger("nitrometer.events")


def open_events_file(path: str):
    """Append mode, line buffered; ConfigError (one line) when it cannot be opened."""
    try:
        return open(path, "a", buffering=1, encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"events.file {path}: {exc.strerror}") from None
    except ValueError:  # a NUL byte in the path
        raise ConfigError(f"events.file {path!r}: not a file name") from None


class EventSink:
    """Writes each episode event to the log and, when configured, appends it to a file.

    The file is opened at once, so a path that cannot be written stops the start (or the
    reload) instead of failing at the first episode."""

    def __init__(self, path: str | None = None):
        self.path = path
        self._lock = threading.Lock()
        self._file = open_events_file(path) if path else None
        self.written = 0

    def reopen(self, path: str | None = None) -> None:
        """After SIGHUP: a new path, or the same one again after log rotation. The old file
        stays in use when the new one cannot be opened (ConfigError)."""
        new = open_events_file(path) if path else None
        with self._lock:
            if self._file is not None:
                self._file.close()
            self._file, self.path = new, path

    def write(self, episodes: list[dict]) -> None:
        for episode in episodes:
            line = json.dumps(episode, sort_keys=True)
            # logfmt shows the line as msg; JSON logs carry the episode's fields as fields.
            summary = f"{episode.get('event', 'event')} {episode.get('state', '')}".strip()
            log.info("%s", line, extra={"fields": episode, "summary": summary})
            if self.path:
                with self._lock:
                    try:
                        if self._file is None:
                            self._file = open(self.path, "a", buffering=1, encoding="utf-8")
                        self._file.write(line + "\n")
                    except OSError as exc:
                        log.error("events.file %s: %s", self.path, exc.strerror)
                        self._file = None
            self.written += 1

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None
