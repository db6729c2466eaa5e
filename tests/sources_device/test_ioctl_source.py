"""The ioctl source end to end: a subprocess with the fake NVMe shim preloaded."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys

import pytest

from devkit.fakedev import MODEL_EBS, MODEL_INSTANCE_STORE, identify_bytes
from devkit.fakedev.pages import ebs_page, instance_store_page
from nitrometer import native

EBS_ID = identify_bytes("vol0123456789abcdef0", MODEL_EBS, bdev="sdf")
LOCAL_ID = identify_bytes("AWS2F1E0D9C8B7A65432", MODEL_INSTANCE_STORE)
RAE = 1 << 15

# Reads the named devices once per line on stdin ("read"), printing one JSON line per read:
# the page's sha256 and the device, or the error's reason and message.
READER = r"""
import hashlib, json, sys
from nitrometer.collectors.base import SourceSpec
from nitrometer.sampling.sources import open_sources
from nitrometer.errors import NitrometerError
try:
    sources = open_sources(SourceSpec("ioctl"), sys.argv[1:])
except NitrometerError as exc:
    print(json.dumps({"open_error": str(exc), "reason": getattr(exc, "reason", None)}))
    sys.exit(0)
for line in sys.stdin:
    for s in sources:
        try:
            page, stamp = s.read()
            out = {"sha": hashlib.sha256(page).hexdigest(), "len": len(page),
                   "device": s.device.__dict__}
        except NitrometerError as exc:
            out = {"reason": exc.reason, "error": str(exc), "type": type(exc).__name__}
        print(json.dumps(out), flush=True)
