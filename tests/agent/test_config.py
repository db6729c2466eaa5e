import argparse

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nitrometer.agent.config import OPTIONS, build_config, configure_parser
from nitrometer.errors import ConfigError


def parse(*argv):
    parser = argparse.ArgumentParser()
    configure_parser(parser)
    return build_config(parser.parse_args(list(argv)))


def test_defaults_follow_exporter_conventions():
    config = parse()
    assert (config.listen_host, config.listen_port) == ("", 9720)
    assert config.poll_interval == 1.0 and config.source.kind == "ioctl"
    assert config.collectors == {"host", "identity", "io_size", "peaks", "workload", "kubernetes"}


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
    assert config.collectors == {"host", "identity", "io_size", "workload", "kubernetes"}


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


# -- bounded values and config files of any shape --------------------------------------------

@pytest.mark.parametrize("argv, message", [
    (["--poll.interval", "1.5"], "poll.interval: whole seconds only"),
    (["--poll.interval", "1500ms"], "poll.interval: whole seconds only"),
    (["--poll.interval", "2h"], "poll.interval: at most 1h"),
    (["--poll.interval", "9" * 400], "poll.interval: at most 1h"),
    (["--peaks.window", "2h"], "peaks.window: at most 1h"),
    (["--peaks.window", "100ms"], "peaks.window: at least 1s"),
    (["--rescan.interval", "500d"], "rescan.interval: at most 1h"),
    (["--rescan.interval", "10ms"], "rescan.interval: at least 1s"),
])
def test_intervals_and_durations_are_range_checked(argv, message):
    with pytest.raises(ConfigError, match=message) as info:
        parse(*argv)
    assert "\n" not in str(info.value) and len(str(info.value)) < 200


def test_whole_second_intervals_in_any_unit():
    assert parse("--poll.interval", "1000ms").poll_interval == 1.0
    assert parse("--poll.interval", "1m").poll_interval == 60.0
    assert parse("--poll.interval", "1h").poll_interval == 3600.0


@pytest.mark.parametrize("text, message", [
    ("poll.interval: .inf\n", "poll.interval: at most 1h"),
    ("poll.interval: 1.0e+10\n", "poll.interval: at most 1h"),
    ("poll.interval: .nan\n", "poll.interval: expected a duration"),
    ("poll.interval: 1" + "0" * 400 + "\n", "poll.interval: at most 1h"),
    ("peaks.window: -.inf\n", "peaks.window: must be more than zero"),
    ("poll.interval: {every: 1s}\n", "poll.interval: expected a single value, got a mapping"),
    ("web.config.file: [a, b]\n", "web.config.file: expected a single value, got a list"),
    ("events.file: {a: {b: c}}\n", "events.file: expected a single value"),
    ("demo: {a: 1}\n", "demo: expected a single value"),
    ("demo: sometimes\n", "demo: expected true or false"),
    ("ebs.volumes: {vol-1: {type: {gp: 3}}}\n", "type: expected a volume type"),
    ("ebs.volumes: {vol-1: {iops: .inf}}\n", "iops must be a positive number"),
    ("ebs.volumes: {vol-1: {iops: .nan}}\n", "iops must be a positive number"),
    ("ebs.volumes: {vol-1: {1: 2, a: 3}}\n", "unknown key '1'"),
    ("[" * 5000 + "]" * 5000 + "\n", "config.file"),
])
def test_config_files_of_any_shape_are_one_line(tmp_path, text, message):
    path = tmp_path / "c.yml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message) as info:
        parse("--config.file", str(path))
    assert "\n" not in str(info.value) and len(str(info.value)) < 300


def test_a_config_file_that_is_not_utf8_or_too_big(tmp_path):
    path = tmp_path / "c.yml"
    path.write_bytes(b"log.level: d\xe9bug\n")
    with pytest.raises(ConfigError, match=r"not UTF-8 text \(byte 0xe9 at offset 12\)"):
        parse("--config.file", str(path))
    with pytest.raises(ConfigError, match="larger than 1024 KiB"):
        parse("--config.file", "/dev/zero")


def test_an_empty_value_is_the_default(tmp_path):
    path = tmp_path / "c.yml"
    path.write_text("poll.interval:\nevents.file:\n")
    config = parse("--config.file", str(path))
    assert (config.poll_interval, config.events_file) == (1.0, None)


_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=20))
_yaml_values = st.recursive(_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)),
    max_leaves=8)
_keys = st.sampled_from(sorted(OPTIONS) + ["demo", "ebs.volumes", "collector.host", "x"])


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(document=st.one_of(_yaml_values, st.dictionaries(_keys, _yaml_values, max_size=4),
                          st.dictionaries(_keys, st.dictionaries(
                              st.sampled_from(["vol-1", "x"]), _yaml_values), max_size=2)))
def test_any_yaml_document_is_a_config_or_one_line(tmp_path, document):
    path = tmp_path / "c.yml"
    path.write_text(yaml.safe_dump(document))
    _config_or_one_line(path)


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=200))
def test_any_bytes_are_a_config_or_one_line(tmp_path, data):
    path = tmp_path / "c.yml"
    path.write_bytes(data)
    _config_or_one_line(path)


def _config_or_one_line(path):
    try:
        parse("--config.file", str(path))
    except ConfigError as exc:
        assert "\n" not in str(exc) and len(str(exc)) < 400, str(exc)


def test_an_events_file_that_cannot_be_opened_is_one_line(tmp_path):
    from nitrometer.agent.events import EventSink

    for path, message in ((str(tmp_path / "no" / "e.jsonl"), "No such file or directory"),
                          (str(tmp_path), "Is a directory"), ("a\0b", "not a file name")):
        with pytest.raises(ConfigError, match=message) as info:
            EventSink(path)
        assert "\n" not in str(info.value)
    sink = EventSink(str(tmp_path / "e.jsonl"))
    with pytest.raises(ConfigError):
        sink.reopen(str(tmp_path))
    sink.write([{"event": "ended"}])  # the file in use stays in use
    sink.close()
    assert '"event": "ended"' in (tmp_path / "e.jsonl").read_text()
