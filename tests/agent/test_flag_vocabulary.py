"""node_exporter's flag vocabulary: its log levels, one socket per --web.listen-address,
--version on every command, and JSON logs whose events are JSON fields."""

from __future__ import annotations

import json
import logging
import subprocess
import sys

import pytest

from nitrometer import __version__
from nitrometer.agent.config import build_config, configure_parser
from nitrometer.agent.events import EventSink
from nitrometer.cli import COMMANDS, Parser
from nitrometer.logs import setup_logging
from tests.agent.test_conventions import get, start_agent, wait_for
from tests.support.processes import stop
from tests.support.prometheus import free_port


def config_of(*flags):
    parser = Parser(prog="nitrometer run")
    configure_parser(parser)
    return build_config(parser.parse_args(list(flags)))


@pytest.mark.parametrize(("given", "kept"), [("warn", "warn"), ("WARN", "warn"),
                                             ("warning", "warn"), ("debug", "debug"),
                                             ("error", "error")])
def test_node_exporter_log_levels(given, kept):
    assert config_of(f"--log.level={given}").log_level == kept


def test_warn_lets_warnings_through_and_holds_info(capsys):
    setup_logging("warn", "logfmt")
    log = logging.getLogger("nitrometer.test")
    log.info("quiet")
    log.warning("loud")
    err = capsys.readouterr().err
    assert "loud" in err and "quiet" not in err
    setup_logging("info", "logfmt")


def test_repeated_listen_addresses_are_all_kept():
    config = config_of("--web.listen-address=127.0.0.1:9001", "--web.listen-address=[::1]:9002",
                       "--web.listen-address=127.0.0.1:9001")
    assert config.listen == (("127.0.0.1", 9001), ("::1", 9002))
    assert config.listen_address == "127.0.0.1:9001, [::1]:9002"
    assert config_of().listen == (("", 9720),)


def test_the_config_file_takes_a_list_of_listen_addresses(tmp_path):
    path = tmp_path / "nitrometer.yml"
    path.write_text("web.listen-address: ['127.0.0.1:9101', ':9102']\n")
    assert config_of(f"--config.file={path}").listen == (("127.0.0.1", 9101), ("", 9102))
    # A flag given on the command line replaces the file's list, as for every other key.
    assert config_of(f"--config.file={path}", "--web.listen-address=:9103").listen == (
        ("", 9103),)


def test_the_agent_serves_every_listen_address(tmp_path):
    second = free_port()
    proc, first, log = start_agent(tmp_path, "--source=simulate:i3en.xlarge:steady:gp3",
                                   f"--web.listen-address=127.0.0.1:{second}")
    try:
        for port in (first, second):
            text = wait_for(lambda p=port: get(p, "/metrics")[0] == 200 and get(p, "/metrics")[1],
                            f"metrics on port {port}", timeout=60)
            assert "ec2_nvme_read_ops_total{" in text or "nitrometer_build_info" in text
    finally:
        stop(proc)
    assert proc.returncode == 0, log.read_text()[-2000:]


def test_a_taken_second_address_is_one_line(tmp_path):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "nitrometer", "run", "--source=simulate:i3en.xlarge",
             f"--web.listen-address=127.0.0.1:{free_port()}",
             f"--web.listen-address=127.0.0.1:{port}"],
            capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1] == (
        f"nitrometer: cannot listen on 127.0.0.1:{port}: Address already in use")


@pytest.mark.parametrize("argv", [["--version"], *([name, "--version"] for name in COMMANDS),
                                  ["prices", "list", "--version"]])
def test_version_on_every_command(argv):
    done = subprocess.run([sys.executable, "-m", "nitrometer", *argv], capture_output=True,
                          text=True, timeout=120)
    assert (done.returncode, done.stdout, done.stderr) == (0, f"nitrometer {__version__}\n", "")


EPISODE = {"event": "performance_exceeded", "state": "ended", "device": "nvme1n1",
           "limit": "iops", "seconds_exceeded": 1.5, "p99_latency_seconds": None}


def agent_lines(capsys) -> list[str]:
    """The agent handler's lines (a CLI test run in this process may have left its own)."""
    return [line for line in capsys.readouterr().err.splitlines()
            if line.startswith(("{", "ts="))]


def test_json_logs_carry_the_event_fields_as_fields(capsys):
    setup_logging("info", "json")
    EventSink().write([EPISODE])
    [line] = agent_lines(capsys)
    record = json.loads(line)
    assert record["msg"] == "performance_exceeded ended"
    assert {k: record[k] for k in EPISODE} == EPISODE
    assert record["level"] == "info" and record["logger"] == "nitrometer.events"
    setup_logging("info", "logfmt")


def test_logfmt_event_lines_keep_their_keys(capsys):
    setup_logging("info", "logfmt")
    EventSink().write([EPISODE])
    [line] = agent_lines(capsys)
    keys = [part.split("=", 1)[0] for part in line.split(" ") if "=" in part][:4]
    assert keys == ["ts", "level", "logger", "msg"]
    assert json.loads(json.loads(line.split(" msg=", 1)[1])) == EPISODE