"""


def read_once(fake, *paths):
    proc = subprocess.run([sys.executable, "-c", READER, *paths],
                          input="read\n", env=fake.env(), capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    return [json.loads(line) for line in proc.stdout.splitlines()]


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_ebs_page_read_through_the_ioctl_with_identity_from_identify(fake):
    page = ebs_page()
    fake.add("/dev/nvme1n1", identify=EBS_ID, page=page)
    [out] = read_once(fake, "/dev/nvme1n1")
    assert out["sha"] == sha(page)
    device = out["device"]
    assert (device["kind"], device["serial"], device["bdev"], device["nsid"]) == (
        "ebs", "vol-0123456789abcdef0", "sdf", 1)
    identify, get_log = fake.commands("/dev/nvme1n1")
    assert (identify["opcode"], identify["cdw10"], identify["data_len"]) == (6, 1, 4096)
    assert (get_log["opcode"], get_log["nsid"], get_log["data_len"]) == (2, 1, 4096)
    # One 4 KiB chunk: NUMDL 1023 (not 1024), log id 0xD0, no RAE on the last chunk.
    assert get_log["cdw10"] == 0xD0 | 1023 << 16
    assert (get_log["cdw11"], get_log["cdw12"], get_log["cdw13"]) == (0, 0, 0)
    # The kernel default: a timed-out admin command would reset the controller.
    assert get_log["timeout_ms"] == 0 and identify["timeout_ms"] == 0
    assert fake.open_flags("/dev/nvme1n1") == [0, 0]  # O_RDONLY, for Identify and the source


def test_instance_store_page_in_two_chunks_with_offsets_and_rae(fake):
    page = instance_store_page()
    fake.add("/dev/nvme2n1", identify=LOCAL_ID, page=page)
    [out] = read_once(fake, "nvme2n1")  # a bare name resolves under /dev
    assert (out["sha"], out["len"]) == (sha(page), 8192)  # both halves, in place
    chunks = [c for c in fake.commands("/dev/nvme2n1") if c["opcode"] == 2]
    assert [(c["cdw10"], c["cdw12"], c["data_len"]) for c in chunks] == [
        (0xD0 | 1023 << 16 | RAE, 0, 4096),
        (0xD0 | 1023 << 16, 4096, 4096),
    ]
    assert all(c["cdw11"] == 0 and c["cdw13"] == 0 and c["nsid"] == 1 for c in chunks)
    decoded = native.decode(page)
    assert decoded.version == 1 and len(decoded.bands) == 5


def test_controller_char_device_uses_the_broadcast_nsid(fake):
    fake.add("/dev/nvme2", identify=LOCAL_ID, page=instance_store_page())
    [out] = read_once(fake, "/dev/nvme2")
    assert out["device"]["name"] == "nvme2"
    assert {c["nsid"] for c in fake.commands("/dev/nvme2") if c["opcode"] == 2} == {0xFFFFFFFF}


FAILURES = [
    ("errno=EACCES", "permission", "needs root or CAP_SYS_ADMIN to read NVMe log pages"),
    ("errno=EPERM", "permission", "needs root or CAP_SYS_ADMIN to read NVMe log pages"),
    ("errno=ENODEV", "gone", "the device is gone (No such device)"),
    ("errno=ENXIO", "gone", "the device is gone (No such device or address)"),
    ("errno=EIO", "io", "I/O error during Get Log Page 0xD0"),
    ("errno=ETIMEDOUT", "timeout", "Get Log Page 0xD0 timed out (Connection timed out)"),
    ("errno=EINTR", "timeout", "Get Log Page 0xD0 timed out (Interrupted system call)"),
    ("errno=ENOTTY", "not_nvme", "not an NVMe device"),
    ("status=4002", "nvme_status", "refused Get Log Page 0xD0 with NVMe status 0x4002"),
]


def _read_failing(fake, controls: dict[str, str], failing_rounds: int = 1):
    """Reads every device healthy, then with its failure, then healed."""
    for path in controls:
        fake.add(path, identify=EBS_ID, page=ebs_page())
    proc = subprocess.Popen([sys.executable, "-c", READER, *controls],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=fake.env(),
                            text=True)
    try:
        def read_all():
            proc.stdin.write("read\n")
            proc.stdin.flush()
            return [json.loads(proc.stdout.readline()) for _ in controls]

        before = read_all()
        for path, control in controls.items():
            fake.fail(path, control)
        failed = [read_all() for _ in range(failing_rounds)]
        for path in controls:
            fake.fail(path, "")
        after = read_all()
    finally:
        proc.stdin.close()
        proc.wait(timeout=30)
    return before, failed[0] if failing_rounds == 1 else failed, after


@pytest.mark.parametrize("control, reason, message", FAILURES)
def test_each_failure_mid_run_has_its_reason_and_the_device_recovers(fake, control, reason,
                                                                     message):
    [before], [failed], [after] = _read_failing(fake, {"/dev/nvme1n1": control})
    assert "sha" in before
    assert failed["reason"] == reason
    assert message in failed["error"] and failed["error"].startswith("/dev/nvme1n1: ")
    assert after["sha"] == before["sha"]
    # The failure closed the fd, and the next read opened the device again.
    assert fake.open_flags("/dev/nvme1n1") == [0, 0, 0]


def test_failure_modes_have_distinct_messages(fake):
    modes = ["errno=EACCES", "errno=ENODEV", "errno=EIO", "errno=ETIMEDOUT", "errno=ENOTTY",
             "status=4002"]
    controls = {f"/dev/nvme{i}n1": mode for i, mode in enumerate(modes)}
    _, failed, _ = _read_failing(fake, controls)
    reasons = [f["reason"] for f in failed]
    assert reasons == ["permission", "gone", "io", "timeout", "not_nvme", "nvme_status"]
    messages = [f["error"].split(": ", 1)[1] for f in failed]  # without the device path
    assert len(set(messages)) == len(messages)


def test_vanished_device_fails_to_reopen_until_it_returns(fake):
    [before], failed, [after] = _read_failing(fake, {"/dev/nvme1n1": "gone"}, 2)
    [[in_flight], [reopening]] = failed
    assert in_flight["reason"] == reopening["reason"] == "gone"
    assert "the device is gone (No such device)" in in_flight["error"]
    assert "the device is gone (No such file or directory)" in reopening["error"]
    assert after["sha"] == before["sha"]
    assert fake.open_flags("/dev/nvme1n1") == [0, 0, 0, 0]  # identify, first, failed, healed


def test_wrong_magic_is_not_an_ec2_device(fake):
    page = bytearray(ebs_page())
    page[0:4] = b"\x00\x00\xad\xde"
    fake.add("/dev/nvme1n1", identify=EBS_ID, page=bytes(page))
    [out] = read_once(fake, "/dev/nvme1n1")
    assert out["reason"] == "not_ec2"
    assert out["error"] == ("/dev/nvme1n1: not an EC2 NVMe device "
                            "(log page 0xD0 magic 0xdead0000)")


def test_named_device_problems_are_one_clear_line(fake, tmp_path):
    fake.add("/dev/nvme5n1", identify=identify_bytes("S5GX", "Samsung SSD 980", vid=0x144D))
    [out] = read_once(fake, "/dev/nvme5n1")
    assert out["reason"] == "not_ec2"
    assert out["open_error"] == ("/dev/nvme5n1: not an EC2 NVMe device (PCI vendor id 0x144d, "
                                 "model 'Samsung SSD 980')")
    [out] = read_once(fake, "/dev/sda")
    assert out["open_error"] == "'/dev/sda' is not an NVMe device name (expected nvme1n1 or " \
                                "/dev/nvme1n1)"
    missing = str(tmp_path / "nvme9n1")
    [out] = read_once(fake, missing)
    assert out["open_error"] == f"unknown device {missing!r}: {missing} does not exist"
    # A real file the shim does not know: the kernel itself refuses the NVMe ioctl.
    plain = tmp_path / "nvme8n1"
    plain.write_bytes(b"\0" * 16)
    [out] = read_once(fake, str(plain))
    assert out["reason"] == "not_nvme"
    assert "not an NVMe device (the NVMe admin ioctl is refused" in out["open_error"]
    fake.add("/dev/nvme6n1", identify=EBS_ID)
    fake.fail("/dev/nvme6n1", "errno=EACCES")
    [out] = read_once(fake, "/dev/nvme6n1")
    assert out["reason"] == "permission"
    assert "needs root or CAP_SYS_ADMIN" in out["open_error"]
