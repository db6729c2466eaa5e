"""8. Hostile clients: the poll schedule, scrapes and memory while the agent is attacked.

One agent (8 fake-ioctl devices read through its privileged reader, basic auth with a cost
10 bcrypt hash, started with a soft and hard fd limit of 1,024) goes through one phase per
attack, each the same length, all on loopback: quiet, idle sockets past the fd limit, slow
headers, oversized headers, a wrong-password flood, 200 scrapers. Through every phase a
well-behaved scraper with the right password asks once a second. Last, SIGTERM during the
flood, timed to the agent's exit.
"""

from __future__ import annotations

import asyncio
import base64
import http.client
import resource
import threading
import time
from pathlib import Path

import psutil

from benchmarks.common import Context, Section, fmt_mb, fmt_ms, median
from benchmarks.fleet import Agent, FakeFleet
from benchmarks.jitter import lateness

NAME = "hostile"
TITLE = "10. Hostile clients"
DEVICES = 8
FD_LIMIT = 1024
BCRYPT_COST = 10
USER, PASSWORD = "prometheus", "right-password"
IO_TIMEOUT = 10.0


def credentials(password: str) -> str:
    return "Basic " + base64.b64encode(f"{USER}:{password}".encode()).decode()


def _limit_fds() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (FD_LIMIT, FD_LIMIT))


class LimitedAgent(Agent):
    """fleet.Agent started with RLIMIT_NOFILE at FD_LIMIT, soft and hard."""

    def __init__(self, label: str, args: list[str], workdir: Path, env=None):
        super().__init__(label, args, workdir, env, preexec_fn=_limit_fds)

    def scrape(self, timeout: float = 10.0) -> tuple[bytes, float]:
        start = time.perf_counter()
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request("GET", "/metrics", headers={"Authorization": credentials(PASSWORD)})
            resp = conn.getresponse()
            body = resp.read()
            if resp.status != 200:
                raise RuntimeError(f"{self.label}: /metrics answered {resp.status}")
        finally:
            conn.close()
        return body, time.perf_counter() - start


# -- attackers: asyncio clients, one event loop in a thread, until a deadline ------------

async def _open(port):
    return await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), IO_TIMEOUT)


async def idle(port: int, until: float, counts: dict) -> None:
    """Connect and say nothing; when the agent closes the connection, connect again."""
    while time.monotonic() < until:
        try:
            reader, writer = await _open(port)
            counts["connections"] += 1
            await asyncio.wait_for(reader.read(), max(until - time.monotonic(), 0.01))
            writer.close()
        except (OSError, asyncio.TimeoutError):
            await asyncio.sleep(0.05)


async def slow_headers(port: int, until: float, counts: dict) -> None:
    """A request line, then one short header every half second, never the end."""
    while time.monotonic() < until:
        try:
            reader, writer = await _open(port)
            counts["connections"] += 1
            writer.write(b"GET /metrics HTTP/1.1\r\n")
            while time.monotonic() < until and not reader.at_eof():
                await asyncio.sleep(0.5)
                writer.write(b"X-Slow: 1\r\n")
                await asyncio.wait_for(writer.drain(), IO_TIMEOUT)
            writer.close()
        except (OSError, asyncio.TimeoutError):
            await asyncio.sleep(0.05)


BIG_HEADER = b"X-Pad: " + b"a" * 60_000 + b"\r\n"


async def big_headers(port: int, until: float, counts: dict) -> None:
    """100 headers of 60 KB each, as fast as the agent takes them."""
    while time.monotonic() < until:
        try:
            reader, writer = await _open(port)
            counts["connections"] += 1
            writer.write(b"GET /metrics HTTP/1.1\r\n")
            for _ in range(100):
                writer.write(BIG_HEADER)
                await asyncio.wait_for(writer.drain(), IO_TIMEOUT)
            await asyncio.wait_for(reader.read(), IO_TIMEOUT)
            writer.close()
        except (OSError, asyncio.TimeoutError):
            await asyncio.sleep(0.05)


async def get(port: int, until: float, counts: dict, password: str) -> None:
    request = (f"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
               f"Authorization: {credentials(password)}\r\n\r\n").encode()
    while time.monotonic() < until:
        try:
            reader, writer = await _open(port)
            writer.write(request)
            answer = await asyncio.wait_for(reader.read(), IO_TIMEOUT)
            writer.close()
            status = answer[9:12].decode(errors="replace") or "closed"
            counts[status] = counts.get(status, 0) + 1
        except (OSError, asyncio.TimeoutError) as exc:
            counts[type(exc).__name__] = counts.get(type(exc).__name__, 0) + 1
            await asyncio.sleep(0.05)


def wrong_passwords(port, until, counts):
    return get(port, until, counts, "wrong-password")


def scrapers(port, until, counts):
    return get(port, until, counts, PASSWORD)


ATTACKS = {  # phase -> (client coroutine, clients)
    "idle sockets past the fd limit": (idle, 1500),
    "slow headers": (slow_headers, 200),
    "oversized headers": (big_headers, 40),
    "wrong-password flood": (wrong_passwords, 50),
    "200 scrapers": (scrapers, 200),
}


def start_attack(kind: str, port: int, seconds: float) -> tuple[threading.Thread, dict]:
    client, n = ATTACKS[kind]
    counts: dict = {"connections": 0}
    until = time.monotonic() + seconds

    async def everyone():
        await asyncio.gather(*(client(port, until, counts) for _ in range(n)))

    thread = threading.Thread(target=asyncio.run, args=(everyone(),), daemon=True)
    thread.start()
    return thread, counts


