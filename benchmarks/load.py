"""Scrape load: `python -m benchmarks.load PORT CLIENTS SECONDS [prometheus]` prints what it
did as JSON.

Each client opens a connection to 127.0.0.1:PORT, GETs /metrics, reads to the end and
starts again at once, until the time is up; with `prometheus` it asks as Prometheus does
(OpenMetrics, gzip), else for the plain text format uncompressed. Loopback only; every
request has a timeout. A 503 (the agent turning a scrape away because enough are in
flight) is counted apart.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

REQUEST_TIMEOUT = 10.0
# What Prometheus 2.x sends by default.
PROMETHEUS_HEADERS = ("Accept: application/openmetrics-text;version=1.0.0,application/"
                      "openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,"
                      "*/*;q=0.1\r\nAccept-Encoding: gzip\r\n")


async def get(port: int, request: str) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request.encode())
    await writer.drain()
    body = await reader.read()
    writer.close()
    return body


async def client(port: int, until: float, latencies: list[float], errors: list[str],
                 busy: list[float], headers: str = "") -> None:
    request = (f"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{headers}"
               "Connection: close\r\n\r\n")
    while time.monotonic() < until:
        start = time.monotonic()
        try:
            body = await asyncio.wait_for(get(port, request), REQUEST_TIMEOUT)
            if body.startswith(b"HTTP/1.") and b" 503 " in body[:20]:
                busy.append(time.monotonic() - start)
            elif not body.startswith(b"HTTP/1.") or b" 200 " not in body[:20]:
                errors.append("bad response")
            else:
                latencies.append(time.monotonic() - start)
        except (OSError, asyncio.TimeoutError) as exc:  # not TimeoutError before 3.11
            errors.append(type(exc).__name__)
            await asyncio.sleep(0.05)


async def main(port: int, clients: int, seconds: float, prometheus: bool = False) -> dict:
    latencies: list[float] = []
    errors: list[str] = []
    busy: list[float] = []
    until = time.monotonic() + seconds
    headers = PROMETHEUS_HEADERS if prometheus else ""
    await asyncio.gather(*(client(port, until, latencies, errors, busy, headers)
                           for _ in range(clients)))
    return {"requests": len(latencies), "errors": len(errors), "latencies": latencies,
            "busy": len(busy), "busy_latencies": busy}


if __name__ == "__main__":
    port, clients, seconds = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
    prometheus = sys.argv[4:] == ["prometheus"]
    print(json.dumps(asyncio.run(main(port, clients, seconds, prometheus))))
