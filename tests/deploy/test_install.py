"""deploy/install.sh, run for real as root into temporary directories.

pip, the venv and systemctl are stand-ins that record how they were called (installing
numpy and pyarrow for real would take minutes and the network); everything else the
script does, it does.
"""

from __future__ import annotations

import grp
import os
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path

import pytest

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"

FAKE_PYTHON = """#!/bin/sh
# python3 -m venv DIR: a venv whose pip and nitrometer record their arguments
[ "$1" = -m ] && [ "$2" = venv ] || exit 9
mkdir -p "$3/bin"
printf '#!/bin/sh\\necho "$*" >> %s/pip.log\\n' "$LOGS" > "$3/bin/pip"
printf '#!/bin/sh\\necho nitrometer 0.1.0\\n' > "$3/bin/nitrometer"
chmod +x "$3/bin/pip" "$3/bin/nitrometer"
"""


def executable(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(0o755)
    return path


@pytest.fixture
def readable_dir():
    """A directory any user can read: the checkout and pytest's tmp_path may not be."""
    with tempfile.TemporaryDirectory(prefix="nitrometer-install-") as path:
        os.chmod(path, 0o755)
        yield Path(path)


def readable_copy(where: Path) -> Path:
    """The script and what it reads, copied where any user can read them."""
    src = where / "src"
    shutil.copytree(DEPLOY, src / "deploy")
    for path in [src, *src.rglob("*")]:
        extra = stat.S_IROTH | (stat.S_IXOTH if path.is_dir() else 0)
        path.chmod(path.stat().st_mode | extra)
    return src / "deploy" / "install.sh"


@pytest.fixture
def setup(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("install.sh runs as root")
    script = readable_copy(tmp_path)
    logs = tmp_path / "logs"
    logs.mkdir()
    bindir = tmp_path / "bin"
    bindir.mkdir()
    executable(bindir / "systemctl", f'#!/bin/sh\necho "$*" >> {logs}/systemctl.log\n')
    python = executable(bindir / "fake-python", FAKE_PYTHON)
    wheel_dir = tmp_path / "wheels"
    wheel_dir.mkdir()
    wheel = wheel_dir / "nitrometer-0.1.0-cp311-cp311-linux_x86_64.whl"
    wheel.write_bytes(b"PK")
    env = {**os.environ, "PATH": f"{bindir}:{os.environ['PATH']}", "LOGS": str(logs),
           "PYTHON": str(python), "PREFIX": str(tmp_path / "opt" / "nm"),
           "CONFIG_DIR": str(tmp_path / "etc"), "UNIT_DIR": str(tmp_path / "units")}
    (tmp_path / "units").mkdir()

    def run(*args, **extra):
        return subprocess.run(["sh", str(script), *args], env={**env, **extra},
                              capture_output=True, text=True, timeout=60)

    return run, tmp_path, wheel, logs


def test_installs_pinned_from_the_wheel_on_localhost_under_prefix(setup):
    run, tmp_path, wheel, logs = setup
    done = run(str(wheel))
    assert done.returncode == 0, done.stderr
    [pip] = (logs / "pip.log").read_text().splitlines()
    assert "--constraint" in pip and pip.endswith(str(wheel)) and "--only-binary=:all:" in pip
    constraints = pip.split("--constraint ")[1].split()[0]
    pins = [line for line in Path(constraints).read_text().splitlines()
            if line and not line.startswith("#")]
    assert pins and all("==" in line for line in pins)
    config = (tmp_path / "etc" / "nitrometer.yml").read_text()
    assert 'web.listen-address: "127.0.0.1:9720"' in config
    unit = (tmp_path / "units" / "nitrometer.service").read_text()
    assert f"ExecStart={tmp_path}/opt/nm/bin/nitrometer run --config.file={tmp_path}/etc/" \
           "nitrometer.yml" in unit
    assert "/opt/nitrometer" not in unit
    assert "enable --now nitrometer.service" in (logs / "systemctl.log").read_text()


def test_the_shipped_example_has_no_usable_credential(setup):
    from nitrometer.agent.webconfig import load_web_config
    from nitrometer.errors import ConfigError

    example = DEPLOY / "web-config.example.yml"
    text = example.read_text()
    assert "$2" not in text  # no bcrypt hash of any password
    copy = setup[1] / "web.yml"
    copy.write_text(text.replace("cert_file: nitrometer.crt\n", "").replace(
        "  key_file: /run/credentials/nitrometer.service/nitrometer.key\n", ""))
    with pytest.raises(ConfigError, match="not a bcrypt hash"):
        load_web_config(str(copy))


HASHED = ("basic_auth_users:\n"
          "  alice: $2b$12$C8bB5u5cG9r6cX8m2dJ2MeJ8xq4y3m9Yb1b6m0n8b2c4d6e8f0a1u\n")


def test_listening_beyond_localhost_needs_a_web_config_that_lets_only_known_clients_in(setup):
    run, tmp_path, wheel, logs = setup
    for listen in (":9720", "0.0.0.0:9720", "[::]:9720"):
        done = run(str(wheel), LISTEN=listen)
        assert done.returncode == 2 and "WEB_CONFIG" in done.stderr, done.stderr
    open_to_all = tmp_path / "open.yml"
    for text in ("", "basic_auth_users: {}\n", "tls_server_config:\n  cert_file: c\n"):
        open_to_all.write_text(text)  # empty, no user, TLS without client certificates
        done = run(str(wheel), LISTEN=":9720", WEB_CONFIG=str(open_to_all))
        assert done.returncode == 2 and "lets anyone in" in done.stderr, (text, done.stderr)
    assert not (logs / "pip.log").exists()
    web = tmp_path / "web.yml"
    web.write_text(HASHED)
    done = run(str(wheel), LISTEN=":9720", WEB_CONFIG=str(web), SERVICE_GROUP="daemon")
    assert done.returncode == 0, done.stderr
    config = (tmp_path / "etc" / "nitrometer.yml").read_text()
    assert f"web.config.file: {tmp_path}/etc/web-config.yml" in config
    installed = (tmp_path / "etc" / "web-config.yml").stat()
    assert stat.S_IMODE(installed.st_mode) == 0o640 and installed.st_uid == 0
    assert installed.st_gid == grp.getgrnam("daemon").gr_gid
    drop_in = tmp_path / "units" / "nitrometer.service.d" / "web-config.conf"
    assert "SupplementaryGroups=daemon" in drop_in.read_text().splitlines()


def test_an_empty_listen_address_is_refused(setup):
    run, tmp_path, wheel, logs = setup
    web = tmp_path / "web.yml"
    web.write_text(HASHED)
    for extra in ({}, {"WEB_CONFIG": str(web)}):
        done = run(str(wheel), LISTEN="", **extra)
        assert done.returncode == 2 and "LISTEN is empty" in done.stderr, done.stderr
    assert not (logs / "pip.log").exists()


def test_without_a_wheel_it_builds_nothing_and_says_what_it_needs(setup):
    run, tmp_path, _, logs = setup
    done = run(CC="sh")  # even with a compiler there: nothing is built as root
    assert done.returncode == 2 and "make wheels" in done.stderr
    assert not (logs / "pip.log").exists()


def test_installs_the_wheels_of_make_wheels_with_their_dependencies(setup):
    run, tmp_path, wheel, logs = setup
    dist = tmp_path / "src" / "dist"
    (dist / "deps").mkdir(parents=True)
    machine = os.uname().machine
    built = dist / f"nitrometer-0.1.0-cp39-abi3-manylinux2014_{machine}.whl"
    built.write_bytes(b"PK")
    done = run()
    assert done.returncode == 0, done.stderr
    [pip] = (logs / "pip.log").read_text().splitlines()
    assert pip.endswith(str(built)) and "--only-binary=:all:" in pip
    assert f"--find-links {dist}/deps" in pip


def test_refuses_without_root(readable_dir):
    script = readable_copy(readable_dir)
    command = ["sh", str(script)]
    if os.geteuid() == 0:  # drop to nobody, or the script would really install
        command = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *command]
    done = subprocess.run(command, capture_output=True, timeout=30, cwd=readable_dir)
    assert done.returncode == 2 and b"run as root" in done.stderr
