"""The config file's safe reading, shared by the agent and the commands that take
--config.file: a small UTF-8 YAML file, and its `ebs.volumes` (what each EBS volume is
provisioned for). Every failure is one ConfigError line."""

from __future__ import annotations

from nitrometer.ec2 import MIB, VolumeLimits
from nitrometer.errors import ConfigError
from nitrometer.timefmt import shown

MAX_CONFIG_BYTES = 1 << 20  # a config file is a few hundred bytes; /dev/zero is not one
SCALARS = (str, int, float, bool)
MAX_VOLUME_NUMBER = 1e9  # IOPS or MiB/s: far above any EBS volume's


def read_text(path: str, what: str, limit: int = MAX_CONFIG_BYTES) -> str:
    """A small UTF-8 text file, or ConfigError (one line) saying what is wrong with it."""
    try:
        with open(path, "rb") as f:
            data = f.read(limit + 1)
    except OSError as exc:
        raise ConfigError(f"{what} {path}: {exc.strerror}") from None
    if len(data) > limit:
        raise ConfigError(f"{what} {path}: larger than {limit // 1024} KiB")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{what} {path}: not UTF-8 text (byte {data[exc.start]:#04x} at "
                          f"offset {exc.start})") from None


def parse_yaml(text: str, what: str):
    """safe_load, any failure of it one line."""
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" line {where.line + 1}" if where else ""
        raise ConfigError(f"{what}:{line} not valid YAML") from None
    except RecursionError:
        raise ConfigError(f"{what}: nested too deeply") from None


def kind_of(value) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return f"a {type(value).__name__}"



def parse_volumes(data, path) -> dict:
    """ebs.volumes in the config file: {vol-...: {type: gp3, iops: N, throughput_mib_s: N}};
    throughput in MiB/s, the unit AWS provisions it in and DescribeVolumes reports."""

    if data is None:
        return {}
    where = f"config.file {path}: ebs.volumes"
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping of volume ids to their attributes")
    out = {}
    for volume_id, attrs in data.items():
        if not str(volume_id).startswith("vol-") or not isinstance(attrs, dict):
            raise ConfigError(f"{where}: expected vol-...: {{type, iops, throughput_mib_s}}, "
                              f"got {shown(volume_id)}")
        if "throughput_mb_s" in attrs:
            raise ConfigError(f"{where}: {volume_id}: throughput_mb_s is now throughput_mib_s, "
                              "in MiB/s as AWS provisions it (250 MiB/s = 262.1 MB/s)")
        unknown = set(attrs) - {"type", "iops", "throughput_mib_s"}
        if unknown:
            raise ConfigError(f"{where}: {volume_id}: unknown key "
                              f"{shown(sorted(map(str, unknown))[0])}")
        kind = attrs.get("type")
        if kind is not None and not isinstance(kind, SCALARS):
            raise ConfigError(f"{where}: {volume_id}: type: expected a volume type like gp3, "
                              f"got {kind_of(kind)}")
        numbers = {}
        for key in ("iops", "throughput_mib_s"):
            value = attrs.get(key)
            if value is not None and (isinstance(value, bool) or not
                                      isinstance(value, (int, float))
                                      or not 0 < value <= MAX_VOLUME_NUMBER):  # also nan
                raise ConfigError(f"{where}: {volume_id}: {key} must be a positive number up to "
                                  f"{MAX_VOLUME_NUMBER:.0f}, got {shown(value)}")
            numbers[key] = value
        out[str(volume_id)] = VolumeLimits(
            str(kind or ""), numbers["iops"],
            numbers["throughput_mib_s"] * MIB if numbers["throughput_mib_s"] else None,
            "config")
    return out


def read_volumes(path: str) -> dict:
    """ebs.volumes of a config file; its other keys are the agent's business."""
    data = parse_yaml(read_text(path, "config.file"), f"config.file {path}")
    if data is not None and not isinstance(data, dict):
        raise ConfigError(f"config.file {path}: expected a mapping of flag names to values")
    return parse_volumes((data or {}).get("ebs.volumes"), path)
