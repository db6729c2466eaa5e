"""Started as root with the default user: the agent drops to nobody when nobody can read
its interpreter and code, and otherwise stays uid 0 with no capability, saying so (`make
run` as root from a Python under /root, mode 0700)."""

from __future__ import annotations

import os
import pwd
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from nitrometer.agent.privileges import unreadable_for
from tests.agent.test_privsep import wait_for
from tests.support import sandbox
from tests.support.processes import stop
from tests.support.prometheus import free_port
from tests.support.scrape import metrics_text

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="starts the agent as root")


def test_a_directory_nobody_cannot_enter_is_named():
    nobody = pwd.getpwnam("nobody")
    uid, gid = nobody.pw_uid, nobody.pw_gid
    with tempfile.TemporaryDirectory(dir="/tmp") as top:  # pytest's own is 0700
        os.chmod(top, 0o755)
        closed, open_ = Path(top, "closed"), Path(top, "open")
        for path, mode in ((closed, 0o700), (open_, 0o755)):
            (path / "lib").mkdir(parents=True)
            path.chmod(mode)
        _check(uid, gid, closed, open_)


def _check(uid: int, gid: int, closed: Path, open_: Path) -> None:
    assert unreadable_for(uid, gid, [str(closed / "lib")]) == str(closed)
    assert unreadable_for(uid, gid, [str(open_ / "lib")]) is None
    assert unreadable_for(0, 0, [str(closed / "lib")]) is None  # its owner


def test_the_default_user_is_used_only_where_it_can_read_the_agent(tmp_path):
    nobody = pwd.getpwnam("nobody")
    blocked = unreadable_for(nobody.pw_uid, nobody.pw_gid)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "NITROMETER_RUN_AS_USER"}
    log = tmp_path / "agent.log"
    with open(log, "w") as out:
        agent = subprocess.Popen(
            [sys.executable, "-m", "nitrometer", "run", "--source=simulate:i3en.xlarge",
             f"--web.listen-address=127.0.0.1:{port}", "--no-collector.identity"],
            env=env, stdout=out, stderr=subprocess.STDOUT, cwd=tmp_path)
    try:
        wait_for(lambda: "ec2_nvme_read_ops_total{" in metrics_text(port), timeout=60,
                 what="the agent to serve")
        status = sandbox.proc_status(agent.pid)
        for held in ("CapEff", "CapPrm", "CapAmb", "CapBnd"):
            assert int(status[held], 16) == 0, (held, status[held])
        uid = int(status["Uid"].split()[0])
        assert uid == (0 if blocked else nobody.pw_uid), (blocked, uid)
    finally:
        stop(agent)
        time.sleep(0.1)
    text = log.read_text()
    assert ("staying uid 0 with no capability" in text) == bool(blocked), text
    assert "Traceback" not in text, text

