"""Headroom gauges for the live tests, served on 127.0.0.1 beside the simulated agents.

The dashboards' "% of limit" panels and the headroom rules divide by the volume and
instance limit gauges. Where an agent does not export a gauge family itself, this server
does, for that agent's own devices and with its instance and job labels, and Prometheus
scrapes it with honor_labels so the series join the agent's as if the agent had sent them.
Families the agent exports are left to the agent.
"""

from __future__ import annotations

import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from nitrometer import metrics as m
from tests.support.prometheus import free_port

JOB = "nitrometer"
# gp3's baseline, as a volume would report it.
VOLUME_LIMITS = {m.VOLUME_IOPS_LIMIT: 3000, m.VOLUME_THROUGHPUT_LIMIT: 125_000_000}
# Per kind and op; the values only need to be of the right order for an xlarge instance.
INSTANCE_LIMITS = {
    m.INSTANCE_IOPS_LIMIT: {"ebs": 40_000, "instance_store": 42_500},
    m.INSTANCE_THROUGHPUT_LIMIT: {"ebs": 593_750_000, "instance_store": 1_000_000_000},
}


def _labels(text: str) -> dict[str, str]:
    """The labels of one exposition line's label set ('a="x",b="y"'); values have no commas."""
    pairs = (item.split("=", 1) for item in text.split(",") if item)
    return {k: v.strip('"') for k, v in pairs}


def devices(exposition: str) -> list[dict[str, str]]:
    """device, serial and kind of every device in an agent's /metrics."""
    found = []
    for line in exposition.splitlines():
        if line.startswith(m.READ_OPS + "{"):
            labels = _labels(line[len(m.READ_OPS) + 1:line.index("}")])
            found.append({k: labels[k] for k in m.DEVICE_LABELS})
    return found


def exports(text: str, name: str) -> bool:
    """Whether an exposition has samples of the family (a HELP line alone is not enough)."""
    return any(line.startswith((name + "{", name + " ")) for line in text.splitlines())


def exposition(targets: dict[str, str]) -> str:
    """The gauges for each agent (host:port -> its /metrics text) that it lacks itself."""
    families: dict[str, list[str]] = {}
    for target, text in targets.items():
        own = {"instance": target, "job": JOB}
        found = devices(text)
        for name, value in VOLUME_LIMITS.items():
            if exports(text, name):
                continue
            for dev in found:
                if dev["kind"] == "ebs":
                    families.setdefault(name, []).append(_sample(name, {**dev, **own}, value))
        for name, per_kind in INSTANCE_LIMITS.items():
            if exports(text, name):
                continue
            for kind in sorted({dev["kind"] for dev in found}):
                for op in m.OPS:
                    labels = {"kind": kind, "op": op, **own}
                    families.setdefault(name, []).append(_sample(name, labels, per_kind[kind]))
    out = []
    for name, samples in families.items():
        out += [f"# TYPE {name} gauge", *samples]
    return "\n".join(out) + "\n"


def _sample(name: str, labels: dict[str, str], value: float) -> str:
    inner = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    return f"{name}{{{inner}}} {value}"


class LimitsServer:
    """`with LimitsServer({"127.0.0.1:9720": ...}) as limits:` serves on limits.target."""

    def __init__(self, agent_targets: list[str]):
        texts = {}
        for target in agent_targets:
            with urllib.request.urlopen(f"http://{target}/metrics", timeout=10) as r:
                texts[target] = r.read().decode()
        self.body = exposition(texts).encode()
        body = self.body

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (the http.server name)
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self.port = free_port()
        self.target = f"127.0.0.1:{self.port}"
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> LimitsServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
