"""Reading what `nvme amzn stats` prints (JSON of 2.12 to 3.0, and 3.0's text) back into
the page it was printed from."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from nitrometer.logpage import COUNTERS, NO_SIZE_BOUND, encode_page

# Parsing: the inverse of what nvme-cli prints, back to the values that make up the page.

OLD_INSTANCE_KEYS = {  # nvme-cli 2.12 to 2.16
    "ec2_instance_ebs_performance_exceeded_iops": "ec2_instance_performance_exceeded_iops",
    "ec2_instance_ebs_performance_exceeded_tp": "ec2_instance_performance_exceeded_tp",
}


class StatsFormatError(ValueError):
    """Output that is not `nvme amzn stats` as we know it."""


@dataclass
class ParsedStats:
    kind: str | None  # from the text's labels; JSON does not say
    counters: dict[str, int]
    read_bins: list[tuple[int, int, int]]
    write_bins: list[tuple[int, int, int]]
    band_sizes: list[int] = field(default_factory=list)
    band_read: list[list[int]] = field(default_factory=list)
    band_write: list[list[int]] = field(default_factory=list)

    def page(self, kind: str | None = None) -> bytes:
        kind = self.kind or kind
        if kind is None:
            raise StatsFormatError("cannot tell EBS from instance storage")
        # nvme-cli prints the IO-size detail for version 1 exactly, and only then.
        return encode_page(kind, self.counters, self.read_bins, self.write_bins,
                           version=1 if self.band_sizes else 0, band_sizes=self.band_sizes,
                           band_read=self.band_read, band_write=self.band_write)


def parse_size(text: str) -> int:
    """nvme-cli's IO size strings: "0", "512", "4K", "1M", "max"."""
    text = str(text).strip()
    if text == "max":
        return NO_SIZE_BOUND
    scale = {"K": 1 << 10, "M": 1 << 20}.get(text[-1:], 1)
    digits = text[:-1] if scale > 1 else text
    if not digits.isdigit():
        raise StatsFormatError(f"bad IO size {text!r}")
    return int(digits) * scale


def _json_hist(obj) -> list[tuple[int, int, int]]:
    bins = obj["bins"][: int(obj.get("num_bins", len(obj["bins"])))]
    return [(int(b["lower"]), int(b["upper"]), int(b["count"])) for b in bins]


def parse_json(text: str) -> ParsedStats:
    try:
        obj = json.loads(text)
        counters = {OLD_INSTANCE_KEYS.get(k, k): int(v) for k, v in obj.items()
                    if k in COUNTERS or k in OLD_INSTANCE_KEYS}
        stats = ParsedStats(None, counters, _json_hist(obj["read_io_latency_histogram"]),
                            _json_hist(obj["write_io_latency_histogram"]))
        detail = obj.get("latency_histograms")
        if detail:
            bands = detail["io_histograms"][: int(detail.get("num_of_hists", 8))]
            for band in bands:
                stats.band_sizes.append(parse_size(band["io_size_high"]))
                stats.band_read.append([c for *_, c in
                                        _json_hist(band["read_io_latency_histogram"])])
                stats.band_write.append([c for *_, c in
                                         _json_hist(band["write_io_latency_histogram"])])
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        if isinstance(exc, StatsFormatError):
            raise
        raise StatsFormatError(f"unexpected JSON from nvme amzn stats ({exc})") from None
    missing = [k for k in COUNTERS if k not in counters]
    if missing:
        raise StatsFormatError(f"JSON from nvme amzn stats lacks {', '.join(missing)}")
    return stats


_TEXT_COUNTERS = {
    ("Total Ops:", "Read"): "total_read_ops", ("Total Ops:", "Write"): "total_write_ops",
    ("Total Bytes:", "Read"): "total_read_bytes", ("Total Bytes:", "Write"): "total_write_bytes",
    ("Total Time (us):", "Read"): "total_read_time",
    ("Total Time (us):", "Write"): "total_write_time",
    ("EBS Volume Performance Exceeded (us):", "IOPS"): "ebs_volume_performance_exceeded_iops",
    ("EBS Volume Performance Exceeded (us):", "Throughput"): "ebs_volume_performance_exceeded_tp",
}
_HIST_ROW = re.compile(r"^\[(\d+)\s+-\s+(\d+)\s*\] => (\d+)\s*$")
_BAND = re.compile(r"^\(io_size_low: (\S+) -> io_size_high: (\S+)\]$")


def parse_text(text: str) -> ParsedStats:
    """nvme-cli's normal output (what render_text prints), as 3.0 gives even for -o json."""
    counters: dict[str, int] = {}
    kind = None
    section = ""
    read_bins: list = []
    write_bins: list = []
    bands_read: list[list[int]] = []
    bands_write: list[list[int]] = []
    sizes: list[int] = []
    target = None
    for line in text.splitlines():
        stripped = line.strip()
        row = _HIST_ROW.match(stripped)
        if row:
            if target is None:
                raise StatsFormatError(f"histogram row outside a histogram: {stripped!r}")
            target.append(tuple(int(x) for x in row.groups()))
            continue
        band = _BAND.match(stripped)
        if band:
            sizes.append(parse_size(band.group(2)))
            bands_read.append([])
            bands_write.append([])
            target = None
        elif stripped in ("Read IO Latency Histogram", "Write IO Latency Histogram"):
            read = stripped.startswith("Read")
            if sizes:
                target = _Counts(bands_read[-1] if read else bands_write[-1])
            else:
                target = read_bins if read else write_bins
        elif stripped.startswith("Queue Length (point in time):"):
            counters["volume_queue_length"] = int(stripped.rsplit(":", 1)[1])
        elif stripped.endswith(":") and not stripped.startswith("["):
            section = stripped
            if section.startswith("EC2 Instance Local Storage"):
                kind = "instance_store"
            elif section.startswith("EC2 Instance EBS"):
                kind = "ebs"
        elif ":" in stripped and section:
            label, _, value = stripped.partition(":")
            if section.startswith("EC2 Instance"):
                name = {"IOPS": "ec2_instance_performance_exceeded_iops",
                        "Throughput": "ec2_instance_performance_exceeded_tp"}.get(label)
            else:
                name = _TEXT_COUNTERS.get((section, label))
            if name and value.strip().isdigit():
                counters[name] = int(value)
    if kind is None or "total_read_ops" not in counters:
        raise StatsFormatError("not the output of nvme amzn stats")
    counters.setdefault("ebs_volume_performance_exceeded_iops", 0)
    counters.setdefault("ebs_volume_performance_exceeded_tp", 0)
    missing = [k for k in COUNTERS if k not in counters]
    if missing:
        raise StatsFormatError(f"text from nvme amzn stats lacks {', '.join(missing)}")
    return ParsedStats(kind, counters, read_bins, write_bins, sizes, bands_read, bands_write)


class _Counts:
    """Collects only the counts of a detail histogram's rows."""

    def __init__(self, counts: list[int]):
        self.counts = counts

    def append(self, row: tuple[int, int, int]) -> None:
        self.counts.append(row[2])


def parse_stats(output: str) -> ParsedStats:
    """Either format, after any banner lines (`--interval` prints one before the JSON)."""
    lines = output.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("{"):
            return parse_json("\n".join(lines[i:]))
        if line.strip() == "Total Ops:":
            return parse_text("\n".join(lines[i:]))
    raise StatsFormatError("no statistics in the output of nvme amzn stats")
