"""Errors a user sees as one line on stderr, with the exit status they carry."""

from __future__ import annotations

EXIT_OK = 0
EXIT_PROBLEM = 1  # diagnose found something wrong
EXIT_USAGE = 2  # bad input, bad config, unreadable device


class NitrometerError(Exception):
    """An expected failure: printed as one line, never as a traceback."""

    exit_code = EXIT_USAGE

    def __init__(self, message: str, exit_code: int | None = None):
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


class ConfigError(NitrometerError):
    """A bad flag, config file or environment value."""


class DeviceError(NitrometerError):
    """A device could not be opened, identified or read."""
