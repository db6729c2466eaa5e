"""decode never reads more than a page; record's write failures keep what was written."""

from __future__ import annotations

import resource
import signal
import subprocess
import sys

import pytest

from nitrometer.collectors.recording import Recording


def nitrometer(*args, preexec_fn=None, stdin=None, timeout=60):
    return subprocess.run([sys.executable, "-m", "nitrometer", *args], capture_output=True,
                          text=True, timeout=timeout, preexec_fn=preexec_fn, stdin=stdin)


def one_line_status_2(done, *words):
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr, done.stderr
    for word in words:
        assert word in done.stderr


@pytest.mark.parametrize("path", ["/dev/zero", "/dev/null", "/dev/urandom"])
def test_decode_refuses_devices_without_reading_them(path):
    one_line_status_2(nitrometer("decode", path), "is a device")


def test_decode_reads_at_most_one_page_and_a_byte(tmp_path):
    big = tmp_path / "big.bin"
    big.write_bytes(b"\0" * 8193)
    one_line_status_2(nitrometer("decode", str(big)), "larger than a log page")
    with open("/dev/zero", "rb") as endless:
        one_line_status_2(nitrometer("decode", "-", stdin=endless), "stdin is larger")


def test_record_to_a_full_device_or_an_unwritable_path(tmp_path):
    args = ["--source", "simulate:i3en.xlarge", "--count", "2", "--speed", "0"]
    one_line_status_2(nitrometer("record", "--out", "/dev/full", *args),
                      "No space left on device")
    one_line_status_2(nitrometer("record", "--out", str(tmp_path / "no" / "such"), *args),
                      "cannot write")


def test_a_disk_filling_mid_recording_keeps_what_was_written(tmp_path):
    out = tmp_path / "rec.nmr"

    def small_disk():  # writes past 20 KB fail EFBIG, as a full disk fails ENOSPC
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, 20_000))

    done = nitrometer("record", "--out", str(out), "--source", "simulate:i3en.xlarge",
                      "--count", "1000", "--speed", "0", preexec_fn=small_disk)
    one_line_status_2(done, "cannot write", "pages kept")
    kept = int(done.stderr.split("; ")[-1].split()[0])
    recording = Recording(str(out))
    try:
        assert kept > 0 and recording.pages == kept and recording.lost_bytes == 0
        assert len(list(recording)) == kept
    finally:
        recording.close()


# -- values that once stopped the sampler or the start ------------------------------------

RUN = ["run", "--source", "simulate:i3en.xlarge", "--web.listen-address", "127.0.0.1:1",
       "--no-collector.identity"]


@pytest.mark.parametrize("text, words", [
    ("poll.interval: .inf\n", ["poll.interval: at most 1h"]),
    ("poll.interval: 1.0e+10\n", ["poll.interval: at most 1h"]),
    ("poll.interval: 1.5\n", ["poll.interval: whole seconds only"]),
    ("peaks.window: 1.0e+300\n", ["peaks.window: at most 1h"]),
    ("poll.interval:\n  every: 1s\n", ["poll.interval: expected a single value, got a mapping"]),
    ("log.level: d\xe9bug\n", ["not UTF-8 text"]),
])
def test_the_agent_refuses_bad_config_files_in_one_line(tmp_path, text, words):
    path = tmp_path / "nitrometer.yml"
    path.write_bytes(text.encode("latin-1"))
    one_line_status_2(nitrometer(*RUN, "--config.file", str(path)), *words)


def test_the_agent_checks_its_events_file_at_start(tmp_path):
    one_line_status_2(nitrometer(*RUN, "--events.file", str(tmp_path / "no" / "events.jsonl")),
                      "events.file", "No such file or directory")
    one_line_status_2(nitrometer(*RUN, "--events.file", str(tmp_path)),
                      "events.file", "Is a directory")


@pytest.mark.parametrize("args, words", [
    (["snapshot", "--source", "simulate:i3en.xlarge", "1e10", "1"], ["INTERVAL 1e10: at most 1h"]),
    (["snapshot", "--source", "simulate:i3en.xlarge", "inf"], ["INTERVAL inf: at most 1h"]),
    (["snapshot", "--source", "simulate:i3en.xlarge", "1.5", "2"], ["whole seconds only"]),
    (["record", "--out", "x.nmr", "--interval", "1.5"], ["--interval: whole seconds only"]),
    (["record", "--out", "x.nmr", "--interval", "99999h"], ["--interval: at most 1h"]),
    (["diagnose", "--duration", "400d"], ["--duration 400d: at most 1d"]),
    (["snapshot", "--source", "simulate:i3en.xlarge", "--speed", "1e-300", "1", "2"],
     ["--speed 1e-300: 0 (as fast as possible) or from 0.01"]),
    (["snapshot", "--source", "simulate:i3en.xlarge", "--speed", "inf", "1", "2"],
     ["--speed inf"]),
])
def test_command_intervals_durations_and_speeds_are_bounded(tmp_path, args, words):
    one_line_status_2(nitrometer(*args), *words)
