"""`nitrometer decode`: its options, JSON keys and clean errors (the text is checked against
real nvme-cli output in test_captures.py)."""

import json
import subprocess
import sys

import pytest

from nitrometer import logpage

BINS = [(0, 1, 0), (1, 2, 5), (2, logpage.OPEN_ENDED_US, 7)]


def nitrometer(*args, stdin=None):
    return subprocess.run([sys.executable, "-m", "nitrometer", *args], input=stdin,
                          capture_output=True)


def write_page(tmp_path, **kwargs):
    kind = kwargs.pop("kind", "instance_store")
    counters = {name: i + 1 for i, name in enumerate(logpage.COUNTERS)}
    path = tmp_path / "page.bin"
    path.write_bytes(logpage.encode_page(kind, counters, BINS, BINS, **kwargs))
    return path


def test_ebs_text_names_volume_and_instance_limits(tmp_path):
    out = nitrometer("decode", str(write_page(tmp_path, kind="ebs"))).stdout.decode()
    assert "EBS Volume Performance Exceeded (us):\n  IOPS: 7\n  Throughput: 8\n\n" in out
    assert "EC2 Instance EBS Performance Exceeded (us):\n  IOPS: 9\n" in out
    assert "IO Size Range" not in out


def test_json_uses_nvme_cli_keys_and_integer_band_bounds(tmp_path):
    path = write_page(tmp_path, band_sizes=(512, logpage.NO_SIZE_BOUND),
                      band_read=[[1, 2, 3], [4, 5, 6]], band_write=[[0, 0, 1], [0, 1, 0]])
    doc = json.loads(nitrometer("decode", "--json", str(path)).stdout)
    assert doc["kind"] == "instance_store" and doc["version"] == 1
    assert [doc[k] for k in logpage.COUNTERS] == list(range(1, 12))
    assert doc["read_io_latency_histogram"]["num_bins"] == 3
    assert doc["read_io_latency_histogram"]["bins"][1] == {"lower": 1, "upper": 2, "count": 5}
    bands = doc["io_size_histograms"]
    assert [(b["io_size_low"], b["io_size_high"]) for b in bands] == [(0, 512), (512, None)]
    assert [b["count"] for b in bands[1]["read_io_latency_histogram"]["bins"]] == [4, 5, 6]


def test_details_only_with_d_and_only_for_version_1(tmp_path):
    bands = dict(band_sizes=(4096, logpage.NO_SIZE_BOUND), band_read=[[1, 2, 3], [0, 0, 0]],
                 band_write=[[4, 5, 6], [0, 0, 0]])
    v1, v2 = write_page(tmp_path, **bands), tmp_path / "v2.bin"
    v2.write_bytes(logpage.encode_page("instance_store", {}, BINS, BINS, version=2, **bands))
    assert "IO Size Range" not in nitrometer("decode", str(v1)).stdout.decode()
    detailed = nitrometer("decode", "-d", str(v1)).stdout.decode()
    assert "(io_size_low: 0 -> io_size_high: 4K]" in detailed
    # A newer version decodes (bands too), but nvme-cli's text has detail for version 1 only.
    assert "IO Size Range" not in nitrometer("decode", "--details", str(v2)).stdout.decode()
    doc = json.loads(nitrometer("decode", "--json", str(v2)).stdout)
    assert doc["version"] == 2
    assert [b["io_size_high"] for b in doc["io_size_histograms"]] == [4096, None]


def test_reads_stdin(tmp_path):
    data = write_page(tmp_path, kind="ebs").read_bytes()
    assert json.loads(nitrometer("decode", "-j", "-", stdin=data).stdout)["kind"] == "ebs"


@pytest.mark.parametrize("content, message", [
    (b"", "shorter"),
    (b"\x00" * 4096, "not an EC2 NVMe statistics page"),
    (logpage.encode_page("ebs", {}, BINS, BINS)[:2000], "shorter"),
    (logpage.encode_page("ebs", {}, [(0, 2**60, 0), (2**60, 2**60 + 1, 0)], BINS),
     "apart in seconds"),
])
def test_malformed_files_get_one_line_and_status_2(tmp_path, content, message):
    path = tmp_path / "bad.bin"
    path.write_bytes(content)
    result = nitrometer("decode", str(path))
    err = result.stderr.decode()
    assert result.returncode == 2
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_missing_file_is_one_line(tmp_path):
    result = nitrometer("decode", str(tmp_path / "nope.bin"))
    assert result.returncode == 2
    expected = f"nitrometer: cannot read {tmp_path / 'nope.bin'}: No such file or directory\n"
    assert result.stderr.decode() == expected
