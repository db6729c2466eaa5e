"""Recording format, replay, and `nitrometer record`."""

from __future__ import annotations

import dataclasses
import io
import json
import resource
import struct
import subprocess
import sys
import zlib

import pytest

from nitrometer import native
from nitrometer.cli import main
from nitrometer.collectors import recording as rec
from nitrometer.collectors.base import FastClock, SourceSpec, parse_source
from nitrometer.collectors.recording import Recording, RecordingWriter
from nitrometer.collectors.replay import RecordingEnded, replay_sources
from nitrometer.commands.devices import Reporter
from nitrometer.commands.record import record
from nitrometer.errors import NitrometerError
from nitrometer.sampling import Engine
from nitrometer.sampling.sources import open_sources
from nitrometer.sim.devices import simulated_sources


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


def _crafted(path, payload: bytes) -> None:
    """A recording with one device and one page record of the given compressed payload."""

    device = simulated_sources(parse_source("simulate:i3en.xlarge"), FastClock())[0].device

    def record(rtype, body):
        head = rec.RECORD_HEAD.pack(rtype, len(body))
        return head + body + struct.pack("<I", zlib.crc32(head + body))

    fields = json.dumps(dataclasses.asdict(device)).encode()
    path.write_bytes(rec.HEADER.pack(rec.MAGIC, rec.VERSION)
                     + record(rec.TYPE_DEVICE, rec.DEVICE_HEAD.pack(0) + fields)
                     + record(rec.TYPE_PAGE, rec.PAGE_HEAD.pack(0, 1.0, 1.0) + payload))


def test_a_crafted_page_that_inflates_to_a_gigabyte_is_one_line(tmp_path):
    deflate = zlib.compressobj(9)
    zeros = bytes(1 << 20)
    payload = b"".join(deflate.compress(zeros) for _ in range(1000)) + deflate.flush()
    assert len(payload) < 1 << 20  # a 1 MB file that would inflate to 1 GB
    bomb = tmp_path / "bomb.nmr"
    _crafted(bomb, payload)

    def small_memory():  # inflating it whole would fail here, with a traceback
        resource.setrlimit(resource.RLIMIT_AS, (900 << 20, 900 << 20))

    for args in (["replay", str(bomb)], ["snapshot", "--source", f"replay:{bomb}"]):
        done = subprocess.run([sys.executable, "-m", "nitrometer", *args], capture_output=True,
                              text=True, timeout=120, preexec_fn=small_memory)
        assert done.returncode == 2, done.stderr
        assert done.stderr.splitlines() == [
            f"nitrometer: {bomb}: page record 1 is not a compressed page of at most 8192 bytes"]


def test_a_page_record_that_is_not_zlib_is_one_line(tmp_path):
    bad = tmp_path / "bad.nmr"
    _crafted(bad, b"not zlib at all")
    with pytest.raises(NitrometerError, match="page record 1 is not a compressed page"):
        Recording(str(bad))


def test_a_file_holds_a_bounded_total_of_pages(tmp_path, monkeypatch):
    path = tmp_path / "rec.nmr"
    make_recording(path, rounds=5)
    pages = Recording(str(path))
    total = sum(len(p.page) for p in pages)
    pages.close()
    monkeypatch.setattr(rec, "MAX_PAGES_BYTES", total - 1)
    with pytest.raises(NitrometerError, match="decompress to more than"):
        Recording(str(path))
    with pytest.raises(NitrometerError, match="pages kept"):
        make_recording(tmp_path / "again.nmr", rounds=5)


def test_page_times_that_are_not_finite_end_the_recording_there(tmp_path):
    for when in (float("inf"), float("nan")):
        path = tmp_path / "times.nmr"
        _crafted(path, zlib.compress(bytes(4096)))
        data = bytearray(path.read_bytes())
        at = data.rindex(rec.PAGE_HEAD.pack(0, 1.0, 1.0))
        body = rec.PAGE_HEAD.pack(0, when, 1.0)
        data[at:at + len(body)] = body
        head = at - rec.RECORD_HEAD.size
        end = len(data) - rec.CRC.size
        data[end:] = struct.pack("<I", zlib.crc32(bytes(data[head:end])))
        path.write_bytes(bytes(data))
        recording = Recording(str(path))
        try:
            assert recording.pages == 0 and recording.lost_bytes > 0
        finally:
            recording.close()


def test_a_wait_for_a_deadline_far_off_is_cut_short_not_an_overflow(monkeypatch):
    import threading

    from nitrometer.collectors import base

    monkeypatch.setattr(base, "MAX_WAIT", 0.01)  # a day in the product
    base.Clock().sleep_until(1e300, threading.Event())  # no OverflowError
    base.FastClock(0.01).sleep_until(1e300, threading.Event())
