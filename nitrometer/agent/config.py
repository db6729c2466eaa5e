"""The agent's configuration: flags and the YAML file merged into one validated, frozen object.

Precedence: a flag given on the command line, then the config file, then the default. The
config file uses the flag names as keys (`poll.interval: 1s`, `collector.host: false`).
"""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass, field
from pathlib import Path

from nitrometer.collectors.base import SourceSpec, parse_source
from nitrometer.errors import ConfigError
from nitrometer.timefmt import parse_duration, parse_interval, parse_share

DEFAULT_PORT = 9720
COLLECTORS = {
    "host": "CPU busy and iowait per second (psutil)",
    "identity": "instance identity, price, normalized hours and cost counters",
    "io_size": "latency histograms per IO-size band (instance store)",
    "peaks": "per-window peaks of 1 s IOPS, throughput and latency",
}
LOG_LEVELS = ("debug", "info", "warning", "error")
DEMO_SOURCE = "simulate:i3en.xlarge:mixed:gp3"

# key -> (default, help); keys are the flag names without the leading dashes.
OPTIONS = {
    "web.listen-address": (f":{DEFAULT_PORT}", "address to serve /metrics on (HOST:PORT, "
                           f":PORT for all interfaces; default :{DEFAULT_PORT})"),
    "web.config.file": (None, "TLS and basic auth, in the Prometheus exporter-toolkit format"),
    "poll.interval": ("1s", "time between polls of each device (at least 1s: the device "
                      "refreshes its statistics about once a second)"),
    "path.sysfs": ("/sys", "sysfs mount point"),
    "path.dev": ("/dev", "device node directory"),
    "source": ("ioctl", "ioctl | nvme-cli | replay:FILE | simulate:TYPE[:SCENARIO[:EBS,...]]"),
    "events.file": (None, "append each performance-exceeded episode event to this file, one "
                    "JSON line"),
    "exceeded.min-share": ("1%", "share of an interval over a limit that counts the interval "
                           "as exceeded (gauges, interval counter, episodes)"),
    "exceeded.episode-end": ("3", "intervals in a row not exceeded that end an episode"),
    "peaks.window": ("60s", "window over which the peak gauges are taken"),
    "rescan.interval": ("30s", "time between device rescans (attach/detach)"),
    "log.level": ("info", "debug | info | warning | error"),
    "instance.region": ("us-east-1", "region for prices when the instance identity has none"),
    "instance.type": (None, "instance type override (default: from IMDS, DMI or the simulator)"),
}


