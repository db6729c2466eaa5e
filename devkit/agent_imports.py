"""`nitrometer run` that tells what it imported: `python -m devkit.agent_imports OUT ARGS...`.

Every import of a module the running agent should not need (TLS, HTTP clients, email,
prometheus_client, ...) is noted with the nitrometer line that caused it (a module of
nitrometer's, or of a library it was importing). On SIGUSR1 the
agent writes OUT (JSON): those imports, every module loaded, its RSS and, when started
with `-X tracemalloc`, the memory Python allocated by file. With
NITROMETER_BENCH_READS=threaded every device is read by a thread of its own, to compare.
"""

from __future__ import annotations

import builtins
import json
import os
import signal
import sys
import tracemalloc

HEAVY = ("ssl", "_ssl", "hashlib", "_hashlib", "email", "urllib3", "requests",
         "prometheus_client", "yaml", "psutil", "bcrypt", "ec2_metadata")
HEAVY_MODULES = ("http.client", "http.server", "urllib.request")
READS_VARIABLE = "NITROMETER_BENCH_READS"  # "threaded": one read thread per device
PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + "/nitrometer/"


def heavy(name: str) -> bool:
    return name.split(".", 1)[0] in HEAVY or name in HEAVY_MODULES


class ImportWatch:
    """Notes every import statement naming such a module, loaded already or not (an
    earlier import elsewhere would hide a later one from a meta path finder)."""

    def __init__(self):
        self.noted: dict[tuple[str, str], None] = dict.fromkeys(
            (name, "start-up") for name in sorted(sys.modules) if heavy(name))
        self._import = builtins.__import__

    def install(self) -> None:
        builtins.__import__ = self

    def __call__(self, name, globals=None, locals=None, fromlist=(), level=0):
        module = self._import(name, globals, locals, fromlist, level)
        if level == 0:
            # `from http import client` names the module http.client; `from x import y`
            # of an attribute y names only x.
            names = [name, *(f"{name}.{item}" for item in fromlist or ()
                             if f"{name}.{item}" in sys.modules)]
            for found in filter(heavy, names):
                key = (found, self.importer())
                if key not in self.noted:
                    self.noted[key] = None
        return module

    @staticmethod
    def importer() -> str:
        frame = sys._getframe(2)
        while frame is not None:
            filename = frame.f_code.co_filename
            if filename.startswith(PACKAGE):
                return f"nitrometer/{filename[len(PACKAGE):]}:{frame.f_lineno}"
            frame = frame.f_back
        return "?"


def rss_kib() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def by_file(snapshot) -> list[tuple[str, int, int]]:
    """(file, bytes, blocks), largest first. A module's code is unmarshalled inside the
    import machinery: with tracebacks deep enough (-X tracemalloc=N) it is counted to the
    innermost file outside it, the one whose import statement loaded it."""
    sizes: dict[str, list[int]] = {}
    for stat in snapshot.statistics("traceback"):  # identical tracebacks grouped in C
        frames = list(stat.traceback)  # oldest first
        where = next((f.filename for f in reversed(frames)
                      if not f.filename.startswith("<frozen") and f.filename != __file__),
                     frames[-1].filename)
        entry = sizes.setdefault(where, [0, 0])
        entry[0] += stat.size
        entry[1] += stat.count
    return sorted(((name, size, count) for name, (size, count) in sizes.items()),
                  key=lambda row: -row[1])


def report(watch: ImportWatch) -> dict:
    out = {"pid": os.getpid(),
           "imports": [{"module": name, "by": by} for name, by in watch.noted],
           "modules": sorted(sys.modules), "rss_kib": rss_kib(), "by_file": []}
    if tracemalloc.is_tracing():
        out["by_file"] = by_file(tracemalloc.take_snapshot())
        out["traced"] = tracemalloc.get_traced_memory()[0]
    return out


def main(out_file: str, args: list[str]) -> int:
    watch = ImportWatch()
    watch.install()
    agent = os.getpid()

    def write(*_):
        if os.getpid() != agent:
            return  # the keeper, forked before the agent dropped its privileges
        with open(out_file + ".tmp", "w") as f:
            json.dump(report(watch), f)
        os.replace(out_file + ".tmp", out_file)

    signal.signal(signal.SIGUSR1, write)
    if os.environ.get(READS_VARIABLE) == "threaded":
        # For comparison: a worker thread per device, as for sources that block in a read.
        from nitrometer.sampling import engine
        from nitrometer.sampling.reads import ThreadedReads

        engine.PolledReads = ThreadedReads
    from nitrometer.cli import main as nitrometer

    return nitrometer(["run", *args])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2:]))
