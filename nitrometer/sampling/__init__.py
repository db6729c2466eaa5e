"""The one sampling engine of the agent and the device commands.

A page's way, from the device to /metrics and to the terminal:

    collectors/ (ioctl, nvme-cli, replay, simulator)   read() -> raw page, time
    sampling/reads.py      one worker per real device: slow reads isolated, late ones kept
    sampling/device.py     baseline, reset, layout change and glitch rules (C core: native)
    sampling/interval.py   the record of one interval: rates, means, quantiles, the one rule
                           for "exceeded", headroom, flags (record_json.py: as JSON)
    sampling/limits.py     the limits a device works under, and the headroom left to them
    sampling/episodes.py   runs of exceeded intervals, as events
    sampling/engine.py     the schedule and the tick that ties them together
    sampling/factory.py    the one way the agent and the commands build the engine
        -> agent/state.py + agent/exporter.py    running totals, /metrics
        -> commands/ (snapshot, diagnose, record, replay)   what a person reads
"""

from nitrometer.sampling.engine import Engine, Settings, SlowRead, SourceEnded, TickResult
from nitrometer.sampling.factory import build_engine, engine_settings
from nitrometer.sampling.interval import (
    DEFAULT_EXCEEDED_SHARE,
    OPS,
    QUANTILES,
    BandStats,
    Exceeded,
    Headroom,
    Interval,
    Limits,
    OpStats,
    nan_to_none,
)

__all__ = ["DEFAULT_EXCEEDED_SHARE", "OPS", "QUANTILES", "BandStats", "Engine", "Exceeded",
           "Headroom", "Interval", "Limits", "OpStats", "Settings", "SlowRead", "SourceEnded",
           "TickResult", "build_engine", "engine_settings", "nan_to_none"]
