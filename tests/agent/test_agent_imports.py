"""The running agent loads only what it uses: no OpenSSL, HTTP client, email or
prometheus_client modules unless TLS is configured, the instance identity asked of IMDSv2
included. The agent runs under devkit/agent_imports.py, which notes each such import with
the line that caused it."""

from __future__ import annotations

import json
import os
import signal
import ssl
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from devkit.agent_imports import heavy
from devkit.ports import free_port
from tests.agent.test_identity import imds  # noqa: F401 - the fake IMDSv2 fixture
from tests.agent.test_mtls import issue, make_ca
from tests.support.ec2_mixed import plug_ec2_mixed
from tests.support.processes import stop

SYSFS = Path(__file__).resolve().parent.parent / "sysfs" / "ec2-mixed"


class Agent:
    def __init__(self, tmp_path: Path, args: list[str], env: dict[str, str] | None = None):
        self.port = free_port()
        self.out = tmp_path / "imports.json"
        self.log = tmp_path / "agent.log"
        with open(self.log, "w") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "devkit.agent_imports", str(self.out),
                 f"--web.listen-address=127.0.0.1:{self.port}", *args],
                env=env, stdout=log, stderr=subprocess.STDOUT)

    def scrape(self, scheme="http", context=None, **headers) -> bytes:
        request = urllib.request.Request(f"{scheme}://127.0.0.1:{self.port}/metrics",
                                         headers=headers)
        with urllib.request.urlopen(request, timeout=10, context=context) as resp:
            return resp.read()

    def wait_serving(self, what: bytes, **kw) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.log.read_text()
            try:
                if what in self.scrape(**kw):
                    return
            except OSError:
                pass
            time.sleep(0.2)
        pytest.fail(f"the agent never served {what!r}: {self.log.read_text()}")

    def imports(self) -> dict:
        self.process.send_signal(signal.SIGUSR1)
        deadline = time.monotonic() + 30
        while not self.out.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        return json.loads(self.out.read_text())

    def close(self) -> str:
        if self.process.poll() is None:
            stop(self.process)
        return self.log.read_text()


def test_the_agent_on_devices_imports_nothing_it_does_not_use(fake, tmp_path, imds,  # noqa: F811
                                                              monkeypatch):
    dev = tmp_path / "dev"
    dev.mkdir()
    plug_ec2_mixed(fake, dev)
    env = fake.env()
    env.pop("AWS_EC2_METADATA_DISABLED", None)
    env["AWS_EC2_METADATA_SERVICE_ENDPOINT"] = imds.url
    agent = Agent(tmp_path, ["--source=ioctl", f"--path.sysfs={SYSFS}", f"--path.dev={dev}"],
                  env)
    try:
        agent.wait_serving(b'instance_id="i-0aa11bb22cc33dd44"')  # asked of IMDSv2
        agent.wait_serving(b'device="nvme2n1"')
        agent.scrape(**{"Accept-Encoding": "gzip"})
        agent.scrape(Accept="application/openmetrics-text; version=1.0.0")
        report = agent.imports()
    finally:
        log = agent.close()
    assert report["imports"] == [], log
    assert [m for m, _, _ in imds.seen] == ["PUT", "GET"]
    assert not [m for m in report["modules"] if heavy(m) and m.startswith(
        ("urllib3", "requests", "yaml", "bcrypt", "ec2_metadata", "psutil"))]
    # Neither argparse's help formatter (shutil, and through it bz2 and lzma), the IMDS
    # connection (the IDNA codec's unicodedata) nor an absent price cache (sqlite3).
    assert not {"shutil", "bz2", "lzma", "unicodedata", "sqlite3"} & set(report["modules"])


def test_the_demo_on_simulated_devices_imports_nothing_it_does_not_use(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
    agent = Agent(tmp_path, ["--demo", f"--path.sysfs={tmp_path / 'no-sysfs'}"], env)
    try:
        agent.wait_serving(b'kind="ebs"')
        agent.scrape(**{"Accept-Encoding": "gzip"})
        report = agent.imports()
    finally:
        log = agent.close()
    assert "simulated fleet" in log
    assert report["imports"] == [], log


def test_with_tls_configured_ssl_is_loaded_and_serves(tmp_path):
    make_ca(tmp_path, "ca", "nitrometer test CA")
    cert, key = issue(tmp_path, "ca", "server", "127.0.0.1", "IP:127.0.0.1", "serverAuth")
    web = tmp_path / "web.yml"
    web.write_text(f"tls_server_config:\n  cert_file: {cert}\n  key_file: {key}\n")
    agent = Agent(tmp_path, ["--source=simulate:i3en.xlarge", f"--web.config.file={web}"],
                  dict(os.environ))
    context = ssl.create_default_context(cafile=str(tmp_path / "ca.crt"))
    try:
        agent.wait_serving(b"ec2_nvme_read_ops_total", scheme="https", context=context)
        report = agent.imports()
    finally:
        log = agent.close()
    by = {i["module"]: i["by"] for i in report["imports"]}
    assert by.get("ssl", "").startswith("nitrometer/agent/webconfig.py"), log
    assert "_ssl" in report["modules"]
