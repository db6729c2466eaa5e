"""Recording format, replay, and `nitrometer record`."""

from __future__ import annotations

import io

import pytest

from nitrometer import native
from nitrometer.cli import main
from nitrometer.collectors.base import FastClock, SourceSpec, parse_source
from nitrometer.collectors.recording import Recording, RecordingWriter
from nitrometer.collectors.replay import RecordingEnded, replay_sources
from nitrometer.collectors.simulator import simulated_sources
from nitrometer.collectors.sources import open_sources
from nitrometer.commands.devices import Reporter
from nitrometer.commands.record import record
from nitrometer.errors import NitrometerError
from nitrometer.sampling import Engine


def make_recording(path, rounds=5):
    clock = FastClock(0)
    sources = simulated_sources(SourceSpec("simulate", "i3en.2xlarge", "over-limit", ("gp3",)),
                                clock, seed=1)
    engine = Engine(sources, clock=clock)
    with RecordingWriter(str(path)) as writer:
        written = record(engine, writer, rounds, Reporter(io.StringIO()))
    return sources, written


def test_replay_gives_back_the_same_pages_and_devices(tmp_path):
    path = tmp_path / "rec.nmrec"
    sources, written = make_recording(path)
    assert written == 5 * 3
    # the same simulation again gives the pages that were recorded
    clock = FastClock(0)
    again = simulated_sources(SourceSpec("simulate", "i3en.2xlarge", "over-limit", ("gp3",)),
                              clock, seed=1)
    replayed = replay_sources(str(path), FastClock(0), speed=0)
    assert [r.device for r in replayed] == [s.device for s in sources]
    start = clock.monotonic()
    times = []
    for t in range(5):
        clock.sleep_until(start + t)
        for sim, rep in zip(again, replayed):
            page, when = rep.read()
            assert native.decode(page).to_dict() == native.decode(sim.read()[0]).to_dict()
            times.append(when)
    assert times[3] - times[0] == pytest.approx(1.0)  # recorded spacing survives speed 0
    with pytest.raises(RecordingEnded):
        replayed[0].read()
    for r in replayed:
        r.close()
    assert path.stat().st_size < 15 * 8192 / 2  # compact: pages are compressed


def test_recorded_speed_waits_on_the_clock(tmp_path):
    path = tmp_path / "rec.nmrec"
    make_recording(path, rounds=3)
    clock = FastClock(0)
    source = replay_sources(str(path), clock, speed=2.0)[0]
    start = clock.monotonic()
    for _ in range(3):
        source.read()
    assert clock.monotonic() - start == pytest.approx(1.0)  # 2 s recorded at 2x


def test_a_cut_short_file_replays_up_to_the_last_whole_record(tmp_path):
    path = tmp_path / "rec.nmrec"
    make_recording(path, rounds=4)
    full = Recording(str(path))
    assert full.pages == 12 and full.lost_bytes == 0
    full.close()
    data = path.read_bytes()
    path.write_bytes(data[:-100])
    cut = Recording(str(path))
    assert cut.pages == 11
    assert cut.lost_bytes > 100 and "cut short" in cut.warning
    assert len(list(cut)) == 11
    cut.close()
    sources = replay_sources(str(path), FastClock(0), speed=0)
    assert sources[0].lost_bytes == cut.lost_bytes


def test_a_corrupt_record_stops_the_replay_there(tmp_path):
    path = tmp_path / "rec.nmrec"
    make_recording(path, rounds=2)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    rec = Recording(str(path))
    assert 0 < rec.pages < 6 and rec.lost_bytes > 0


def test_not_a_recording_is_one_line(tmp_path, capsys):
    path = tmp_path / "notes.txt"
    path.write_text("hello")
    with pytest.raises(NitrometerError, match="is not a nitrometer recording"):
        replay_sources(str(path), FastClock(0))
    assert main(["record", "--out", str(tmp_path / "x"), "--source", f"replay:{path}"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not a nitrometer recording" in err


def test_record_command_writes_a_replayable_file(tmp_path, capsys):
    out = tmp_path / "sim.nmrec"
    rc = main(["record", "--out", str(out), "--count", "2", "--speed", "0",
               "--source", "simulate:i3en.xlarge:steady:gp3"])
    assert rc == 0
    assert "recorded 4 pages of 2 devices" in capsys.readouterr().err
    rec = Recording(str(out))
    assert rec.pages == 4 and [d.name for d in rec.devices] == ["nvme1n1", "nvme2n1"]
    rec.close()
    again = tmp_path / "again.nmrec"
    assert main(["record", "nvme2n1", "--out", str(again), "--speed", "0",
                 "--source", f"replay:{out}"]) == 0
    copy = Recording(str(again))
    assert copy.pages == 2 and [d.name for d in copy.devices] == ["nvme2n1"]
    copy.close()


def test_bad_flags(tmp_path, capsys):
    assert main(["record", "--out", str(tmp_path / "x"), "--interval", "0"]) == 2
    assert "--interval" in capsys.readouterr().err


def test_replaying_some_devices_keeps_no_pages_of_the_others(tmp_path):
    path = tmp_path / "long.nmrec"
    make_recording(path, rounds=400)  # 3 devices x 400 pages
    [source] = open_sources(parse_source(f"replay:{path}"), ["nvme2n1"], clock=FastClock(0))
    feed = source.feed
    most = 0
    for _ in range(400):
        source.read()
        most = max(most, max(len(q) for q in feed.pending.values()))
    # Pages of the devices no one reads are skipped, not buffered.
    assert most == 0
    with pytest.raises(RecordingEnded):
        source.read()
    source.close()
