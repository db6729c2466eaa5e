"""The privileged keeper and reader (native/reader/, the executable nitrometer/keeper.py
starts) over their sockets, message by message, as nitrometer/privsep.py defines them:
replies out of order, the in-flight cap, what a reader refuses, the keeper's backoff and
how both end.

NITROMETER_TEST_READER names another build of the executable to test (`make sanitize`
runs these tests on one built with AddressSanitizer and UndefinedBehaviorSanitizer)."""

from __future__ import annotations

import errno
import os
import re
import select
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from devkit.fakedev import MODEL_EBS, MODEL_INSTANCE_STORE, identify_bytes
from devkit.fakedev.pages import ebs_page, instance_store_page
from nitrometer import privsep
from nitrometer.broker import first_reader
from nitrometer.keeper import READER, start_keeper
from nitrometer.privsep import (
    KEEPER_MESSAGE,
    KEEPER_NEWS,
    KEEPER_REPLACE,
    MAX_KEEPER_MESSAGE,
    MAX_MESSAGE,
    OP_GET_LOG_PAGE,
    OP_IDENTIFY,
    REPLY,
    REPLY_ERRNO,
    REPLY_OK,
    REQUEST,
)
from tests.agent.test_privsep import alive, wait_for
from tests.support.prometheus import free_port

BINARY = os.environ.get("NITROMETER_TEST_READER") or str(READER)
PATIENCE = 30.0  # seconds for anything to happen (the machine is loaded)


class Wire:
    """The agent's side of one keeper and its current reader, spoken by hand."""

    def __init__(self, dev: Path):
        self.dev = dev
        self.control, self.keeper = start_keeper(str(dev), BINARY)
        link = first_reader(self.control)
        self.sock, self.reader = link.sock, link.pid

    def send(self, rid: int, opcode: int, path: str, *, log_id: int = privsep.LOG_ID,
             nsid: int = 1, length: int = 4096) -> None:
        self.sock.send(REQUEST.pack(rid, opcode, log_id, nsid, length) + os.fsencode(path))

    def page(self, rid: int, node: str, **kw) -> None:
        self.send(rid, OP_GET_LOG_PAGE, f"{self.dev}/{node}", **kw)

    def reply(self, timeout: float = PATIENCE) -> tuple[int, int, int, bytes]:
        """(id, kind, code, data) of the next reply."""
        ready, _, _ = select.select([self.sock], [], [], timeout)
        assert ready, "no reply"
        message = self.sock.recv(MAX_MESSAGE)
        return (*REPLY.unpack_from(message), message[REPLY.size:])

    def news(self, timeout: float = PATIENCE) -> tuple[int, str, float]:
        """(the new reader's pid, how the last one ended, when) from the keeper; the new
        reader's socket becomes this wire's."""
        self.control.settimeout(timeout)
        message, fds, _flags, _addr = socket.recv_fds(self.control, MAX_KEEPER_MESSAGE, 1)
        arrived = time.monotonic()
        self.control.settimeout(None)
        kind, pid = KEEPER_MESSAGE.unpack_from(message)
        assert kind == KEEPER_NEWS and len(fds) == 1
        self.sock.close()
        self.sock, self.reader = socket.socket(fileno=fds[0]), pid
        return pid, message[KEEPER_MESSAGE.size:].decode(), arrived

    def close(self) -> int:
        """Closes the agent's sockets; the keeper's exit status."""
        self.sock.close()
        self.control.close()
        deadline = time.monotonic() + PATIENCE
        while True:
            pid, status = os.waitpid(self.keeper, os.WNOHANG)
            if pid:
                return status
            if time.monotonic() > deadline:
                os.kill(self.keeper, signal.SIGKILL)
                pytest.fail("the keeper did not end when its control socket closed")
            time.sleep(0.02)


@pytest.fixture
def dev(fake, tmp_path, monkeypatch) -> Path:
    dev = tmp_path / "dev"
    dev.mkdir()
    fake.add(f"{dev}/nvme1n1", page=ebs_page(),
             identify=identify_bytes("vol0123456789abcdef0", MODEL_EBS))
    fake.add(f"{dev}/nvme2n1", page=instance_store_page(),
             identify=identify_bytes("AWS2F1E0D9C8B7A65432", MODEL_INSTANCE_STORE))
    for name, value in fake.env({}).items():  # the keeper inherits the agent's environment
        monkeypatch.setenv(name, value)
    return dev


