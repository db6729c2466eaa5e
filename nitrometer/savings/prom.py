"""The fleet's own counters from Prometheus: usage for the model, and the measured NIH reduction.

Series come from the agent (names in nitrometer.metrics); every series carries the scrape's
`job` and `instance` labels, which is how hosts are joined to their ec2_instance_info.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from datetime import datetime, timezone

import requests

from nitrometer import metrics
from nitrometer.errors import ConfigError, NitrometerError
from nitrometer.savings.measured import DEFAULT_CONFIDENCE, HostWork, estimate
from nitrometer.savings.usage import usage_frame
from nitrometer.timefmt import parse_duration, parse_time

DEFAULT_WORK_METRICS = (metrics.READ_OPS, metrics.WRITE_OPS)
_METRIC_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


def time_range(start: str | None, end: str | None, span: str | None) -> tuple[float, float]:
    """(start, end) in unix seconds from --start/--end or --range (default: the last 7 days)."""
    end_ts = parse_time(end) if end else time.time()
    if start and span:
        raise ConfigError("give --start or --range, not both")
    start_ts = parse_time(start) if start else end_ts - parse_duration("--range", span or "7d")
    if start_ts >= end_ts:
        raise ConfigError("the time range is empty: --start must be before --end")
    return start_ts, end_ts


class Prometheus:
    """Instant queries against the HTTP API, with errors as one line."""

    def __init__(self, url: str, timeout: float = 30):
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.session = requests.Session()

    def query(self, expr: str, at: float) -> list[dict]:
        try:
            response = self.session.get(f"{self.url}/api/v1/query",
                                        params={"query": expr, "time": at}, timeout=self.timeout)
            body = response.json()
        except requests.RequestException as exc:
            from nitrometer.neterrors import describe

            raise NitrometerError(f"cannot reach Prometheus at {self.url}: "
                                  f"{describe(exc)}") from None
        except ValueError:
            raise NitrometerError(f"{self.url} did not answer like a Prometheus server "
                                  f"(HTTP {response.status_code})") from None
        if body.get("status") != "success":
            raise NitrometerError(f"Prometheus refused {expr!r}: {body.get('error')}")
        return body["data"]["result"]

    def per_host(self, expr: str, at: float) -> dict[tuple[str, str], float]:
        return {(r["metric"].get("job", ""), r["metric"].get("instance", "")):
                float(r["value"][1]) for r in self.query(expr, at)}


@dataclass
class Host:
    job: str
    instance: str
    instance_type: str
    region: str
    arch: str
    hours: float = 0.0
    nih: float = 0.0
    cost: float = float("nan")  # no cost counter (no price on the agent): priced by the model
    work: float = 0.0
    group: tuple = ()  # values of the comparison group labels


def _window(start: float, end: float) -> str:
    return f"{max(int(round(end - start)), 1)}s"


def _selector(name: str, label_filter: str | None) -> str:
    if not _METRIC_NAME.match(name):
        raise ConfigError(f"not a metric name: {name!r}")
    return f"{name}{{{label_filter}}}" if label_filter else name


def group_labels(group_by) -> tuple[str, ...]:
    labels = tuple(dict.fromkeys(label.strip() for label in group_by if label.strip()))
    for label in labels:
        if not _LABEL_NAME.match(label):
            raise ConfigError(f"not a label name: {label!r}")
    return labels or ("job",)


def _check_group_labels(prom: Prometheus, group_by: tuple[str, ...], info: list[dict],
                        window: str, end: float) -> None:
    """A group label no host has would pool every host into one group: refuse it."""
    present = {name for series in info for name in series["metric"]}
    missing = [label for label in group_by if label not in present]
    if not missing or not info:
        return
    # every target label of the hosts, to name the valid keys
    labels = set()
    for series in prom.query(f"last_over_time({metrics.INSTANCE_INFO}[{window}])", end):
        labels.update(name for name in series["metric"] if name != "__name__")
    raise ConfigError(f"--group-by: no host has the label {', '.join(missing)} "
                      f"(labels of {metrics.INSTANCE_INFO}: {', '.join(sorted(labels))})")


def fleet_hosts(prom: Prometheus, start: float, end: float,
                group_by: tuple[str, ...] = ("job",)) -> list[Host]:
    """Every host with its identity, group and hours, normalized hours and cost over the range.

    Group labels are read from the host's ec2_instance_info, so they must be target labels
    (on every series of the host), as `job` is."""
    window = _window(start, end)
    group_by = group_labels(group_by)
    by = ", ".join(dict.fromkeys(("job", "instance", "instance_type", "region", "arch",
                                  *group_by)))
    info = prom.query(f"max by ({by}) (last_over_time({metrics.INSTANCE_INFO}[{window}]))", end)
    _check_group_labels(prom, group_by, info, window, end)
    hosts = {}
    for series in info:
        labels = series["metric"]
        key = (labels.get("job", ""), labels.get("instance", ""))
        hosts[key] = Host(*key, labels.get("instance_type", ""), labels.get("region", ""),
                          labels.get("arch", ""),
                          group=tuple(labels.get(label, "") for label in group_by))
    for attr, name, scale in (("hours", metrics.INSTANCE_SECONDS, metrics.SECONDS_PER_HOUR),
                              ("nih", metrics.NORMALIZED_SECONDS, metrics.SECONDS_PER_HOUR),
                              ("cost", metrics.COST, 1)):
        for key, value in prom.per_host(
                f"sum by (job, instance) (increase({name}[{window}]))", end).items():
            if key in hosts:
                setattr(hosts[key], attr, value / scale)
    if not hosts:
        raise NitrometerError(f"no {metrics.INSTANCE_INFO} series in Prometheus between "
                              f"{iso(start)} and {iso(end)}: is the agent scraped?")
    return list(hosts.values())


def fleet_usage(hosts: list[Host]):
    """The normalised usage table of the fleet: one row per host's type and region."""
    rows = [{"month": "", "region": h.region, "instance_type": h.instance_type.lower(),
             "category": "usage", "hours": h.hours, "nih": h.nih, "hours_without_nf": 0.0,
             "cost": h.cost, "lines": 1, "source": "prometheus"}
            for h in hosts if h.hours > 0]
    if not rows:
        raise NitrometerError("the fleet's hours counters did not increase over the range")
    return usage_frame(rows)