# -- the phases ------------------------------------------------------------------------

def observe(agent: LimitedAgent, seconds: float) -> dict:
    """A good scrape a second, and the agent's RSS, descriptors and threads."""
    ok, latencies, rss, fds, threads = 0, [], [], [], []
    end = time.monotonic() + seconds
    attempts = 0
    while time.monotonic() < end:
        started = time.monotonic()
        attempts += 1
        try:
            _, took = agent.scrape(timeout=5)
            ok += 1
            latencies.append(took)
        except (OSError, RuntimeError, http.client.HTTPException):
            pass
        try:
            rss.append(agent.ps.memory_info().rss)
            fds.append(agent.ps.num_fds())
            threads.append(agent.ps.num_threads())
        except psutil.Error:
            pass
        time.sleep(max(1.0 - (time.monotonic() - started), 0))
    return {"attempts": attempts, "ok": ok, "latencies": latencies, "rss": max(rss or [0]),
            "fds": max(fds or [0]), "threads": max(threads or [0])}


def web_config(workdir: Path) -> Path:
    import bcrypt

    path = workdir / "hostile-web.yml"
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=BCRYPT_COST)).decode()
    path.write_text(f"basic_auth_users:\n  {USER}: '{hashed}'\n")
    return path


def raise_own_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 8192 if hard == resource.RLIM_INFINITY else min(8192, hard)
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


def run(ctx: Context) -> Section:
    from devkit.fakedev import build_shim

    section = Section(TITLE)
    phase_seconds = 5.0 if ctx.quick else 20.0
    raise_own_fd_limit()
    fleet = FakeFleet(ctx.workdir / "hostile-fleet", build_shim(ctx.workdir), DEVICES)
    agent = LimitedAgent("hostile", [*fleet.args(), f"--web.config.file={web_config(ctx.workdir)}"],
                         ctx.workdir, env=fleet.env())
    phases = []
    try:
        agent.wait_ready(DEVICES)
        for kind in ["quiet", *ATTACKS]:
            ctx.log(f"hostile: {kind}")
            attack = start_attack(kind, agent.port, phase_seconds) if kind in ATTACKS else None
            start = time.monotonic()
            seen = observe(agent, phase_seconds)
            end = time.monotonic()
            if attack:
                attack[0].join(IO_TIMEOUT + 5)
            phases.append((kind, start, end, seen, attack[1] if attack else {}))
            time.sleep(1.0)  # the attack's last connections close before the next phase
        flood = start_attack("wrong-password flood", agent.port, 10.0)
        time.sleep(2.0)
        stop_started = time.monotonic()
        ticks = agent.stop()
        exit_seconds = time.monotonic() - stop_started
        flood[0].join(IO_TIMEOUT + 15)
    finally:
        agent.kill()
    origin = ticks[0]
    rows = []
    all_missed, tick_count = [], 0
    for kind, start, end, seen, counts in phases:
        late, missed = lateness(ticks, start, end, origin)
        all_missed.append(missed)
        tick_count += len(late)
        late = late or [float("nan")]
        lat = seen["latencies"] or [float("nan")]
        attack = ", ".join(f"{k} {v:,}" for k, v in sorted(counts.items()) if v) or "-"
        rows.append([kind, len(late), fmt_ms(median(late)), fmt_ms(max(late, default=0.0)),
                     missed, f"{seen['ok']}/{seen['attempts']}",
                     fmt_ms(median(lat)), fmt_mb(seen["rss"]), seen["fds"], seen["threads"],
                     attack])
        ctx.log(f"hostile: {kind}: max late {fmt_ms(max(late, default=0.0))}, {missed} "
                f"missed, scrapes {seen['ok']}/{seen['attempts']}, rss {fmt_mb(seen['rss'])}")
    section.add(
        f"One agent with {DEVICES} fake-ioctl instance-store devices read through its "
        f"privileged reader, basic auth (bcrypt cost {BCRYPT_COST}), started with an fd "
        f"limit of {FD_LIMIT:,} (soft and hard). Each phase lasts {phase_seconds:.0f} s; "
        "the clients are asyncio connections from one process on loopback. Through every "
        "phase a separate scraper with the right password asks once a second (5 s timeout): "
        "its successes over attempts and median latency are the scrape columns. Lateness is "
        "each tick's start against its slot on the 1 s schedule; RSS, descriptors and "
        "threads are the highest seen in the phase (sampled once a second).",
        "",
        "Attacks: 1,500 clients connecting and saying nothing (reconnecting when closed); "
        "200 sending a header every 0.5 s and never finishing; 40 sending 100 headers of "
        "60 KB; 50 sending wrong passwords back to back; 200 scraping back to back with the "
        "right password (the attack column counts answers by status).",
        "",
    )
    section.table(["phase", "ticks", "p50 late", "max late", "missed slots", "good scrapes",
                   "scrape p50", "max RSS", "max fds", "max threads", "attack"], rows)
    section.add(f"SIGTERM during a wrong-password flood: the agent exited in "
                f"{exit_seconds:.2f} s, status {agent.proc.returncode}.", "")
    worst_missed = max(all_missed, default=0)
    section.target("missed ticks under hostile clients", "none", f"{worst_missed} missed",
                   worst_missed == 0, f"{tick_count} ticks in {len(phases)} phases")
    section.target("SIGTERM under a wrong-password flood", "exit within 1 s",
                   f"{exit_seconds:.2f} s", exit_seconds < 1.0, "1 run")
    return section
