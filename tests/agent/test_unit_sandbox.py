"""The shipped unit starts the agent: its sandbox, rebuilt from deploy/nitrometer.service
(tests/support/sandbox.py), around the agent on fake devices that EC2's owners and modes
guard; and, where systemd is PID 1, the unit itself through systemd-run."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest

from devkit.fakedev import FakeNvme
from nitrometer import metrics as m
from tests.agent.test_privsep import children, wait_for
from tests.support import sandbox
from tests.support.ec2_mixed import plug_ec2_mixed
from tests.support.processes import stop
from tests.support.prometheus import free_port
from tests.support.scrape import metrics_text

UNIT = Path(__file__).resolve().parents[2] / "deploy" / "nitrometer.service"
SYSFS = Path(__file__).resolve().parent.parent / "sysfs" / "ec2-mixed"
DEVICES = ("nvme0n1", "nvme1n1", "nvme2n1")

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="setpriv needs root to change uid")


@pytest.fixture
def world(shim):
    """Fake devices, sysfs and the shim where the unit's dynamic user can reach them."""
    with tempfile.TemporaryDirectory(prefix="nitrometer-sandbox-") as path:
        yield build_world(Path(path), shim)


def build_world(root: Path, shim: Path):
    shutil.copy(shim, root / "fakenvme.so")
    fake = FakeNvme(root / "fake", root / "fakenvme.so")
    dev = root / "dev"
    dev.mkdir()
    plug_ec2_mixed(fake, dev)
    shutil.copytree(SYSFS, root / "sys")
    sandbox.accessible_dir(root)
    return root, fake, dev


def sandboxed(world, argv, **options) -> list[str]:
    root, _fake, _dev = world
    return sandbox.command(UNIT, root, argv, **options)


def python_in_sandbox(world, code: str, **options) -> subprocess.CompletedProcess:
    root, fake, _dev = world
    return subprocess.run(sandboxed(world, [sys.executable, "-c", code], **options),
                          env=fake.env(), capture_output=True, text=True, timeout=60)


def test_the_rebuilt_sandbox_is_the_units(world):
    """The filter is the unit's (capset denied with EPERM, ioctl allowed), and the dynamic
    user opens the nodes only with CAP_DAC_READ_SEARCH, as on EC2."""
    _root, _fake, dev = world
    code = textwrap.dedent(f"""\
        import errno, os
        from nitrometer import privsep
        try:
            privsep.limit_capabilities(())
            print("capset-allowed")
        except OSError as exc:
            print(errno.errorcode[exc.errno])
        for node in ("nvme0n1",):
            try:
                os.close(os.open({str(dev)!r} + "/" + node, os.O_RDONLY))
                print("opened")
            except OSError as exc:
                print(errno.errorcode[exc.errno])
        print(open("/proc/self/status").read().count("Seccomp:\\t2"))
        """)
    done = python_in_sandbox(world, code)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["EPERM", "opened", "1"]
    done = python_in_sandbox(world, code, drop_capabilities=("CAP_DAC_READ_SEARCH",))
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["EPERM", "EACCES", "1"]  # root:disk 0660 keeps it out



def test_the_agent_serves_from_inside_the_units_sandbox_holding_nothing(world):
    root, fake, dev = world
    port = free_port()
    log = root / "agent.log"
    argv = [sys.executable, "-m", "nitrometer", "run", "--source=ioctl",
            f"--path.sysfs={root / 'sys'}", f"--path.dev={dev}",
            f"--web.listen-address=127.0.0.1:{port}", "--no-collector.identity",
            "--no-collector.host"]
    with open(log, "w") as out:
        agent = subprocess.Popen(sandboxed(world, argv), env=fake.env(), stdout=out,
                                 stderr=subprocess.STDOUT)
    try:
        def serving():
            text = metrics_text(port)
            return all(f'{m.DEVICE_UP}{{device="{d}"' in text and
                       f'{m.READ_OPS}{{device="{d}"' in text for d in DEVICES) and \
                all(line.endswith(" 1.0") for line in text.splitlines()
                    if line.startswith(m.DEVICE_UP + "{"))

        wait_for(serving, timeout=60, what="the sandboxed agent to serve every device")
        status = sandbox.proc_status(agent.pid)  # the process listening on the port
        assert status["Uid"].split()[0] == str(sandbox.DYNAMIC_UID)
        assert status["Seccomp"] == "2" and status["NoNewPrivs"] == "1"
        for held in ("CapEff", "CapPrm", "CapAmb"):
            assert int(status[held], 16) == 0, (held, status[held])
        # The bounding set cannot shrink without CAP_SETPCAP; with NoNewPrivileges nothing
        # can be gained from it, and it is no more than the unit's.
        assert int(status["CapBnd"], 16) & ~sandbox.unit_caps(UNIT, "CapabilityBoundingSet") == 0
        [keeper] = children(agent.pid)
        [reader] = children(keeper)
        wanted = sandbox.unit_caps(UNIT, "AmbientCapabilities")
        for privileged in (keeper, reader):
            assert int(sandbox.proc_status(privileged)["CapEff"], 16) == wanted
        sent = {c["opcode"] for d in DEVICES for c in fake.commands(f"{dev}/{d}")}
        assert sent == {0x02, 0x06}
        # In the sandbox too, the keeper replaces a killed reader with a privileged one.
        os.kill(reader, signal.SIGKILL)
        wait_for(lambda: f"{m.READER_RESTARTS} 1.0" in metrics_text(port), timeout=15,
                 what="the keeper to replace the reader inside the sandbox")
        reads = len(fake.commands(f"{dev}/nvme0n1"))
        wait_for(lambda: len(fake.commands(f"{dev}/nvme0n1")) > reads + 1 and serving(),
                 timeout=15, what="the devices to serve again")
        [new_reader] = children(keeper)
        assert int(sandbox.proc_status(new_reader)["CapEff"], 16) == wanted
    finally:
        stop(agent)
        text = log.read_text()
    assert agent.returncode == 0, text
    assert "Traceback" not in text and "cannot drop" not in text, text
    assert f"reader {reader} was killed by SIGKILL" in text


