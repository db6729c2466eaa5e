"""One meaning of "exceeded": at least exceeded.min-share of an interval over a limit, in the
agent's gauges and counters, its episodes and events, snapshot and diagnose alike."""

from __future__ import annotations

import json

import pytest

from nitrometer import metrics as m
from nitrometer.cli import main
from nitrometer.collectors.base import FastClock, SourceSpec
from nitrometer.sampling import Settings
from nitrometer.sampling.episodes import EpisodeTracker
from nitrometer.sim.devices import simulated_sources
from tests.agent.conftest import Events, Rig


def run_scenario(scenario: str, ticks: int, **settings):
    events = Events()
    clock = FastClock(0)
    sources = simulated_sources(SourceSpec("simulate", "i3en.xlarge", scenario, ("gp3",)),
                                clock)
    rig = Rig(sources, events=events, settings=Settings(**settings), clock=clock)
    rig.sampler.run(ticks)
    return rig, events


def samples(rig, name):
    return {s.labels["device"]: s.value for s in rig.samples() if s.name == name}


def test_steady_has_no_exceeded_interval_and_no_episode():
    rig, events = run_scenario("steady", 120)
    assert set(samples(rig, m.EXCEEDED_INTERVALS).values()) == {0.0}
    assert set(samples(rig, m.EXCEEDED_NOW).values()) == {0.0}
    assert set(samples(rig, m.EXCEEDED_EPISODES).values()) == {0.0}
    rig.sampler.close()
    assert events.seen == []


def test_over_limit_episodes_report_while_they_last_and_end():
    rig, events = run_scenario("over-limit", 150)
    # The instance write IOPS limit is exceeded ~85 % of every second.
    intervals = samples(rig, m.EXCEEDED_INTERVALS)
    assert intervals["nvme1n1"] == 149  # every interval after the first page
    ongoing = [e for e in events.seen if e["state"] == "ongoing" and e["device"] == "nvme1n1"]
    assert len(ongoing) == 2  # at 60 s and 120 s of the episode
    assert ongoing[1]["intervals"] == 120
    assert 0.8 * 120 <= ongoing[1]["seconds_exceeded"] <= 0.9 * 120
    rig.sampler.close()  # stopping ends what is still open
    ended = [e for e in events.seen if e["state"] == "ended" and e["device"] == "nvme1n1"]
    assert len(ended) == 1 and ended[0]["intervals"] == 149


def test_mixed_episodes_start_and_end_during_the_run():
    rig, events = run_scenario("mixed", 600)
    ended = [e for e in events.seen if e["state"] == "ended"]
    assert len(ended) >= 3
    total_ended = sum(s.value for s in rig.samples() if s.name == m.EXCEEDED_EPISODES)
    assert total_ended == len(ended)
    for event in ended:
        assert event["intervals"] >= 1 and event["start"] < event["end"]


def test_the_share_is_a_setting():
    strict, _ = run_scenario("over-limit", 20, exceeded_share=0.95)
    assert samples(strict, m.EXCEEDED_INTERVALS)["nvme1n1"] == 0
    loose, _ = run_scenario("steady", 20, exceeded_share=0.0)
    # With no threshold every microsecond counts: steady's bursts brush its limits.
    assert sum(samples(loose, m.EXCEEDED_INTERVALS).values()) > 0


class Stub:
    """An interval with given exceeded microseconds over 1 s."""

    def __init__(self, us: int, share: float = 0.01):
        from nitrometer.sampling.interval import counted

        self.exceeded_us = {("instance", "iops"): us}
        self._counted = counted(us, 1.0, share)

    def throttled(self):
        return [("instance", "iops")] if self._counted else []

    def op(self, _name):
        class Op:
            iops = throughput = 10.0
            p99_us = 100.0
        return Op()


def test_an_episode_ends_after_the_set_number_of_quiet_intervals():
    from devkit.pages import device

    tracker = EpisodeTracker(device(), gap=3, ongoing_every=60)
    pattern = [20_000, 0, 0, 20_000, 0, 5_000, 0, 0, 0]  # 5 ms: under 1 %, not counted
    events = []
    for t, us in enumerate(pattern):
        events += tracker.update(float(t), float(t + 1), Stub(us))
    assert [e["state"] for e in events] == ["ended"]
    [ended] = events
    # Counted at t=0 and t=3; the quiet run after t=3 ended it; 5 ms more while it was open.
    assert ended["intervals"] == 2 and ended["seconds_exceeded"] == pytest.approx(0.045)
    assert ended["end"].endswith("00:00:04.000Z")


def test_snapshot_and_diagnose_use_the_same_rule(capsys):
    steady = ["--source", "simulate:i3en.xlarge:steady:gp3", "--speed", "0"]
    assert main(["diagnose", "--duration", "30s", "--json", *steady]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["healthy"]
    assert main(["snapshot", "1", "20", *steady]) == 0
    out = capsys.readouterr().out
    assert "exceeded" not in out.split("worst")[0] and out.rstrip().endswith("none")
    over = ["--source", "simulate:i3en.xlarge:over-limit:gp3", "--speed", "0"]
    main(["diagnose", "--duration", "30s", "--json", *over, "--exceeded.min-share", "95%"])
    strict = json.loads(capsys.readouterr().out)["devices"][0]["findings"]
    assert "limit_exceeded" not in [f["kind"] for f in strict]  # 85 % of a second < 95 %
    assert main(["diagnose", "--duration", "30s", "--json", *over]) == 1
    found = json.loads(capsys.readouterr().out)["devices"][0]["findings"]
    assert found[0]["kind"] == "limit_exceeded" and found[0]["seconds"] == 30
