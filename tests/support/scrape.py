"""An agent's /metrics on loopback, for tests that poll until it serves."""

from __future__ import annotations

import urllib.request


def metrics_text(port: int, timeout: float = 10.0) -> str:
    """The exposition as text, or "" while nothing answers (the agent is still starting)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=timeout) as resp:
            return resp.read().decode()
    except OSError:
        return ""
