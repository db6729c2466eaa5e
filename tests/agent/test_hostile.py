"""Hostile clients against `nitrometer run` on loopback: the agent holds.

Each attack runs against a real agent process; afterwards the sampler is still ticking, a
scrape still succeeds, memory stayed bounded and SIGTERM still gives a clean exit.
"""

from __future__ import annotations

import base64
import http.client
import json
import resource
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import bcrypt
import pytest

from nitrometer import metrics as m
from tests.support.prometheus import free_port

pytestmark = pytest.mark.slow


def wait_for(condition, timeout=60.0, what="condition"):
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.1)


class Agent:
    def __init__(self, tmp_path: Path, *extra: str, fd_limit: int | None = None):
        self.port = free_port()
        self.events = tmp_path / "events.jsonl"

        def limit():
            if fd_limit:
                resource.setrlimit(resource.RLIMIT_NOFILE, (fd_limit, fd_limit))

        self.log = open(tmp_path / "agent.log", "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "nitrometer", "run",
             f"--web.listen-address=127.0.0.1:{self.port}",
             "--source=simulate:i3en.xlarge:over-limit:gp3", f"--events.file={self.events}",
             *extra],
            stdout=self.log, stderr=subprocess.STDOUT, preexec_fn=limit)
        self.log_path = tmp_path / "agent.log"
        self.auth: str | None = None

    def request(self, path="/metrics", auth=None, timeout=10):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            headers = {}
            if auth or self.auth:
                headers["Authorization"] = "Basic " + base64.b64encode(
                    (auth or self.auth).encode()).decode()
            conn.request("GET", path, headers=headers)
            resp = conn.getresponse()
            return resp.status, resp.read().decode()
        finally:
            conn.close()

    def scrape(self) -> dict[str, float]:
        """Tick count, overruns and host CPU (the sampler's psutil) from a good scrape."""
        def attempt():
            try:
                status, body = self.request()
            except OSError:
                return None
            return body if status == 200 else None

        body = wait_for(attempt, what="a successful scrape")
        values = {}
        for line in body.splitlines():
            for name in (f"{m.POLL_DURATION}_count", m.POLL_OVERRUNS, m.HOST_CPU_BUSY):
                if line.startswith(name + " "):
                    values[name] = float(line.split()[1])
        return values

    def ticks(self) -> float:
        return self.scrape()[f"{m.POLL_DURATION}_count"]

    def ticking(self, more_than: float, count: int = 3) -> None:
        wait_for(lambda: self.ticks() >= more_than + count, what="the sampler to tick on")

    def status(self, field: str) -> int:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
        raise KeyError(field)

    def stop(self) -> str:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                pytest.fail("the agent did not stop on SIGTERM")
        self.log.close()
        return self.log_path.read_text()


@pytest.fixture
def agents():
    started = []

    def start(*args, **kw):
        agent = Agent(*args, **kw)
        started.append(agent)
        return agent

    yield start
    for agent in started:
        if agent.proc.poll() is None:
            agent.proc.kill()
            agent.proc.wait()


def assert_clean_exit(agent: Agent) -> None:
    out = agent.stop()
    assert agent.proc.returncode == 0, out
    for bad in ("Traceback", "FATAL", "EMFILE", "Too many open files"):
        assert bad not in out, out
    for line in agent.events.read_text().splitlines() if agent.events.exists() else []:
        json.loads(line)  # every episode line whole


def test_idle_sockets_past_the_fd_limit(agents, tmp_path):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 2400:
        pytest.skip("this test opens 1,100 sockets")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 2400), hard))
    agent = agents(tmp_path, fd_limit=1024)
    before = agent.ticks()
    sockets = []
    try:
        for _ in range(1100):
            try:
                sockets.append(socket.create_connection(("127.0.0.1", agent.port), timeout=5))
            except OSError:
                pass  # refused or timed out: the backlog is full, as it may be
        agent.ticking(before)
        values = agent.scrape()
        assert m.HOST_CPU_BUSY in values  # psutil in the tick still has descriptors
        assert len(list(Path(f"/proc/{agent.proc.pid}/fd").iterdir())) < 512
        assert agent.status("Threads") < 256 + 64
    finally:
        for s in sockets:
            s.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert_clean_exit(agent)


def _attack(port, payloads, stop):
    while not stop.is_set():
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
                for chunk in payloads:
                    s.sendall(chunk)
                    if stop.is_set():
                        break
                s.recv(100)
        except OSError:
            pass


def test_oversized_and_slow_headers_keep_memory_bounded(agents, tmp_path):
    agent = agents(tmp_path)
    before = agent.ticks()
    start_hwm = agent.status("VmHWM")
    header = b"X-Pad: " + b"a" * 60000 + b"\r\n"
    big = [b"GET /metrics HTTP/1.1\r\n"] + [header] * 100
    slow = [b"GET /metrics HTTP/1.1\r\n"] + [b"X-Slow: 1\r\n"] * 10000
    stop = threading.Event()
    threads = [threading.Thread(target=_attack, args=(agent.port, big if i % 2 else slow, stop),
                                daemon=True) for i in range(40)]
    for t in threads:
        t.start()
    try:
        time.sleep(5)
        agent.ticking(before)
        # 40 clients with 6 MB of headers each once took 250 MB; now a few KiB each.
        assert agent.status("VmHWM") - start_hwm < 64 * 1024
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    assert_clean_exit(agent)