@pytest.fixture
def wire(dev):
    wire = Wire(dev)
    yield wire
    if alive(wire.keeper):
        wire.close()


def test_replies_come_as_they_are_ready_a_hung_device_holding_up_only_its_own(fake, dev,
                                                                              wire):
    fake.fail(f"{dev}/nvme1n1", "hang=3000")
    wire.page(1, "nvme1n1")
    wire.page(2, "nvme2n1", length=8192)
    wire.send(3, OP_IDENTIFY, f"{dev}/nvme2n1")
    wire.page(4, "nvme2n1", length=8192)
    replies = [wire.reply() for _ in range(4)]
    order = [r[0] for r in replies]
    assert order[-1] == 1 and order.index(2) < order.index(4)  # one worker per node
    assert all(r[1:3] == (REPLY_OK, 0) for r in replies)
    pages = {r[0]: r[3] for r in replies}
    assert pages[1] == ebs_page()[:4096] and pages[2] == pages[4] == instance_store_page()
    assert pages[3] == identify_bytes("AWS2F1E0D9C8B7A65432", MODEL_INSTANCE_STORE)
    sent = fake.commands(f"{dev}/nvme1n1") + fake.commands(f"{dev}/nvme2n1")
    assert {c["timeout_ms"] for c in sent} == {0}  # the kernel's admin timeout, never shorter
    # The page node stays open between reads: one open for three page reads of nvme2n1,
    # and one for its Identify.
    wire.page(5, "nvme2n1")
    assert wire.reply()[:3] == (5, REPLY_OK, 0)
    assert fake.open_flags(f"{dev}/nvme2n1") == [os.O_RDONLY, os.O_RDONLY]


def test_past_the_in_flight_cap_a_request_fails_ebusy_and_then_is_served(fake, dev, wire):
    fake.fail(f"{dev}/nvme1n1", "hang=5000")
    for rid in range(1, privsep.MAX_IN_FLIGHT + 1):
        wire.page(rid, "nvme1n1")
    wait_for(lambda: fake.commands(f"{dev}/nvme1n1"), what="the first read to hang")
    fake.fail(f"{dev}/nvme1n1", "")  # the hung one stays hung; the queued ones will not
    wire.page(1000, "nvme2n1")  # any device: the cap is the reader's
    assert wire.reply()[:3] == (1000, REPLY_ERRNO, errno.EBUSY)
    done = [wire.reply() for _ in range(privsep.MAX_IN_FLIGHT)]
    assert sorted(r[0] for r in done) == list(range(1, privsep.MAX_IN_FLIGHT + 1))
    assert {r[1] for r in done} == {REPLY_OK}
    wire.page(1001, "nvme2n1")
    assert wire.reply()[:3] == (1001, REPLY_OK, 0)


