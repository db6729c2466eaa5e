"""`nitrometer COMMAND ...`: one entry point; only the chosen command's module is imported."""

from __future__ import annotations

import argparse
import importlib
import io
import logging
import os
import signal
import sys

from nitrometer import __version__
from nitrometer.errors import ConfigError, NitrometerError

# name -> (module with configure(parser) and run(args) -> int, one-line help)
COMMANDS = {
    "run": ("nitrometer.agent.main", "run the agent: poll devices every second, serve /metrics"),
    "snapshot": ("nitrometer.commands.snapshot", "show devices once, or every INTERVAL seconds"),
    "diagnose": ("nitrometer.commands.diagnose", "sample for a while and explain what is wrong"),
    "list": ("nitrometer.commands.listing", "list NVMe devices and whether their page is readable"),
    "decode": ("nitrometer.commands.decode", "decode a raw 0xD0 log page saved to a file"),
    "record": ("nitrometer.commands.record", "record raw pages to a file for later replay"),
    "replay": ("nitrometer.commands.replay", "look at a recording as snapshot would"),
    "savings": ("nitrometer.savings.cli", "model Graviton savings in normalized instance hours"),
    "prices": ("nitrometer.prices.cli", "update the cached EC2 and Savings Plans prices"),
    "dashboards": ("nitrometer.dashboards.cli", "write the Grafana dashboards and rules"),
}


def terminal_width() -> int:
    """The columns shutil.get_terminal_size() gives: argparse imports shutil for it, and
    shutil loads bz2 and lzma into every process that parses its arguments, the agent too."""
    try:
        return int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        pass
    try:
        return os.get_terminal_size(sys.__stdout__.fileno()).columns
    except (AttributeError, ValueError, OSError):
        return 80


class HelpFormatter(argparse.HelpFormatter):
    def __init__(self, prog, indent_increment=2, max_help_position=24, width=None):
        super().__init__(prog, indent_increment, max_help_position,
                         width if width is not None else terminal_width())


class Parser(argparse.ArgumentParser):
    """Usage errors are one line (the command's --help has the rest), status 2; every
    command and subcommand answers --version."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)
        self.add_argument("--version", action="version", version=f"nitrometer {__version__}",
                          help="print the version and exit")

    def error(self, message: str):
        raise ConfigError(f"{message} (see `{self.prog} --help`)")


def _top_help() -> str:
    width = max(len(name) for name in COMMANDS)
    lines = ["usage: nitrometer COMMAND [ARGS...]", "",
             "EC2 NVMe detailed performance statistics: agent, CLI and savings model.", "",
             "commands:"]
    lines += [f"  {name:<{width}}  {help_text}" for name, (_m, help_text) in COMMANDS.items()]
    lines += ["", "`nitrometer COMMAND --help` for a command's options; --version."]
    return "\n".join(lines) + "\n"


def parse(argv: list[str]) -> tuple[argparse.Namespace, object]:
    """The command's own parser: options and operands in any order (intermixed)."""
    name = argv[0]
    if name not in COMMANDS:
        raise ConfigError(f"unknown command {name!r} (commands: {', '.join(COMMANDS)})")
    module_name, help_text = COMMANDS[name]
    module = importlib.import_module(module_name)
    parser = Parser(prog=f"nitrometer {name}", description=help_text)
    module.configure(parser)
    try:
        args = parser.parse_intermixed_args(argv[1:])
    except TypeError:  # a command with subcommands of its own
        args = parser.parse_args(argv[1:])
    args.command = name
    return args, module


def _command_logging() -> None:
    """Warnings from the engine (a glitch, a layout change) as one stderr line each."""
    logger = logging.getLogger("nitrometer")
    for old in [h for h in logger.handlers if getattr(h, "nitrometer_cli", False)]:
        logger.removeHandler(old)  # main() run again in one process (tests)
    from nitrometer.logs import StderrHandler

    handler = StderrHandler()
    handler.setFormatter(logging.Formatter("nitrometer: %(message)s"))
    handler.nitrometer_cli = True
    logger.addHandler(handler)
    logger.setLevel(logging.WARNING)


class OutputError(NitrometerError):
    """Standard output could not be written (a full disk, a closed pipe)."""

    def __init__(self, exc: OSError):
        super().__init__(f"cannot write to standard output: {exc.strerror or exc}")
        self.closed_pipe = isinstance(exc, BrokenPipeError)


class GuardedOutput:
    """Standard output whose write errors are OutputError, so that every command's output
    trouble ends the same way, whichever command and whichever write it was."""

    def __init__(self, stream):
        self._stream = stream

    def write(self, text):
        try:
            return self._stream.write(text)
        except OSError as exc:
            raise OutputError(exc) from None

    def flush(self):
        try:
            self._stream.flush()
        except OSError as exc:
            raise OutputError(exc) from None

    def __getattr__(self, name):
        return getattr(self._stream, name)


def _discard_output(stream) -> None:
    """What is still buffered goes nowhere: the interpreter's last flush must not fail again
    ("Exception ignored ...")."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, stream.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError, io.UnsupportedOperation):
        pass  # not a real file descriptor (tests capturing output)


def main(argv: list[str] | None = None) -> int:
    real = sys.stdout
    sys.stdout = GuardedOutput(real)
    try:
        return _main(argv)
    except OutputError as exc:
        _discard_output(real)
        if exc.closed_pipe:  # `nitrometer ... | head`: quiet, as a tool stopped by SIGPIPE
            return 128 + signal.SIGPIPE
        print(f"nitrometer: {exc}", file=sys.stderr)
        return exc.exit_code
    finally:
        sys.stdout = real


def _main(argv: list[str] | None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        (sys.stdout if argv else sys.stderr).write(_top_help())
        sys.stdout.flush()
        return 0 if argv else 2
    if argv[0] == "--version":
        print(f"nitrometer {__version__}")
        sys.stdout.flush()
        return 0
    try:
        args, module = parse(argv)
        if args.command != "run":  # the agent sets up its own logs
            _command_logging()
        code = int(module.run(args) or 0)
        sys.stdout.flush()  # here, where a failure is still one line and a status
        return code
    except OutputError:
        raise
    except SystemExit:  # --help and argparse's own exits: their output too is flushed here
        sys.stdout.flush()
        raise
    except NitrometerError as exc:
        print(f"nitrometer: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 128 + signal.SIGINT


if __name__ == "__main__":
    sys.exit(main())
