"""`nitrometer COMMAND ...`: one entry point; only the chosen command's module is imported."""

from __future__ import annotations

import argparse
import importlib
import logging
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


class Parser(argparse.ArgumentParser):
    """Usage errors are one line (the command's --help has the rest), status 2; every
    command and subcommand answers --version."""

    def __init__(self, *args, **kwargs):
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
    from nitrometer.agent.logs import StderrHandler

    handler = StderrHandler()
    handler.setFormatter(logging.Formatter("nitrometer: %(message)s"))
    handler.nitrometer_cli = True
    logger.addHandler(handler)
    logger.setLevel(logging.WARNING)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        (sys.stdout if argv else sys.stderr).write(_top_help())
        return 0 if argv else 2
    if argv[0] == "--version":
        print(f"nitrometer {__version__}")
        return 0
    try:
        args, module = parse(argv)
        if args.command != "run":  # the agent sets up its own logs
            _command_logging()
        return int(module.run(args) or 0)
    except NitrometerError as exc:
        print(f"nitrometer: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 128 + signal.SIGINT
    except BrokenPipeError:
        # `nitrometer ... | head` closed the pipe: not an error worth a traceback.
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