def measure_nih_reduction(prom: Prometheus, start: float, end: float, *,
                          work_metrics=DEFAULT_WORK_METRICS, label_filter: str | None = None,
                          group_by: tuple[str, ...] = ("job",), min_hosts: int = 1,
                          min_hours: float = 1.0, confidence: float = DEFAULT_CONFIDENCE,
                          hosts: list[Host] | None = None) -> dict:
    """The fleet's NIH reduction on Graviton, per comparison group and at equal load
    (nitrometer.savings.measured), from each host's work, normalized hours and CPU counters.

    A Graviton fleet doing 25 % more work per normalized hour needs 20 % fewer of them.
    """
    group_by = group_labels(group_by)
    if hosts is None or any(len(h.group) != len(group_by) for h in hosts):
        hosts = fleet_hosts(prom, start, end, group_by)
    window = _window(start, end)
    work = {(h.job, h.instance): 0.0 for h in hosts}
    for name in work_metrics:
        expr = f"sum by (job, instance) (increase({_selector(name, label_filter)}[{window}]))"
        for key, value in prom.per_host(expr, end).items():
            if key in work:
                work[key] += value
    cpu = {attr: prom.per_host(f"sum by (job, instance) (increase({name}[{window}]))", end)
           for attr, name in (("busy", metrics.HOST_CPU_BUSY_SECONDS),
                              ("total", metrics.HOST_CPU_SECONDS))}
    measured_hosts = [
        HostWork((h.job, h.instance), h.arch, h.group, hours=h.hours, nih=h.nih,
                 work=work[(h.job, h.instance)],
                 cpu_busy_seconds=cpu["busy"].get((h.job, h.instance), 0.0),
                 cpu_seconds=cpu["total"].get((h.job, h.instance), 0.0))
        for h in hosts]
    try:
        result = estimate(measured_hosts, group_by, min_hosts=min_hosts, min_hours=min_hours,
                          confidence=confidence)
    except NitrometerError as exc:
        raise NitrometerError(
            f"{exc} (work: {', '.join(work_metrics)}"
            f"{' {' + label_filter + '}' if label_filter else ''}, between {iso(start)} and "
            f"{iso(end)})") from None
    return {**result, "work_metrics": list(work_metrics), "label_filter": label_filter,
            "start": iso(start), "end": iso(end), "prometheus": prom.url}


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def storage_fit(prom: Prometheus, start: float, end: float, hosts: list[Host] | None,
                result) -> list[dict]:
    """Each x86 type's measured peak IOPS and throughput against its target's limits."""
    from nitrometer.savings.storage import storage_fit as fit

    if not hosts:
        return []
    window = _window(start, end)
    lines = result.lines
    targets = {t: g for t, g in zip(lines["instance_type"], lines["target_type"])
               if isinstance(g, str)}
    host_peaks: dict[tuple[str, str], dict] = {}
    for metric, name in (("iops", metrics.PEAK_IOPS), ("throughput", metrics.PEAK_THROUGHPUT)):
        expr = (f"sum by (job, instance, kind, op) "
                f"(max_over_time({name}[{window}]))")
        for series in prom.query(expr, end):
            labels = series["metric"]
            host = (labels.get("job", ""), labels.get("instance", ""))
            key = (labels.get("kind", ""), labels.get("op", ""), metric)
            host_peaks.setdefault(host, {})[key] = float(series["value"][1])
    host_types = {(h.job, h.instance): h.instance_type.lower() for h in hosts}
    return fit(host_peaks, host_types, targets)
