"""One page, four ways in: the ioctl path, nvme-cli output, a replayed recording, a saved file.

Each must decode to exactly the same values, or the numbers would depend on the source.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from devkit.fakedev import MODEL_EBS, MODEL_INSTANCE_STORE, FakeNvme, identify_bytes
from nitrometer import native
from nitrometer.collectors.base import KIND_EBS, Device, FastClock, parse_source
from nitrometer.collectors.nvme_cli import NvmeCliSource
from nitrometer.sampling.sources import open_sources
from tests.native import captures

IDENTITY = {
    "ebs": ("vol0123456789abcdef0", MODEL_EBS),
    "instance_store": ("AWS1234567890ABCDEF0", MODEL_INSTANCE_STORE),
}


def through_ioctl_and_replay(tmp_path, shim, raw: bytes, kind: str) -> tuple[dict, dict]:
    fake = FakeNvme(tmp_path / "fake", shim)
    fake.add("/dev/nvme3n1", page=raw, identify=identify_bytes(*IDENTITY[kind]))
    snap = fake.nitrometer("snapshot", "/dev/nvme3n1", "--json")
    assert snap.returncode == 0, snap.stderr
    recording = tmp_path / "page.nmr"
    rec = fake.nitrometer("record", "/dev/nvme3n1", "--out", str(recording), "--count", "1")
    assert rec.returncode == 0, rec.stderr
    [replay] = open_sources(parse_source(f"replay:{recording}"), [], clock=FastClock(0))
    try:
        replayed = native.decode(replay.read()[0]).to_dict()
    finally:
        replay.close()
    return json.loads(snap.stdout.splitlines()[0]), replayed


def through_nvme_cli(tmp_path, monkeypatch, output: Path, kind: str) -> dict:
    bindir = tmp_path / "bin"
    bindir.mkdir(exist_ok=True)
    nvme = bindir / "nvme"
    nvme.write_text(f"#!/bin/sh\ncase \"$*\" in *version*) echo 'nvme version 2.17';; "
                    f"*) cat '{output}';; esac\n")
    nvme.chmod(nvme.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    serial, model = IDENTITY[kind]
    source = NvmeCliSource(Device("nvme3n1", "/dev/nvme3n1", kind, serial, model))
    return native.decode(source.read()[0]).to_dict()


@pytest.mark.parametrize("kind", ["ebs", "instance_store"])
def test_every_source_decodes_the_same_page_identically(tmp_path, monkeypatch, shim, kind):
    case = captures.TYPICAL[kind]
    raw = captures.page(case)
    expected = native.decode(raw).to_dict()

    snapshot, replayed = through_ioctl_and_replay(tmp_path, shim, raw, kind)
    assert replayed == expected
    assert {k: snapshot[k] for k in expected} == expected
    assert snapshot["device"]["name"] == "nvme3n1"
    assert snapshot["serial"] == ("vol-0123456789abcdef0" if kind == KIND_EBS
                                  else IDENTITY[kind][0])
    assert snapshot["model"] == IDENTITY[kind][1]

    for variant in ("2.16-json-details", "3.0rc1-json-details", "3.0rc1-text-details"):
        rebuilt = through_nvme_cli(tmp_path, monkeypatch, captures.path(case, variant), kind)
        assert rebuilt == expected, variant

    saved = tmp_path / "saved.bin"
    saved.write_bytes(raw)
    decoded = subprocess.run([sys.executable, "-m", "nitrometer", "decode", "--json", str(saved)],
                             capture_output=True, check=True)
    assert json.loads(decoded.stdout) == expected
