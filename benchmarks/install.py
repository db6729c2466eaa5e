"""8. The base install against the full one: size on disk and the agent's memory.

Two venvs from the x86_64 wheel: `nitrometer` (the agent and the device commands) and
`nitrometer[savings]` (adds numpy, pandas and pyarrow). Size is every file in the venv, and the
site-packages alone. Then, round after round, one agent from each venv runs side by side on
the same simulated device; peak RSS is its high-water mark (VmHWM), and /proc/PID/maps
shows whether pandas or pyarrow was ever loaded into the daemon.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from benchmarks.common import ROOT, Context, Section, fmt_mb, median, peak_rss
from benchmarks.fleet import metric
from devkit.ports import free_port

NAME = "install"
TITLE = "9. The lean agent: base install against the savings extra"
VARIANTS = {"base": "", "full": "[savings]"}
SOURCE = "simulate:i3en.xlarge"


def wheel(ctx: Context) -> Path:
    out = ctx.workdir / "wheels"
    env = {**os.environ, "PYTHON": sys.executable, "WHEEL_DIR": str(out),
           "WHEEL_ARCHS": "x86_64"}
    subprocess.run([str(ROOT / "tests/tools/build-wheels")], cwd=ROOT, env=env, check=True,
                   capture_output=True, timeout=900)
    return next(out.glob("nitrometer-*-manylinux2014_x86_64.whl"))


def make_venv(ctx: Context, name: str, requirement: str) -> Path:
    venv = ctx.workdir / f"venv-{name}"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    subprocess.run([str(venv / "bin/python"), "-m", "pip", "install", "-q", "--only-binary",
                    ":all:", requirement], check=True, capture_output=True, timeout=1200)
    return venv


def size(path: Path) -> int:
    return sum(p.lstat().st_size for p in path.rglob("*") if p.is_file() or p.is_symlink())


def largest(venv: Path, count: int = 4) -> str:
    """The biggest distributions in site-packages (their top-level directories)."""
    site = next(venv.glob("lib/python3*/site-packages"))
    sizes = {p.name: size(p) for p in site.iterdir() if p.is_dir() and "." not in p.name}
    top = sorted(sizes.items(), key=lambda kv: -kv[1])[:count]
    return ", ".join(f"{name} {fmt_mb(b)}" for name, b in top)


class InstalledAgent:
    def __init__(self, venv: Path, workdir: Path):
        self.port = free_port()
        self.proc = subprocess.Popen(
            [str(venv / "bin/nitrometer"), "run", "--source", SOURCE, "--log.level=warning",
             f"--web.listen-address=127.0.0.1:{self.port}"],
            cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            env={**os.environ, "AWS_EC2_METADATA_DISABLED": "true"})

    def scrape(self) -> str:
        url = f"http://127.0.0.1:{self.port}/metrics"
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.read().decode()

    def wait_ready(self, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the agent exited with status {self.proc.returncode}")
            try:
                if metric(self.scrape(), "nitrometer_poll_duration_seconds_count") >= 2:
                    return
            except OSError:
                pass
            time.sleep(0.5)
        raise RuntimeError(f"the agent was not ready in {timeout:.0f} s")

    def loaded(self, *names: str) -> list[str]:
        maps = Path(f"/proc/{self.proc.pid}/maps").read_text()
        return [n for n in names if f"/site-packages/{n}" in maps]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def run(ctx: Context) -> Section:
    section = Section(TITLE)
    rounds, window = (1, 5.0) if ctx.quick else (5, 20.0)
    whl = wheel(ctx)
    venvs = {name: make_venv(ctx, name, f"{whl}{extra}") for name, extra in VARIANTS.items()}
    rss: dict[str, list[int]] = {name: [] for name in venvs}
    heavy_loaded: dict[str, set[str]] = {name: set() for name in venvs}
    for r in range(rounds):
        order = list(venvs) if r % 2 == 0 else list(reversed(venvs))
        agents = {name: InstalledAgent(venvs[name], ctx.workdir) for name in order}
        try:
            for agent in agents.values():
                agent.wait_ready()
            time.sleep(window)
            for name, agent in agents.items():
                agent.scrape()
                rss[name].append(peak_rss(agent.proc.pid))
                heavy_loaded[name].update(agent.loaded("pandas", "pyarrow"))
        finally:
            for agent in agents.values():
                agent.stop()
    rows = []
    for name, venv in venvs.items():
        mb = [fmt_mb(v) for v in sorted(rss[name])]
        ctx.log(f"install {name}: venv {fmt_mb(size(venv))}, agent peak RSS {mb}")
        rows.append([f"`pip install '{whl.name}{VARIANTS[name]}'`" if VARIANTS[name]
                     else f"`pip install {whl.name}`",
                     fmt_mb(size(venv)), largest(venv),
                     fmt_mb(median(rss[name])), f"{mb[0]} .. {mb[-1]}",
                     ", ".join(sorted(heavy_loaded[name])) or "neither"])
    section.add(
        f"Made by `python -m benchmarks --only install` with {sys.implementation.name} "
        f"{sys.version.split()[0]}. {rounds} rounds; in each, one agent per install polls "
        f"`{SOURCE}` every second for {window:.0f} s after its second poll, both at the "
        "same time (the order alternates), then its peak RSS is read.",
        "",
    )
    section.table(["install", "venv on disk", "largest in it", f"agent peak RSS, median of "
                   f"{rounds}", "range", "pandas/pyarrow in the agent"], rows)
    return section
