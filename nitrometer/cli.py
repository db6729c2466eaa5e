"""`nitrometer COMMAND ...`: one entry point; only the chosen command's module is imported."""

from __future__ import annotations

import argparse
import importlib
import logging
import signal
import sys

from nitrometer import __version__
from nitrometer.errors import NitrometerError

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


def _chosen_command(argv: list[str]) -> str | None:
    return next((a for a in argv if not a.startswith("-")), None)


def build_parser(argv: list[str]) -> tuple[argparse.ArgumentParser, object | None]:
    parser = argparse.ArgumentParser(
        prog="nitrometer",
        description="EC2 NVMe detailed performance statistics: agent, CLI and savings model.",
    )
    parser.add_argument("--version", action="version", version=f"nitrometer {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    chosen, module = _chosen_command(argv), None
    for name, (module_name, help_text) in COMMANDS.items():
        command_parser = sub.add_parser(name, help=help_text, description=help_text)
        if name == chosen:
            module = importlib.import_module(module_name)
            module.configure(command_parser)
    return parser, module


def _command_logging() -> None:
    """Warnings from the engine (a glitch, a layout change) as one stderr line each."""
    logger = logging.getLogger("nitrometer")
    for old in [h for h in logger.handlers if getattr(h, "nitrometer_cli", False)]:
        logger.removeHandler(old)  # main() run again in one process (tests)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("nitrometer: %(message)s"))
    handler.nitrometer_cli = True
    logger.addHandler(handler)
    logger.setLevel(logging.WARNING)
    logger.propagate = False


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        parser, module = build_parser(argv)
        args = parser.parse_args(argv)
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
