"""The workload collector's flags: defaults, the config file, bad values as one line."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from nitrometer.agent.config import build_config, configure_parser
from nitrometer.collectors.cgroups import DEFAULT_PATTERNS
from nitrometer.errors import ConfigError


def parse(*argv):
    parser = argparse.ArgumentParser()
    configure_parser(parser)
    return build_config(parser.parse_args(list(argv)))


def test_defaults_and_flags(tmp_path):
    config = parse()
    assert config.cgroupfs_path == "/sys/fs/cgroup" and config.workload_top == 5
    assert config.workload_patterns == DEFAULT_PATTERNS and config.workload_depth == 6
    config = parse("--path.cgroupfs", "/host/cgroup", "--collector.workload.top", "10",
                   "--collector.workload.patterns", "system.slice/*.service, kubepods*-pod*",
                   "--no-collector.workload")
    assert config.cgroupfs_path == "/host/cgroup" and config.workload_top == 10
    assert config.workload_patterns == ("system.slice/*.service", "kubepods*-pod*")
    assert not config.enabled("workload")
    path = tmp_path / "nitrometer.yml"
    path.write_text("collector.workload.top: 3\ncollector.workload.depth: 4\n")
    config = parse("--config.file", str(path))
    assert (config.workload_top, config.workload_depth) == (3, 4)


@pytest.mark.parametrize("argv, message", [
    (("--collector.workload.top", "0"), "collector.workload.top: expected a whole number"),
    (("--collector.workload.top", "five"), "collector.workload.top: expected a whole number"),
    (("--collector.workload.depth", "99"), "collector.workload.depth: expected a whole"),
    (("--collector.workload.patterns", " , "), "collector.workload.patterns: expected"),
])
def test_bad_values_say_which_flag(argv, message):
    with pytest.raises(ConfigError, match=message):
        parse(*argv)


def test_a_bad_value_is_one_line_and_exit_2():
    done = subprocess.run([sys.executable, "-m", "nitrometer", "run",
                           "--collector.workload.top=-1"], capture_output=True, timeout=60)
    assert done.returncode == 2
    lines = done.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and "collector.workload.top" in lines[0]