def test_a_node_outside_the_root_is_refused_and_never_opened(fake, dev, wire, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    outside = f"{other}/nvme3n1"
    fake.add(outside, page=ebs_page(), identify=identify_bytes("vol03", MODEL_EBS))
    os.symlink(outside, dev / "nvme3n1")  # a link in the root to a node outside it
    (dev / "nvme4n1").mkdir()
    requests = [(OP_GET_LOG_PAGE, outside), (OP_IDENTIFY, outside),
                (OP_IDENTIFY, f"{dev}/nvme3n1"), (OP_IDENTIFY, f"{dev}/../other/nvme3n1"),
                (OP_IDENTIFY, f"{dev}/nvme4n1/../../other/nvme3n1"),
                (OP_IDENTIFY, f"{dev}/nvme1n1/x"), (OP_IDENTIFY, f"{dev}/nvme1n1p1"),
                (OP_IDENTIFY, f"{dev}/nvme"), (OP_IDENTIFY, "nvme1n1")]
    for rid, (opcode, path) in enumerate(requests, 1):
        wire.send(rid, opcode, path)
        assert wire.reply()[:3] == (rid, REPLY_ERRNO, errno.EPERM), path
    assert fake.open_flags(outside) == [] and fake.commands(outside) == []
    wire.page(99, "nvme1n1")  # still serving
    assert wire.reply()[:3] == (99, REPLY_OK, 0)


def test_a_page_for_another_namespace_than_the_nodes_is_refused(fake, dev, wire):
    fake.add(f"{dev}/nvme5", identify=identify_bytes("vol05", MODEL_EBS), page=ebs_page())
    asked = [("nvme1n1", 2), ("nvme1n1", 0xFFFFFFFF), ("nvme1n1", 1), ("nvme5", 1),
             ("nvme5", 0xFFFFFFFF)]
    for rid, (node, nsid) in enumerate(asked, 1):
        wire.page(rid, node, nsid=nsid)
    replies = sorted(wire.reply()[:3] for _ in asked)
    eperm, ok = (REPLY_ERRNO, errno.EPERM), (REPLY_OK, 0)
    assert replies == [(1, *eperm), (2, *eperm), (3, *ok), (4, *eperm), (5, *ok)]
    assert {c["nsid"] for c in fake.commands(f"{dev}/nvme1n1")} == {1}
    assert {c["nsid"] for c in fake.commands(f"{dev}/nvme5")} == {0xFFFFFFFF}


def test_only_log_page_d0_and_identify_are_sent_anything_else_is_refused(fake, dev, wire):
    node = f"{dev}/nvme1n1"
    refused = [dict(rid=1, opcode=0x80, path=node),  # Format NVM
               dict(rid=2, opcode=0x09, path=node),  # Set Features
               dict(rid=3, opcode=OP_GET_LOG_PAGE, path=node, log_id=0x02),
               dict(rid=4, opcode=OP_GET_LOG_PAGE, path=node, length=0),
               dict(rid=5, opcode=OP_GET_LOG_PAGE, path=node, length=privsep.MAX_PAGE + 4)]
    for request in refused:
        wire.send(**request)
        assert wire.reply()[:3] == (request["rid"], REPLY_ERRNO, errno.EPERM), request
    wire.sock.send(b"\x07\x00")  # malformed: too short to be a request
    assert wire.reply()[1:3] == (REPLY_ERRNO, errno.EINVAL)
    wire.page(6, "nvme1n1", length=4094)  # not whole dwords
    assert wire.reply()[:3] == (6, REPLY_ERRNO, errno.EINVAL)
    wire.send(7, OP_IDENTIFY, node)
    assert wire.reply()[:3] == (7, REPLY_OK, 0)
    assert [(c["opcode"], c["cdw10"]) for c in fake.commands(node)] == [(0x06, 0x01)]


def test_past_max_open_devices_the_longest_unused_is_closed_and_its_worker_ends(fake, dev,
                                                                              wire):
    nodes = [f"nvme{i}n1" for i in range(10, 10 + privsep.MAX_OPEN + 1)]
    for node in nodes:
        fake.add(f"{dev}/{node}", page=ebs_page(), identify=identify_bytes("vol", MODEL_EBS))
    for rid, node in enumerate(nodes):
        wire.page(rid, node)
        assert wire.reply()[:3] == (rid, REPLY_OK, 0)
    def threads():
        status = Path(f"/proc/{wire.reader}/status").read_text()
        return int(re.search(r"^Threads:\s+(\d+)", status, re.M).group(1))

    # the workers and the main thread, once the one put out of the table has ended
    wait_for(lambda: threads() <= privsep.MAX_OPEN + 1, what="the evicted worker to end")
    for rid, node in enumerate((nodes[-1], nodes[0]), 1000):
        wire.page(rid, node)
        assert wire.reply()[:3] == (rid, REPLY_OK, 0)
    assert len(fake.open_flags(f"{dev}/{nodes[-1]}")) == 1  # still open
    assert len(fake.open_flags(f"{dev}/{nodes[0]}")) == 2  # the oldest: closed, reopened


def test_the_program_and_privsep_keep_the_same_contract():
    header = (Path(__file__).resolve().parents[2] / "native/reader/reader.h").read_text()
    values = {name: int(value.rstrip("u"), 0) for name, value in
              re.findall(r"^#define (\w+) ((?:0x)?[0-9A-Fa-f]+u?)\b", header, re.M)}
    for body in re.findall(r"enum \{([^}]*)\}", header):
        values.update((n, int(v)) for n, v in re.findall(r"(\w+) = (\d+)", body))
    assert values["REQUEST_SIZE"] == REQUEST.size and values["REPLY_SIZE"] == REPLY.size
    assert values["KEEPER_MESSAGE_SIZE"] == KEEPER_MESSAGE.size
    for name in ("MAX_KEEPER_MESSAGE", "OP_GET_LOG_PAGE", "OP_IDENTIFY", "LOG_ID", "MAX_PAGE",
                 "MAX_IN_FLIGHT", "MAX_OPEN", "CONTROLLER_NSID", "REPLY_OK", "REPLY_ERRNO",
                 "REPLY_NVME_STATUS", "KEEPER_NEWS", "KEEPER_REPLACE"):
        assert values[name] == getattr(privsep, name), name
    assert MAX_MESSAGE >= REPLY.size + privsep.MAX_PAGE


def test_the_keeper_replaces_a_killed_reader_after_a_growing_pause(wire):
    killed = []
    for expected_pause in (0.5, 1.0, 2.0):  # each died young: 0.5 s, doubling
        old = wire.reader
        os.kill(old, signal.SIGKILL)
        killed.append(time.monotonic())
        new, ended, arrived = wire.news()
        assert ended == f"reader {old} was killed by SIGKILL"
        assert new != old and alive(new) and not alive(old)
        assert arrived - killed[-1] >= expected_pause - 0.05
        assert arrived - killed[-1] < expected_pause + PATIENCE
    # One the agent reports as silent is killed and replaced at once, whatever the pause.
    old = wire.reader
    wire.control.send(KEEPER_MESSAGE.pack(KEEPER_REPLACE, old) + b"gave no answer for 1s")
    asked = time.monotonic()
    new, ended, arrived = wire.news()
    assert ended == f"reader {old} gave no answer for 1s: killed"
    assert arrived - asked < 2.0 - 0.05  # sooner than the next pause (4 s) could end
    wait_for(lambda: not alive(old), what="the silent reader to be killed")
    wire.send(1, OP_IDENTIFY, f"{wire.dev}/nvme1n1")
    assert wire.reply()[:3] == (1, REPLY_OK, 0)


def test_a_reader_ends_when_the_agent_drops_it_and_the_keeper_when_the_agent_goes(wire):
    first = wire.reader
    wire.sock.shutdown(socket.SHUT_RDWR)
    new, ended, _arrived = wire.news()
    assert ended == f"reader {first} exited with status 0"
    status = wire.close()
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    wait_for(lambda: not alive(new), what="the reader to end with its keeper")


def test_privileged_sets_hold_only_what_reading_takes(wire):
    if os.geteuid() != 0:
        pytest.skip("needs root to hold capabilities to drop")
    for pid in (wire.keeper, wire.reader):
        status = Path(f"/proc/{pid}/status").read_text()
        sets = {line.split(":")[0]: int(line.split(":")[1], 16)
                for line in status.splitlines() if line.startswith("Cap")}
        assert sets["CapEff"] == sets["CapPrm"] == sets["CapBnd"] == 1 << privsep.CAP_SYS_ADMIN
        assert sets["CapInh"] == sets["CapAmb"] == 0


def test_a_missing_keeper_program_is_one_line_and_a_status(fake, dev, tmp_path):
    """`nitrometer run` from an install that lost its keeper program says so and stops."""
    sysfs = tmp_path / "sys"
    (sysfs / "class" / "nvme").mkdir(parents=True)
    missing = tmp_path / "nitrometer-reader"
    code = ("import sys, nitrometer.keeper as keeper; from nitrometer.cli import main; "
            f"keeper.READER = keeper.Path({str(missing)!r}); sys.exit(main(sys.argv[1:]))")
    done = fake.run([sys.executable, "-c", code, "run", "--source=ioctl",
                     f"--path.sysfs={sysfs}", f"--path.dev={dev}",
                     f"--web.listen-address=127.0.0.1:{free_port()}"], timeout=PATIENCE)
    assert done.returncode == 2 and "Traceback" not in done.stderr  # no restart mends it
    assert done.stderr.strip().splitlines()[-1] == (
        f"nitrometer: cannot start the privileged reader: {missing} is missing or not "
        "executable (reinstall nitrometer, or build it with native/build.py)")


@pytest.mark.parametrize("args", [[], ["x", "/dev", "1"], ["99", "/dev", "1"]])
def test_the_program_started_by_hand_says_how_it_is_meant_to_run(args):
    done = subprocess.run([BINARY, *args], capture_output=True, text=True, timeout=PATIENCE)
    assert done.returncode == 2
    assert done.stderr.startswith("usage: nitrometer-reader CONTROL_FD DEV_ROOT AGENT_PID")
    assert len(done.stderr.splitlines()) == 1
