"""What a user states or records about the instance is kept or refused, never dropped
silently: a mistyped --instance.type, what a recording carries for replay, record's COUNT,
and diagnose's exit status against the verdict it prints."""

from __future__ import annotations

import struct

import pytest

from nitrometer.cli import main
from nitrometer.collectors.recording import HEADER, MAGIC, Recording, RecordingWriter
from tests.cli.fixtures import EBS, add, page

SIM = ["--source", "simulate:i3en.xlarge:over-limit:gp3", "--speed", "0"]


@pytest.mark.parametrize("command", [["snapshot", *SIM, "1", "1"],
                                     ["record", "--out", "unused.rec", *SIM, "--count", "1"],
                                     ["run", "--source", "simulate:i3en.xlarge"]])
def test_a_mistyped_instance_type_names_the_closest(capsys, command, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main([*command, "--instance.type", "i3en.xlage"]) == 2
    err = capsys.readouterr().err
    flag = "instance.type" if command[0] == "run" else "--instance.type"
    assert err == (f"nitrometer: {flag} i3en.xlage: not an instance type nitrometer knows "
                   "(closest: i3en.xlarge, i3en.6xlarge, i3en.3xlarge)\n")
    assert not (tmp_path / "unused.rec").exists()


def test_a_known_instance_type_in_any_case_is_taken(capsys):
    assert main(["snapshot", *SIM, "--instance.type", "M7g.Large", "1", "1"]) == 0
    assert "instance EBS (m7g.large) at" in capsys.readouterr().out


def test_replay_keeps_the_percent_of_limits_without_instance_type(tmp_path, capsys):
    rec = tmp_path / "incident.rec"
    assert main(["record", "--out", str(rec), *SIM, "--count", "3"]) == 0
    recording = Recording(str(rec))
    recording.close()
    assert recording.context["instance_type"] == "i3en.xlarge"
    [(serial, volume)] = recording.context["volumes"].items()
    assert serial.startswith("vol-") and volume["type"] == "gp3" and volume["iops"] == 3000
    capsys.readouterr()
    assert main(["replay", str(rec), "1"]) == 0
    out = capsys.readouterr().out
    assert "instance store (i3en.xlarge) at reads" in out
    assert "volume (gp3) at" in out and "of 3,000 IOPS" in out


def test_recording_an_instance_type_that_replay_shows(tmp_path, capsys):
    rec = tmp_path / "told.rec"
    assert main(["record", "--out", str(rec), *SIM, "--count", "2",
                 "--instance.type", "i4i.xlarge"]) == 0
    capsys.readouterr()
    assert main(["replay", str(rec), "1"]) == 0
    assert "instance store (i4i.xlarge) at" in capsys.readouterr().out


def version_1_recording(path, pages) -> None:
    """The layout before recordings carried their context: header version 1, devices and
    pages only."""
    with RecordingWriter(str(path)) as writer:
        for t, raw in enumerate(pages):
            writer.add_page(EBS, raw, float(t), 1.7e9 + t)
    data = bytearray(path.read_bytes())
    data[:HEADER.size] = HEADER.pack(MAGIC, 1)
    path.write_bytes(bytes(data))


def growing_ebs(seconds: int, exceeded_each_second: int) -> list[bytes]:
    reads: dict[int, int] = {}
    out = []
    for t in range(seconds + 1):
        reads = add(reads, {8: 1000})
        exceeded = {"ebs_volume_performance_exceeded_iops": t * exceeded_each_second}
        out.append(page("ebs", read=reads, write={}, exceeded=exceeded))
    return out


def test_old_recordings_still_replay(tmp_path, capsys):
    rec = tmp_path / "old.rec"
    version_1_recording(rec, growing_ebs(3, 0))
    assert struct.unpack_from("<I", rec.read_bytes(), 8)[0] == 1
    recording = Recording(str(rec))
    recording.close()
    assert recording.context == {} and recording.pages == 4
    assert main(["replay", str(rec), "1"]) == 0
    out = capsys.readouterr().out
    assert out.count("\nnvme1n1   read ") == 3 and "% of" not in out


@pytest.mark.parametrize("count", ["0", "-1"])
def test_record_count_is_at_least_one_as_iostat(tmp_path, capsys, count):
    out = tmp_path / "r.rec"
    assert main(["record", "--out", str(out), *SIM, "--count", count]) == 2
    assert capsys.readouterr().err == (
        f"nitrometer: --count {count}: must be a whole number of at least 1 (leave --count "
        "out to record until Ctrl+C)\n")
    assert not out.exists()


def test_a_verdict_of_no_time_over_a_limit_is_no_finding(tmp_path, capsys):
    rec = tmp_path / "brief.rec"
    version_1_recording(rec, growing_ebs(4, 12_000))  # 1.2 % of each second: counted
    assert main(["diagnose", "--source", f"replay:{rec}", "--speed", "0",
                 "--duration", "4s"]) == 0
    out = capsys.readouterr().out
    assert "PROBLEM" not in out and "exceeded in" not in out
    assert "limits exceeded for 0.048 s in all (under 0.05 s: not a finding)" in " ".join(
        out.split())
    assert out.rstrip().endswith("Result: nothing wrong found.")


def test_a_tenth_of_a_second_over_a_limit_is_a_finding(tmp_path, capsys):
    rec = tmp_path / "longer.rec"
    version_1_recording(rec, growing_ebs(4, 30_000))
    assert main(["diagnose", "--source", f"replay:{rec}", "--speed", "0",
                 "--duration", "4s"]) == 1
    out = capsys.readouterr().out
    assert "For 0.1 s in total" in out and "exceeded in 4 of 4 s" in out
