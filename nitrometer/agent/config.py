"""The agent's configuration: flags and the YAML file merged into one validated, frozen object.

Precedence: a flag given on the command line, then the config file, then the default. The
config file uses the flag names as keys (`poll.interval: 1s`, `collector.host: false`).
"""

from __future__ import annotations

import argparse
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from nitrometer.collectors.base import SourceSpec, parse_source
from nitrometer.collectors.cgroups import DEFAULT_DEPTH, DEFAULT_PATTERNS, parse_patterns
from nitrometer.configfile import SCALARS, kind_of, parse_volumes, parse_yaml, read_text
from nitrometer.ec2 import check_instance_type
from nitrometer.errors import ConfigError
from nitrometer.timefmt import parse_duration, parse_interval, parse_share, shown

DEFAULT_PORT = 9720
HOUR = 3600.0  # the longest peak window and rescan interval
# name -> (help, on by default); --collector.NAME / --no-collector.NAME, as node_exporter.
COLLECTORS = {
    "host": ("CPU busy and iowait per second (/proc/stat)", True),
    "identity": ("instance identity, limits, price, normalized hours and cost counters", True),
    "io_size": ("latency histograms per IO-size band (instance store)", True),
    "peaks": ("per-window peaks of 1 s IOPS, throughput and latency", True),
    "ebs_api": ("EBS volume type, provisioned IOPS and throughput from the EC2 API "
                "(DescribeVolumes with the instance's role)", False),
    "workload": ("IO per workload (cgroup v2 io.stat of services, containers and pods) on "
                 "each device, where the io controller is mounted", True),
    "kubernetes": ("namespace, pod and container names of workloads and the PersistentVolume "
                   "of each EBS volume, from the Kubernetes API (in a cluster, with the "
                   "pod's service account)", True),
}
LOG_LEVELS = ("debug", "info", "warn", "error")  # node_exporter's; "warning" is taken too
LOG_FORMATS = ("logfmt", "json")
BUCKETS = ("coarse", "device")
DEMO_SOURCE = "simulate:i3en.xlarge:mixed:gp3"

# key -> (default, metavar, help); keys are the flag names without the leading dashes.
OPTIONS = {
    "web.listen-address": (f":{DEFAULT_PORT}", "[HOST]:PORT",
                           "address to serve metrics on; :PORT for all interfaces; repeat "
                           "the flag to listen on several"),
    "web.telemetry-path": ("/metrics", "PATH", "path under which to serve metrics"),
    "web.config.file": (None, "FILE", "TLS and basic auth, in the Prometheus exporter-toolkit "
                        "format"),
    "poll.interval": ("1s", "DURATION", "time between polls of each device: whole seconds from "
                      "1s to 1h (the device refreshes its statistics about once a second)"),
    "path.sysfs": ("/sys", "DIR", "sysfs mount point"),
    "path.dev": ("/dev", "DIR", "device node directory"),
    "path.cgroupfs": ("/sys/fs/cgroup", "DIR", "cgroup v2 mount point"),
    "collector.workload.top": ("5", "K", "workloads per device with their own series (by ops "
                               "over the last minute); the rest are workload=\"other\""),
    "collector.workload.patterns": (",".join(DEFAULT_PATTERNS), "GLOBS", "cgroups (paths "
                                    "under path.cgroupfs, * matches across /) that are "
                                    "workloads, comma separated"),
    "collector.workload.depth": (str(DEFAULT_DEPTH), "N", "how many levels under "
                                 "path.cgroupfs to look for workloads"),
    "path.serviceaccount": ("/var/run/secrets/kubernetes.io/serviceaccount", "DIR",
                            "the pod's service account token and CA (in a cluster)"),
    "kubernetes.node-name": (None, "NAME", "this node's name, to list only its pods "
                             "(default: $NODE_NAME)"),
    "source": ("ioctl", "SPEC", "ioctl | nvme-cli | replay:FILE | "
               "simulate:TYPE[:SCENARIO[:EBS,...]]"),
    "events.file": (None, "FILE", "append each performance-exceeded episode event to this "
                    "file, one JSON line"),
    "exceeded.min-share": ("1%", "SHARE", "share of an interval over a limit that counts the "
                           "interval as exceeded (gauges, interval counter, episodes)"),
    "exceeded.episode-end": ("3", "N", "intervals in a row not exceeded that end an episode"),
    "histogram.buckets": ("coarse", "coarse|device", "latency buckets: a coarse set that keeps "
                          "an instance-store device under 120 series, or the device's own bins"),
    "peaks.window": ("60s", "DURATION", "window over which the peak gauges are taken, 1s to "
                     "1h"),
    "rescan.interval": ("30s", "DURATION", "time between device rescans (attach/detach), 1s "
                        "to 1h"),
    "log.level": ("info", "LEVEL", "debug | info | warn | error"),
    "log.format": ("logfmt", "FORMAT", "logfmt | json"),
    "instance.region": (None, "REGION", "region for prices and limits when the instance "
                        "identity has none (off EC2: none, so no prices)"),
    "instance.type": (None, "TYPE", "instance type (default: from IMDS, DMI or the simulator)"),
}
FLAGS = {  # boolean flags that are not collectors
    "web.disable-exporter-metrics": "leave out the process_* and python_* metrics of the "
                                    "agent's own process",
    "collector.disable-defaults": "turn every collector off unless enabled by its own flag",
}


