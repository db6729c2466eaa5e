"""`nitrometer decode`'s text: what `nvme amzn stats [-d] DEV` prints for a page, byte for
byte (nvme-cli 3.0's format; tests compare it with real nvme-cli output)."""

from __future__ import annotations

from nitrometer.native import Page, format_size

RULE = "=" * 33


def _hist_rows(lower: list[int], upper: list[int], counts: list[int]) -> list[str]:
    return [f"[{lo:<8} - {up:<8}] => {c:<8}" for lo, up, c in zip(lower, upper, counts)]


def _latency_histogram(title: str, hist) -> list[str]:
    return [title, RULE, "Lower       Upper        IO Count", RULE,
            *_hist_rows(hist.lower, hist.upper, hist.counts), RULE, ""]


def render_text(page: Page, details: bool = False) -> str:
    """`nvme amzn stats [-d] DEV` normal output for this page."""
    c = page.counters
    local = page.kind == "instance_store"
    lines = [
        "Total Ops:", f"  Read: {c['total_read_ops']}", f"  Write: {c['total_write_ops']}",
        "Total Bytes:", f"  Read: {c['total_read_bytes']}", f"  Write: {c['total_write_bytes']}",
        "Total Time (us):", f"  Read: {c['total_read_time']}", f"  Write: {c['total_write_time']}",
        "",
    ]
    if not local:
        lines += ["EBS Volume Performance Exceeded (us):",
                  f"  IOPS: {c['ebs_volume_performance_exceeded_iops']}",
                  f"  Throughput: {c['ebs_volume_performance_exceeded_tp']}", ""]
    scope = "EC2 Instance Local Storage" if local else "EC2 Instance EBS"
    lines += [f"{scope} Performance Exceeded (us):",
              f"  IOPS: {c['ec2_instance_performance_exceeded_iops']}",
              f"  Throughput: {c['ec2_instance_performance_exceeded_tp']}", "",
              f"Queue Length (point in time): {c['volume_queue_length']}", ""]
    lines += _latency_histogram("Read IO Latency Histogram", page.read)
    lines += _latency_histogram("Write IO Latency Histogram", page.write)
    if details and page.version == 1:
        for band in page.bands:
            lines += [RULE, "IO Size Range:",
                      f"(io_size_low: {format_size(band.low)} -> "
                      f"io_size_high: {format_size(band.high)}]"]
            for title, hist in (("Read", band.read), ("Write", band.write)):
                lines.append(f"{title} IO Latency Histogram")
                lines += _hist_rows(hist.lower, hist.upper, hist.counts)
    return "\n".join(lines) + "\n"