@dataclass(frozen=True)
class AgentConfig:
    listen_host: str = ""
    listen_port: int = DEFAULT_PORT
    web_config_file: str | None = None
    config_file: str | None = None
    poll_interval: float = 1.0
    sysfs_path: str = "/sys"
    dev_path: str = "/dev"
    source: SourceSpec = field(default_factory=lambda: SourceSpec("ioctl"))
    demo: bool = False
    collectors: frozenset[str] = frozenset(COLLECTORS)
    events_file: str | None = None
    exceeded_share: float = 0.01
    episode_end: int = 3
    peaks_window: float = 60.0
    rescan_interval: float = 30.0
    log_level: str = "info"
    region: str = "us-east-1"
    instance_type: str | None = None

    @property
    def listen_address(self) -> str:
        host = f"[{self.listen_host}]" if ":" in self.listen_host else self.listen_host
        return f"{host}:{self.listen_port}"

    def enabled(self, collector: str) -> bool:
        return collector in self.collectors


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Every default is None here so the merge can tell a given flag from an absent one."""
    for key, (_default, help_text) in OPTIONS.items():
        parser.add_argument(f"--{key}", dest=_dest(key), default=None, metavar="VALUE",
                            help=help_text)
    parser.add_argument("--config.file", dest="config_file", default=None, metavar="FILE",
                        help="YAML file whose keys are these flag names; SIGHUP reloads it")
    parser.add_argument("--demo", dest="demo", action="store_true", default=None,
                        help="use Amazon NVMe devices if any are found, else the simulated "
                        f"fleet {DEMO_SOURCE}")
    for name, help_text in COLLECTORS.items():
        parser.add_argument(f"--collector.{name}", dest=_dest(f"collector.{name}"),
                            action=argparse.BooleanOptionalAction, default=None,
                            help=f"{help_text} (default on)")


def _dest(key: str) -> str:
    return key.replace(".", "_").replace("-", "_")


def parse_listen_address(value: str) -> tuple[str, int]:
    match = re.fullmatch(r"(?:\[([0-9a-fA-F:.]+)\]|([^:\[\]]*)):(\d+)", str(value).strip())
    port = int(match.group(3)) if match else -1
    if not match or not 0 < port < 65536:
        raise ConfigError(f"web.listen-address: expected HOST:PORT or :PORT, got {value!r}")
    return (match.group(1) or match.group(2) or ""), port


def load_file(path: str) -> dict:
    import yaml

    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ConfigError(f"config.file {path}: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" line {where.line + 1}" if where else ""
        raise ConfigError(f"config.file {path}:{line} not valid YAML") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config.file {path}: expected a mapping of flag names to values")
    known = set(OPTIONS) | {"demo"} | {f"collector.{n}" for n in COLLECTORS}
    for key in data:
        if key not in known:
            raise ConfigError(f"config.file {path}: unknown key {key!r}")
    return data


def build_config(args: argparse.Namespace) -> AgentConfig:
    """Flags over file over defaults, validated; ConfigError (one line) on any bad value."""
    config_file = getattr(args, "config_file", None)
    from_file = load_file(config_file) if config_file else {}

    def pick(key: str):
        flag = getattr(args, _dest(key), None)
        if flag is not None:
            return flag
        if key in from_file:
            return from_file[key]
        return OPTIONS[key][0] if key in OPTIONS else None

    host, port = parse_listen_address(pick("web.listen-address"))
    source_text = pick("source")
    demo = bool(pick("demo"))
    source = parse_source(str(source_text))
    interval = parse_interval("poll.interval", pick("poll.interval"))
    episode_end = str(pick("exceeded.episode-end")).strip()
    if not episode_end.isdigit() or int(episode_end) < 1:
        raise ConfigError(f"exceeded.episode-end: expected a whole number of intervals of at "
                          f"least 1, got {pick('exceeded.episode-end')!r}")
    level = str(pick("log.level")).lower()
    if level not in LOG_LEVELS:
        raise ConfigError(f"log.level: expected one of {', '.join(LOG_LEVELS)}, got {level!r}")
    collectors = set()
    for name in COLLECTORS:
        value = pick(f"collector.{name}")
        if value is not None and not isinstance(value, bool):
            raise ConfigError(f"collector.{name}: expected true or false, got {value!r}")
        if value is None or value:
            collectors.add(name)
    web_config = pick("web.config.file")
    if web_config is not None and not Path(web_config).is_file():
        raise ConfigError(f"web.config.file {web_config}: no such file")
    return AgentConfig(
        listen_host=host,
        listen_port=port,
        web_config_file=web_config,
        config_file=config_file,
        poll_interval=interval,
        sysfs_path=str(pick("path.sysfs")),
        dev_path=str(pick("path.dev")),
        source=source,
        demo=demo,
        collectors=frozenset(collectors),
        events_file=pick("events.file"),
        exceeded_share=parse_share("exceeded.min-share", pick("exceeded.min-share")),
        episode_end=int(episode_end),
        peaks_window=parse_duration("peaks.window", pick("peaks.window")),
        rescan_interval=parse_duration("rescan.interval", pick("rescan.interval")),
        log_level=level,
        region=str(pick("instance.region")),
        instance_type=pick("instance.type"),
    )
