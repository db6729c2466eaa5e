"""A real Prometheus server (Debian's package) on 127.0.0.1 for tests."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import yaml

from devkit.ports import free_port  # noqa: F401 - the tests' one way to a free port


def require(binary: str) -> str:
    path = shutil.which(binary)
    if path is None:
        pytest.fail(f"{binary} is not installed: run `make sysdeps`")
    return path


class PrometheusServer:
    """Start with `with PrometheusServer(tmp_path, targets=[...]) as prom:`; stopped on exit."""

    def __init__(self, tmp_path: Path, targets=(), *, scrape_interval: str = "1s",
                 rule_files=(), storage_dir: Path | None = None, job: str = "nitrometer",
                 scrape_configs: list | None = None, extra_args=()):
        self.dir = Path(tmp_path) / f"prometheus-{free_port()}"
        self.dir.mkdir(parents=True)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.storage_dir = Path(storage_dir) if storage_dir else self.dir / "data"
        if scrape_configs is None:
            scrape_configs = [{"job_name": job, "static_configs": [{"targets": list(targets)}]}]
        config = {
            "global": {"scrape_interval": scrape_interval, "evaluation_interval": scrape_interval},
            "rule_files": [str(Path(r).resolve()) for r in rule_files],
            "scrape_configs": scrape_configs,
        }
        self.config_path = self.dir / "prometheus.yml"
        self.config_path.write_text(yaml.safe_dump(config))
        self.extra_args = list(extra_args)
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> PrometheusServer:
        log = open(self.dir / "prometheus.log", "wb")
        self.process = subprocess.Popen(
            [require("prometheus"), f"--config.file={self.config_path}",
             f"--storage.tsdb.path={self.storage_dir}",
             f"--web.listen-address=127.0.0.1:{self.port}",
             "--storage.tsdb.retention.time=100y", *self.extra_args],
            stdout=log, stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"prometheus exited: {self.log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as r:
                    if r.status == 200:
                        return self
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"prometheus did not become ready: {self.log_tail()}")

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def log_tail(self, lines: int = 20) -> str:
        path = self.dir / "prometheus.log"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def _get(self, endpoint: str, params: dict) -> dict:
        url = f"{self.url}/api/v1/{endpoint}?{urllib.parse.urlencode(params)}"
        try:
            with urllib.request.urlopen(url, timeout=30) as r:
                body = json.load(r)
        except urllib.error.HTTPError as exc:
            body = json.load(exc)
        if body.get("status") != "success":
            raise AssertionError(f"query failed: {params}: {body.get('error')}")
        return body["data"]

    def query(self, expr: str, at: float | None = None) -> list:
        params = {"query": expr}
        if at is not None:
            params["time"] = at
        return self._get("query", params)["result"]

    def query_range(self, expr: str, start: float, end: float, step: float = 1) -> list:
        return self._get("query_range", {"query": expr, "start": start, "end": end,
                                         "step": step})["result"]

    def wait_for(self, expr: str, timeout: float = 30, predicate=bool) -> list:
        """Poll until the query's result satisfies predicate (default: non-empty)."""
        deadline = time.monotonic() + timeout
        while True:
            result = self.query(expr)
            if predicate(result):
                return result
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {expr}: last {result}")
            time.sleep(0.5)


def backfill_openmetrics(tmp_path: Path, text: str) -> Path:
    """A TSDB directory holding the OpenMetrics text (must end with '# EOF')."""
    tmp_path = Path(tmp_path)
    source = tmp_path / "backfill.om"
    source.write_text(text if text.rstrip().endswith("# EOF") else text.rstrip() + "\n# EOF\n")
    out = tmp_path / f"tsdb-{free_port()}"
    subprocess.run([require("promtool"), "tsdb", "create-blocks-from", "openmetrics",
                    str(source), str(out)], check=True, capture_output=True)
    return out