def systemd_is_pid1() -> bool:
    try:
        return Path("/proc/1/comm").read_text().strip() == "systemd"
    except OSError:
        return False


@pytest.mark.skipif(not systemd_is_pid1(), reason="systemd is not PID 1 here: the unit "
                    "itself cannot be started (its sandbox is rebuilt in the tests above)")
def test_the_real_unit_starts_under_systemd(shim):
    # The unit has PrivateTmp= and ProtectHome=: the fake devices go under /run, and an
    # interpreter kept under a home directory is bound in read-only.
    with tempfile.TemporaryDirectory(prefix="nitrometer-unit-", dir="/run") as path:
        root, fake, dev = build_world(Path(path), shim)
        port = free_port()
        name = f"nitrometer-test-{port}"
        skip = {"ExecStart", "ExecReload", "Restart", "RestartSec", "RestartPreventExitStatus",
                "ConfigurationDirectory", "ConfigurationDirectoryMode", "StateDirectory",
                "LogsDirectory"}
        properties = [f"--property={key}={value}"
                      for key, values in sandbox.service_settings(UNIT).items()
                      if key not in skip for value in values]
        for parent, names in sandbox.hidden_ancestors(
                [sys.executable, sys.prefix, sys.base_prefix]).items():
            properties += [f"--property=BindReadOnlyPaths={parent / n}" for n in names]
        env = [f"--setenv={k}={v}" for k, v in fake.env({}).items()]
        argv = [sys.executable, "-m", "nitrometer", "run", "--source=ioctl",
                f"--path.sysfs={root / 'sys'}", f"--path.dev={dev}",
                f"--web.listen-address=127.0.0.1:{port}", "--no-collector.identity",
                "--no-collector.host"]
        subprocess.run(["systemd-run", f"--unit={name}", *properties, *env,
                        "--setenv=AWS_EC2_METADATA_DISABLED=true", *argv], check=True,
                       timeout=60)
        try:
            wait_for(lambda: all(f'{m.DEVICE_UP}{{device="{d}"}} 1.0' in metrics_text(port)
                                 for d in DEVICES), timeout=60, what="the unit to serve")
            main_pid = subprocess.run(["systemctl", "show", "-p", "MainPID", "--value", name],
                                      capture_output=True, text=True).stdout.strip()
            status = sandbox.proc_status(int(main_pid))
            for held in ("CapEff", "CapPrm", "CapAmb"):
                assert int(status[held], 16) == 0, (held, status[held])
        finally:
            subprocess.run(["systemctl", "stop", name], timeout=60)


def test_started_as_root_outside_systemd_it_serves_as_nobody_with_nothing(world):
    root, fake, dev = world
    port = free_port()
    log = root / "root-agent.log"
    argv = [sys.executable, "-m", "nitrometer", "run", "--source=ioctl",
            f"--path.sysfs={root / 'sys'}", f"--path.dev={dev}", "--run-as-user=nobody",
            f"--web.listen-address=127.0.0.1:{port}", "--no-collector.identity",
            "--no-collector.host"]
    with open(log, "w") as out:
        agent = subprocess.Popen(sandbox.expose_interpreter(root) + argv, env=fake.env(),
                                 stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: all(f'{m.READ_OPS}{{device="{d}"' in metrics_text(port) for d in DEVICES),
                 timeout=60, what="the agent to serve every device as nobody")
        status = sandbox.proc_status(agent.pid)
        assert status["Uid"].split() == ["65534"] * 4 and status["Groups"] == ""
        for held in ("CapEff", "CapPrm", "CapInh", "CapAmb", "CapBnd"):
            assert int(status[held], 16) == 0, (held, status[held])
        [keeper] = children(agent.pid)
        [reader] = children(keeper)
        for privileged in (keeper, reader):  # root, for the root-only nodes, and one capability
            status = sandbox.proc_status(privileged)
            assert status["Uid"].split()[0] == "0"
            assert int(status["CapEff"], 16) == int(status["CapBnd"], 16) == 1 << 21
    finally:
        stop(agent)
        text = log.read_text()
    assert agent.returncode == 0 and "Traceback" not in text, text


def test_an_unknown_run_as_user_is_one_line_and_status_2(world):
    root, fake, dev = world
    done = subprocess.run(
        [sys.executable, "-m", "nitrometer", "run", "--source=ioctl", "--run-as-user=nosuch",
         f"--path.sysfs={root / 'sys'}", f"--path.dev={dev}",
         f"--web.listen-address=127.0.0.1:{free_port()}"],
        env=fake.env(), capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1].endswith("--run-as-user nosuch: no such user")
    assert "Traceback" not in done.stderr
