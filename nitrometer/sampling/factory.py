"""The one way the engine is built, for the agent and for every device command alike: the
same settings (interval, exceeded share, episode rules) with the same defaults."""

from __future__ import annotations

from nitrometer.sampling.engine import Engine, Settings
from nitrometer.sampling.episodes import DEFAULT_GAP, DEFAULT_ONGOING_EVERY
from nitrometer.sampling.interval import DEFAULT_EXCEEDED_SHARE


def engine_settings(*, interval: float = 1.0, exceeded_share: float = DEFAULT_EXCEEDED_SHARE,
                    episode_gap: int = DEFAULT_GAP,
                    ongoing_every: float = DEFAULT_ONGOING_EVERY,
                    recording: bool = False) -> Settings:
    """A recording hands out pages as fast as asked, so its reads catch up to the interval."""
    return Settings(interval=interval, exceeded_share=exceeded_share, episode_gap=episode_gap,
                    ongoing_every=ongoing_every, catch_up=recording)


def build_engine(sources=(), *, settings: Settings | None = None, clock=None,
                 threaded: bool = False, watcher=None, limits_of=None, **values) -> Engine:
    """The engine over `sources` (or what `watcher` finds); `values` are engine_settings'
    when no Settings are given. Real devices are read in threads of their own."""
    if settings is None:
        settings = engine_settings(**values)
    elif values:
        raise TypeError("give either settings or their values, not both")
    return Engine(sources, settings=settings, clock=clock, threaded=threaded, watcher=watcher,
                  limits_of=limits_of)
