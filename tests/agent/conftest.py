import shutil
import subprocess

import pytest
from prometheus_client.parser import text_string_to_metric_families

from nitrometer.agent.events import EventSink
from nitrometer.agent.exporter import Exporter
from nitrometer.agent.sampler import Sampler
from nitrometer.agent.state import AgentState
from nitrometer.collectors.base import FastClock


class Events(EventSink):
    """An event sink that keeps what the sampler wrote, for tests to read."""

    def __init__(self):
        super().__init__()
        self.seen: list[dict] = []

    def write(self, episodes):
        self.seen += episodes


class Rig:
    """A sampler on a FastClock(speed=0) over the given sources, and its exporter."""

    def __init__(self, sources, interval=1.0, events=None, settings=None, clock=None):
        self.clock = clock or FastClock(0)
        if clock is None:
            for source in sources:
                source.clock = self.clock
        self.state = AgentState()
        self.sampler = Sampler(self.state, lambda: list(sources), interval=interval,
                               clock=self.clock, events=events, settings=settings)
        self.exporter = Exporter(self.state, process=False)

    def text(self) -> str:
        return self.exporter.body().decode()

    def samples(self):
        return [s for family in text_string_to_metric_families(self.text())
                for s in family.samples]

    def value(self, name, **labels):
        """A sample's value as /metrics serves it (parsed back), or None."""
        for family in text_string_to_metric_families(self.text()):
            for sample in family.samples:
                if sample.name == name and sample.labels == labels:
                    return sample.value
        return None


@pytest.fixture
def rig():
    return Rig


def promtool_check(text: str) -> str:
    """What promtool check metrics says about an exposition ('' when it is clean)."""
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool is not installed: run `make sysdeps`")
    done = subprocess.run([promtool, "check", "metrics"], input=text.encode(),
                          capture_output=True, timeout=30)
    return (done.stdout + done.stderr).decode()
