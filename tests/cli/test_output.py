"""Every command that prints ends quietly when its reader has gone (`| head -1`) and with one
line and a non-zero status when standard output cannot be written (`> /dev/full`)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

SIM = ["--source", "simulate:i3en.xlarge", "--speed", "0"]


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    out = tmp_path_factory.mktemp("rec") / "rec.nmr"
    subprocess.run([sys.executable, "-m", "nitrometer", "record", "--out", str(out), *SIM,
                    "--count", "3"], check=True, capture_output=True)
    return out


@pytest.fixture(scope="module")
def usage(tmp_path_factory):
    path = tmp_path_factory.mktemp("usage") / "usage.csv"
    path.write_text("instance_type,hours\nm5.large,100\n")
    return path


COMMANDS = {
    "decode": lambda rec, usage: ["decode", "--sample", "ebs"],
    "decode-json": lambda rec, usage: ["decode", "--sample", "instance-store", "--json"],
    "snapshot": lambda rec, usage: ["snapshot", *SIM],
    "snapshot-rows": lambda rec, usage: ["snapshot", *SIM, "-j", "1", "3"],
    "diagnose": lambda rec, usage: ["diagnose", *SIM, "--duration", "3s"],
    "list": lambda rec, usage: ["list", "--path.sysfs", "tests/sysfs/ec2-mixed"],
    "replay": lambda rec, usage: ["replay", str(rec)],
    "savings": lambda rec, usage: ["savings", "--usage", str(usage)],
    "help": lambda rec, usage: ["snapshot", "--help"],
    "version": lambda rec, usage: ["--version"],
}


def run_with_stdout(args, stdout):
    return subprocess.run([sys.executable, "-m", "nitrometer", *args], stdout=stdout,
                          stderr=subprocess.PIPE, text=True, timeout=120,
                          cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))))


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_a_closed_pipe_ends_quietly(name, recording, usage):
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before the first byte, as after `head -1`
    try:
        done = run_with_stdout(COMMANDS[name](recording, usage), write_end)
    finally:
        os.close(write_end)
    assert done.stderr == ""  # no traceback, no "Exception ignored" at exit
    assert done.returncode == 128 + signal.SIGPIPE


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_a_full_disk_is_one_line_and_a_status(name, recording, usage):
    with open("/dev/full", "w") as full:
        done = run_with_stdout(COMMANDS[name](recording, usage), full)
    full_disk = "nitrometer: cannot write to standard output: No space left on device"
    assert done.stderr.splitlines() == [full_disk], done.stderr
    assert done.returncode == 2


def test_output_read_to_the_end_still_succeeds():
    done = run_with_stdout(["decode", "--sample", "ebs"], subprocess.PIPE)
    assert (done.returncode, done.stderr) == (0, "")
    assert "Total Ops:" in done.stdout
