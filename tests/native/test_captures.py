"""`nitrometer decode` and our deltas against what real nvme-cli printed for the same pages."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from nitrometer import logpage, native
from nitrometer.commands.nvme_text import render_text
from tests.native import captures
from tests.native.captures import CASES

OLD_KEYS = {"ec2_instance_ebs_performance_exceeded_iops": "ec2_instance_performance_exceeded_iops",
            "ec2_instance_ebs_performance_exceeded_tp": "ec2_instance_performance_exceeded_tp"}


def decode(case: str, *flags: str) -> str:
    done = subprocess.run([sys.executable, "-m", "nitrometer", "decode", *flags,
                           str(captures.ROOT / case / "page.bin")], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.parametrize("case", CASES)
def test_text_is_nvme_cli_3_0_byte_for_byte(case):
    assert decode(case) == captures.output(case, "3.0rc1-text")
    assert decode(case, "-d") == captures.output(case, "3.0rc1-text-details")


@pytest.mark.parametrize("case", CASES)
def test_nvme_cli_2_16_prints_the_same_text(case):
    assert captures.output(case, "2.16-text") == captures.output(case, "3.0rc1-text")


def size_from_nvme_cli(text: str) -> int | None:
    """nvme-cli's IO size strings ("0", "4K", "1M", "max", decimal) as bytes; max: None."""
    if text == "max":
        return None
    units = {"K": 1024, "M": 1024 * 1024}
    return int(text[:-1]) * units[text[-1]] if text[-1] in units else int(text)


def bins(hist: dict) -> list[tuple[int, int, int]]:
    """A histogram's bins; nvme-cli's JSON and ours share this shape."""
    assert hist["num_bins"] == len(hist["bins"])
    return [(b["lower"], b["upper"], b["count"]) for b in hist["bins"]]


@pytest.mark.parametrize("version", ["3.0rc1", "2.16"])
@pytest.mark.parametrize("case", CASES)
def test_json_has_nvme_cli_values(case, version):
    theirs = json.loads(captures.output(case, f"{version}-json-details"))
    ours = json.loads(decode(case, "--json"))
    counters = {OLD_KEYS.get(k, k): v for k, v in theirs.items() if not isinstance(v, dict)}
    assert counters == {k: ours[k] for k in logpage.COUNTERS}
    for op in ("read", "write"):
        key = f"{op}_io_latency_histogram"
        assert bins(ours[key]) == bins(theirs[key])
    detail = theirs.get("latency_histograms")
    if detail is None:
        assert ours["version"] != 1 and not ours.get("io_size_histograms")
        return
    assert ours["version"] == 1
    bands = detail["io_histograms"]
    assert detail["num_of_hists"] == len(bands) == len(ours["io_size_histograms"])
    for mine, band in zip(ours["io_size_histograms"], bands):
        assert mine["io_size_low"] == size_from_nvme_cli(band["io_size_low"])
        assert mine["io_size_high"] == size_from_nvme_cli(band["io_size_high"])
        for op in ("read", "write"):
            key = f"{op}_io_latency_histogram"
            assert bins(mine[key]) == bins(band[key])


def interval_blocks() -> list[str]:
    """Each block nvme-cli printed in the interval run, without the blank lines between."""
    text = (captures.INTERVAL / "nvme-3.0rc1-interval-1s.out").read_text()
    assert text.startswith(captures.BANNER)
    return ["Total Ops:" + block.rstrip("\n") + "\n" for block in text.split("Total Ops:")[1:]]


def test_interval_deltas_are_what_nvme_cli_printed():
    pages = [native.decode((captures.INTERVAL / f"page{i}.bin").read_bytes()) for i in range(4)]
    blocks = interval_blocks()
    assert len(blocks) == len(pages)
    assert blocks[0] == render_text(pages[0]).rstrip("\n") + "\n"
    for prev, cur, block in zip(pages, pages[1:], blocks[1:]):
        summary = native.delta(prev, cur)
        assert not summary.reset and summary.glitches == ()
        assert summary.delta["total_read_ops"] > 0
        assert render_text(summary.delta).rstrip("\n") + "\n" == block
