"""`nitrometer run` that also notes when each tick starts: `agent_probe TICKS_FILE ARGS...`.

The agent exposes its overrun counter and poll durations but not the start of each
tick, which the jitter figures need. Appending one float per tick costs nothing next to
the tick itself. The times are written to TICKS_FILE as JSON when the agent stops.
"""

from __future__ import annotations

import json
import sys
import time

from nitrometer.cli import main
from nitrometer.sampling.engine import Engine


def run(ticks_file: str, args: list[str]) -> int:
    starts: list[float] = []
    tick = Engine.tick

    def noted_tick(self):
        starts.append(time.monotonic())
        return tick(self)

    Engine.tick = noted_tick
    try:
        return main(["run", *args])
    finally:
        with open(ticks_file, "w") as out:
            json.dump(starts, out)


if __name__ == "__main__":
    sys.exit(run(sys.argv[1], sys.argv[2:]))
