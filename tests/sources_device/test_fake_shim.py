"""The fake device keeps its files in memory between changes: a change the fixture makes
after many reads from the cache is still seen at the very next read, in a process that
keeps the node open throughout (as the reader does)."""

from __future__ import annotations

import json
import subprocess
import sys

from devkit.fakedev import MODEL_INSTANCE_STORE, FakeNvme, identify_bytes

PATH = "/dev/nvme1n1"
WARM_READS = 2000

# Reads the page on stdin's command ("read N"), answering one JSON line per command: the
# first 8 bytes of the last page as hex, or the errno of the first read that failed.
READER = """
import json, os, sys
from nitrometer import native
fd = os.open(sys.argv[1], os.O_RDONLY)
for line in sys.stdin:
    count = int(line.split()[1])
    out = {}
    for _ in range(count):
        try:
            out = {"head": native.get_log_page(fd, 8192)[:8].hex()}
        except OSError as exc:
            out = {"errno": exc.errno}
            break
    print(json.dumps(out), flush=True)
"""


def page(n: int) -> bytes:
    return n.to_bytes(8, "little") * 1024


class Reader:
    def __init__(self, fake: FakeNvme):
        self.proc = subprocess.Popen([sys.executable, "-c", READER, PATH], env=fake.env(),
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def read(self, count: int = 1) -> dict:
        self.proc.stdin.write(f"read {count}\n")
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline())

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(60)


def device(fake: FakeNvme, path: str = PATH) -> None:
    fake.add(path, identify=identify_bytes("AWS1", MODEL_INSTANCE_STORE), page=page(1))


def test_control_change_after_many_reads_is_seen_at_the_next_read(fake):
    device(fake)
    reader = Reader(fake)
    try:
        assert reader.read(WARM_READS) == {"head": page(1)[:8].hex()}
        fake.fail(PATH, "errno=EIO")
        assert reader.read() == {"errno": 5}
        assert reader.read(10) == {"errno": 5}  # stays failed while control says so
        fake.fail(PATH, "")
        assert reader.read() == {"head": page(1)[:8].hex()}
    finally:
        reader.close()


def test_new_page_and_sequence_after_many_reads_are_seen_at_the_next_read(fake):
    device(fake)
    reader = Reader(fake)
    try:
        assert reader.read(WARM_READS) == {"head": page(1)[:8].hex()}
        fake.set_page(PATH, page(2))
        assert reader.read() == {"head": page(2)[:8].hex()}
        fake.set_sequence(PATH, [page(10), page(11), page(12)])
        assert fake.position(PATH) == 0
        assert reader.read() == {"head": page(10)[:8].hex()}
        assert fake.position(PATH) == 1
        assert reader.read() == {"head": page(11)[:8].hex()}
        assert reader.read(WARM_READS) == {"head": page(12)[:8].hex()}  # stays on the last
        assert fake.position(PATH) == 2
        fake.set_sequence(PATH, [page(20), page(21)])  # starts over
        assert reader.read() == {"head": page(20)[:8].hex()}
        assert fake.position(PATH) == 1
    finally:
        reader.close()


def test_removed_device_is_not_found_by_the_next_open(fake, tmp_path):
    path = str(tmp_path / "nvme9n1")  # no such file: only the fake device opens
    device(fake, path)
    code = f"import os\nos.close(os.open({path!r}, os.O_RDONLY))\nprint('opened')"
    assert fake.python(code).stdout == "opened\n"
    fake.fail(path, "gone")
    assert "FileNotFoundError" in fake.python(code).stderr
    fake.fail(path, "")
    assert fake.python(code).stdout == "opened\n"
    fake.remove(path)
    assert "FileNotFoundError" in fake.python(code).stderr


def test_commands_log_is_kept_unless_turned_off(tmp_path, shim):
    logged = FakeNvme(tmp_path / "logged", shim)
    quiet = FakeNvme(tmp_path / "quiet", shim, log_commands=False)
    for fake in (logged, quiet):
        device(fake)
        reader = Reader(fake)
        try:
            assert reader.read(3) == {"head": page(1)[:8].hex()}
        finally:
            reader.close()
    assert [c["opcode"] for c in logged.commands(PATH)] == [2] * 6  # two 4 KiB chunks each
    assert quiet.commands(PATH) == []