@dataclass(frozen=True)
class AgentConfig:
    listen: tuple = (("", DEFAULT_PORT),)  # (host, port) for each --web.listen-address
    telemetry_path: str = "/metrics"
    web_config_file: str | None = None
    config_file: str | None = None
    poll_interval: float = 1.0
    sysfs_path: str = "/sys"
    dev_path: str = "/dev"
    cgroupfs_path: str = "/sys/fs/cgroup"
    workload_top: int = 5
    workload_patterns: tuple = DEFAULT_PATTERNS
    workload_depth: int = DEFAULT_DEPTH
    serviceaccount_path: str = "/var/run/secrets/kubernetes.io/serviceaccount"
    node_name: str | None = None
    source: SourceSpec = field(default_factory=lambda: SourceSpec("ioctl"))
    demo: bool = False
    collectors: frozenset = frozenset(n for n, (_, on) in COLLECTORS.items() if on)
    exporter_metrics: bool = True
    events_file: str | None = None
    exceeded_share: float = 0.01
    episode_end: int = 3
    buckets: str = "coarse"
    peaks_window: float = 60.0
    rescan_interval: float = 30.0
    log_level: str = "info"
    log_format: str = "logfmt"
    region: str | None = None
    instance_type: str | None = None
    volumes: dict = field(default_factory=dict)  # volume id -> ebs.VolumeLimits, from the file

    @property
    def listen_host(self) -> str:
        return self.listen[0][0]

    @property
    def listen_port(self) -> int:
        return self.listen[0][1]

    @property
    def listen_address(self) -> str:
        return ", ".join(f"[{h}]:{p}" if ":" in h else f"{h}:{p}" for h, p in self.listen)

    def enabled(self, collector: str) -> bool:
        return collector in self.collectors


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Every default is None here so the merge can tell a given flag from an absent one."""
    for key, (default, metavar, help_text) in OPTIONS.items():
        shown = f" (default: {default})" if default is not None else ""
        parser.add_argument(f"--{key}", dest=_dest(key), default=None, metavar=metavar,
                            help=(help_text + shown).replace("%", "%%"),
                            action="append" if key == "web.listen-address" else "store")
    parser.add_argument("--config.file", dest="config_file", default=None, metavar="FILE",
                        help="YAML file whose keys are these flag names; SIGHUP reloads it")
    parser.add_argument("--demo", dest="demo", action="store_true", default=None,
                        help="use Amazon NVMe devices if any are found, else the simulated "
                        f"fleet {DEMO_SOURCE}")
    for key, help_text in FLAGS.items():
        parser.add_argument(f"--{key}", dest=_dest(key), action="store_true", default=None,
                            help=help_text)
    for name, (help_text, on) in COLLECTORS.items():
        parser.add_argument(f"--collector.{name}", dest=_dest(f"collector.{name}"),
                            action=argparse.BooleanOptionalAction, default=None,
                            help=f"{help_text} (default: {'on' if on else 'off'})")


def _dest(key: str) -> str:
    return key.replace(".", "_").replace("-", "_")


def parse_listen_address(value: str) -> tuple[str, int]:
    match = re.fullmatch(r"(?:\[([0-9a-fA-F:.]+)\]|([^:\[\]]*)):(\d+)", str(value).strip())
    port = int(match.group(3)) if match else -1
    if not match or not 0 < port < 65536:
        raise ConfigError(f"web.listen-address: expected HOST:PORT or :PORT, got {value!r}")
    return (match.group(1) or match.group(2) or ""), port


def load_file(path: str) -> dict:
    data = parse_yaml(read_text(path, "config.file"), f"config.file {path}")
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config.file {path}: expected a mapping of flag names to values")
    known = set(OPTIONS) | set(FLAGS) | {"demo", "ebs.volumes"} | {
        f"collector.{n}" for n in COLLECTORS}
    for key, value in data.items():
        if key not in known:
            raise ConfigError(f"config.file {path}: unknown key {shown(key)}")
        if key == "web.listen-address" and isinstance(value, list) and \
                all(isinstance(v, str) for v in value):
            continue  # one address or a list of them, as the flag can be repeated
        if key != "ebs.volumes" and value is not None and not isinstance(value, SCALARS):
            raise ConfigError(f"config.file {path}: {key}: expected a single value, got "
                              f"{kind_of(value)}")
    # An empty value (`key:`) is the same as leaving the key out.
    return {k: v for k, v in data.items() if v is not None}


def _text(value) -> str | None:
    return None if value is None else str(value)


def _known_type(instance_type: str | None) -> str | None:
    return None if instance_type is None else check_instance_type(instance_type, "instance.type")


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

    def choice(key: str, allowed: tuple) -> str:
        value = str(pick(key)).lower()
        value = {"warning": "warn"}.get(value, value) if key == "log.level" else value
        if value not in allowed:
            raise ConfigError(f"{key}: expected one of {', '.join(allowed)}, got {value!r}")
        return value

    listens = pick("web.listen-address")
    listen = tuple(parse_listen_address(a)
                   for a in (listens if isinstance(listens, list) else [listens]))
    if not listen:
        raise ConfigError("web.listen-address: expected HOST:PORT or :PORT, got none")
    source_text = pick("source")
    demo = bool(_boolean("demo", pick("demo")))
    source = parse_source(str(source_text))
    interval = parse_interval("poll.interval", pick("poll.interval"))
    episode_end = str(pick("exceeded.episode-end")).strip()
    if not episode_end.isdigit() or int(episode_end) < 1:
        raise ConfigError(f"exceeded.episode-end: expected a whole number of intervals of at "
                          f"least 1, got {pick('exceeded.episode-end')!r}")
    none_by_default = _boolean("collector.disable-defaults", pick("collector.disable-defaults"))
    collectors = set()
    for name, (_help, on) in COLLECTORS.items():
        value = _boolean(f"collector.{name}", pick(f"collector.{name}"))
        if value or (value is None and on and not none_by_default):
            collectors.add(name)
    path = str(pick("web.telemetry-path"))
    if not path.startswith("/") or path == "/":
        raise ConfigError(f"web.telemetry-path: expected a path like /metrics, got {path!r}")
    web_config = _text(pick("web.config.file"))
    if web_config is not None and not Path(web_config).is_file():
        raise ConfigError(f"web.config.file {shown(web_config, 200)}: no such file")
    return AgentConfig(
        listen=tuple(dict.fromkeys(listen)),  # the same address twice is one socket
        telemetry_path=path,
        web_config_file=web_config,
        config_file=config_file,
        poll_interval=interval,
        sysfs_path=str(pick("path.sysfs")),
        dev_path=str(pick("path.dev")),
        cgroupfs_path=str(pick("path.cgroupfs")),
        workload_top=_whole("collector.workload.top", pick("collector.workload.top"), 1, 100),
        workload_patterns=parse_patterns(pick("collector.workload.patterns")),
        workload_depth=_whole("collector.workload.depth", pick("collector.workload.depth"), 1,
                              32),
        serviceaccount_path=str(pick("path.serviceaccount")),
        node_name=_text(pick("kubernetes.node-name")) or os.environ.get("NODE_NAME") or None,
        source=source,
        demo=demo,
        collectors=frozenset(collectors),
        exporter_metrics=not _boolean("web.disable-exporter-metrics",
                                      pick("web.disable-exporter-metrics")),
        events_file=_text(pick("events.file")),
        exceeded_share=parse_share("exceeded.min-share", pick("exceeded.min-share")),
        episode_end=int(episode_end),
        buckets=choice("histogram.buckets", BUCKETS),
        peaks_window=parse_duration("peaks.window", pick("peaks.window"), minimum=1,
                                    maximum=HOUR),
        rescan_interval=parse_duration("rescan.interval", pick("rescan.interval"), minimum=1,
                                       maximum=HOUR),
        log_level=choice("log.level", LOG_LEVELS),
        log_format=choice("log.format", LOG_FORMATS),
        region=_text(pick("instance.region")),
        instance_type=_known_type(_text(pick("instance.type"))),
        volumes=parse_volumes(from_file.get("ebs.volumes"), config_file),
    )


def _whole(key: str, value, low: int, high: int) -> int:
    text = str(value).strip()
    if isinstance(value, bool) or not text.isdigit() or not low <= int(text) <= high:
        raise ConfigError(f"{key}: expected a whole number from {low} to {high}, got "
                          f"{shown(value)}")
    return int(text)


def _boolean(key: str, value) -> bool | None:
    if value is not None and not isinstance(value, bool):
        raise ConfigError(f"{key}: expected true or false, got {shown(value)}")
    return value
