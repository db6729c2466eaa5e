import argparse

import pytest

from nitrometer.agent.config import build_config, configure_parser
from nitrometer.errors import ConfigError


def parse(*argv):
    parser = argparse.ArgumentParser()
    configure_parser(parser)
    return build_config(parser.parse_args(list(argv)))


def test_defaults_follow_exporter_conventions():
    config = parse()
    assert (config.listen_host, config.listen_port) == ("", 9720)
    assert config.poll_interval == 1.0 and config.source.kind == "ioctl"
    assert config.collectors == {"host", "identity", "io_size", "peaks"}


def test_flags_override_the_file_which_overrides_defaults(tmp_path):
    path = tmp_path / "nitrometer.yml"
    path.write_text("poll.interval: 2s\npeaks.window: 5m\ncollector.host: false\n"
                    "web.listen-address: 127.0.0.1:9999\n")
    config = parse("--config.file", str(path), "--poll.interval", "3")
    assert config.poll_interval == 3.0
    assert config.peaks_window == 300.0
    assert "host" not in config.collectors
    assert config.listen_address == "127.0.0.1:9999"
    config = parse("--config.file", str(path), "--collector.host", "--no-collector.peaks")
    assert config.collectors == {"host", "identity", "io_size"}


@pytest.mark.parametrize("argv, message", [
    (["--poll.interval", "500ms"], "at least 1s"),
    (["--source", "simulate:i3en.xlarge", "--poll.interval", "0.25"], "at least 1s"),
    (["--exceeded.min-share", "150%"], "between 0% and 100%"),
    (["--exceeded.min-share", "some"], "expected a share"),
    (["--exceeded.episode-end", "0"], "whole number"),
    (["--poll.interval", "soon"], "expected a duration"),
    (["--web.listen-address", "9720"], "HOST:PORT"),
    (["--web.listen-address", ":70000"], "HOST:PORT"),
    (["--log.level", "loud"], "log.level"),
    (["--source", "tape"], "--source"),
    (["--web.config.file", "/nonexistent/web.yml"], "no such file"),
])
def test_bad_values_are_one_clear_line(argv, message):
    with pytest.raises(ConfigError, match=message) as info:
        parse(*argv)
    assert "\n" not in str(info.value)


def test_exceeded_share_and_episode_end():
    config = parse()
    assert (config.exceeded_share, config.episode_end) == (0.01, 3)
    config = parse("--exceeded.min-share", "5%", "--exceeded.episode-end", "10")
    assert (config.exceeded_share, config.episode_end) == (0.05, 10)
    assert parse("--exceeded.min-share", "0.002").exceeded_share == 0.002


def test_bad_config_file(tmp_path):
    path = tmp_path / "c.yml"
    path.write_text("poll.interval: [1\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        parse("--config.file", str(path))
    path.write_text("poll_interval: 1s\n")
    with pytest.raises(ConfigError, match="unknown key 'poll_interval'"):
        parse("--config.file", str(path))