def test_http09_and_stalled_request_lines_are_closed(agents, tmp_path):
    agent = agents(tmp_path)
    agent.ticks()
    with socket.create_connection(("127.0.0.1", agent.port), timeout=60) as s:
        s.sendall(b"GET /metrics\r\n")
        assert s.recv(100).startswith(b"HTTP/1.1 400")
    with socket.create_connection(("127.0.0.1", agent.port), timeout=60) as s:
        s.sendall(b"GET /metrics HTTP/1.1\r\n")  # and nothing more
        assert s.recv(100) == b""
    assert_clean_exit(agent)


def test_two_hundred_scrapers(agents, tmp_path):
    agent = agents(tmp_path)
    before = agent.ticks()
    outcomes: list = []

    def scraper():
        for _ in range(3):
            try:
                outcomes.append(agent.request(timeout=30)[0])
            except OSError as exc:
                outcomes.append(type(exc).__name__)

    threads = [threading.Thread(target=scraper) for _ in range(200)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    # Every scraper got an answer: the metrics, or a 503 to come back in a second.
    assert len(outcomes) == 600 and set(outcomes) <= {200, 503}, set(outcomes)
    assert outcomes.count(200) >= 300
    agent.ticking(before)
    assert_clean_exit(agent)


def replace_file(path: Path, text: str) -> None:
    """Atomically, as an operator's editor or config management would: never half-written."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def write_web_config(path: Path, user: str, password: str, cost: int = 10) -> None:
    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=cost)).decode()
    replace_file(path, f"basic_auth_users:\n  {user}: '{hashed}'\n")


def test_sigterm_during_a_wrong_password_flood_exits_cleanly(agents, tmp_path):
    web = tmp_path / "web.yml"
    write_web_config(web, "prom", "right")
    for round_ in range(3):
        workdir = tmp_path / f"round{round_}"
        workdir.mkdir()
        agent = agents(workdir, f"--web.config.file={web}")
        agent.auth = "prom:right"
        agent.ticks()
        stop = threading.Event()

        def flood(agent=agent, stop=stop):
            while not stop.is_set():
                try:
                    agent.request(auth="prom:wrong", timeout=5)
                except OSError:
                    pass

        threads = [threading.Thread(target=flood, daemon=True) for _ in range(30)]
        for t in threads:
            t.start()
        time.sleep(2)
        try:
            assert_clean_exit(agent)
        finally:
            stop.set()
            for t in threads:
                t.join(30)


def test_sighup_under_load_keeps_the_old_config_on_any_error(agents, tmp_path):
    web = tmp_path / "web.yml"
    write_web_config(web, "prom", "first", cost=4)
    config = tmp_path / "nitrometer.yml"
    config.write_text(f"web.config.file: {web}\n")
    agent = agents(tmp_path, f"--config.file={config}")
    agent.auth = "prom:first"
    before = agent.scrape()
    stop = threading.Event()

    def load():
        while not stop.is_set():
            try:
                agent.request(timeout=10)
            except OSError:
                pass

    threads = [threading.Thread(target=load, daemon=True) for _ in range(8)]
    for t in threads:
        t.start()
    try:
        for refused, bad in enumerate(("basic_auth_users:\n  - prom\n", "tls_server_config: 3\n",
                                       "basic_auth_users:\n  prom: '$2b$10$tooshort'\n", "{{{")):
            replace_file(web, bad)
            agent.proc.send_signal(signal.SIGHUP)
            wait_for(lambda n=refused: agent.log_path.read_text().count("reload failed") > n,
                     what="the reload to be refused")
        assert agent.proc.poll() is None
        assert agent.request()[0] == 200  # the old users still
        write_web_config(web, "prom", "second", cost=4)
        agent.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: agent.request(auth="prom:second")[0] == 200, what="the new password")
        assert agent.request(auth="prom:first")[0] == 401
        agent.auth = "prom:second"
        # Sampling went on through the reloads.
        wait_for(lambda: agent.scrape()[f"{m.POLL_DURATION}_count"]
                 > before[f"{m.POLL_DURATION}_count"] + 1, what="ticks after the reloads")
        after = agent.scrape()
        assert after[m.POLL_OVERRUNS] - before[m.POLL_OVERRUNS] <= 1
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    log = agent.stop()
    assert log.count("reload failed") == 4, log
    assert "Traceback" not in log


def test_a_bad_web_config_at_start_is_one_line_and_status_2(tmp_path):
    web = tmp_path / "web.yml"
    web.write_text("basic_auth_users:\n  - prom\n")
    done = subprocess.run([sys.executable, "-m", "nitrometer", "run",
                           f"--web.listen-address=127.0.0.1:{free_port()}",
                           "--source=simulate:i3en.xlarge", f"--web.config.file={web}"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "basic_auth_users must be a mapping" in done.stderr
