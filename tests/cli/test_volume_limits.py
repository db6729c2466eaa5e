"""snapshot, replay and record on real EBS volumes: the provisioned limits come from the
agent's config file (ebs.volumes) or the EC2 API (--collector.ebs_api); where neither has
them, one line says so and how to provide them."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

import pytest

from tests.cli.fixtures import EBS
from tests.cli.test_stated_limits import growing_ebs, version_1_recording

VOLUME = EBS.serial  # vol-0123456789abcdef0
UNKNOWN = (f"nitrometer: nvme1n1 ({VOLUME}): provisioned IOPS and throughput unknown, so no "
           "% of the volume limit; give them under ebs.volumes in --config.file, or ask the "
           "EC2 API with --collector.ebs_api\n")

# The EC2 Query API's answer, in the form of the DescribeVolumes example and response
# elements of https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_DescribeVolumes.html
# (Volume: https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_Volume.html; iops and
# throughput, MiB/s, are given for gp3).
DESCRIBE_VOLUMES = f"""<?xml version="1.0" encoding="UTF-8"?>
<DescribeVolumesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">
   <requestId>59dbff89-35bd-4eac-99ed-be587EXAMPLE</requestId>
   <volumeSet>
      <item>
         <volumeId>{VOLUME}</volumeId>
         <size>100</size>
         <snapshotId/>
         <availabilityZone>us-east-1a</availabilityZone>
         <status>in-use</status>
         <createTime>2026-01-01T00:00:00.000Z</createTime>
         <volumeType>gp3</volumeType>
         <iops>6000</iops>
         <throughput>250</throughput>
         <encrypted>false</encrypted>
         <multiAttachEnabled>false</multiAttachEnabled>
      </item>
   </volumeSet>
</DescribeVolumesResponse>
"""


@pytest.fixture
def recording(tmp_path):
    """A recording of a real EBS volume made before recordings carried its limits."""
    path = tmp_path / "host.rec"
    version_1_recording(path, growing_ebs(3, 0))
    return path


def nitrometer(*args, env=None):
    return subprocess.run([sys.executable, "-m", "nitrometer", *args], capture_output=True,
                          text=True, timeout=120, env={**os.environ, **(env or {})})


def test_an_unknown_volume_limit_is_said_once_with_how_to_give_it(recording):
    done = nitrometer("replay", str(recording), "1", "3")
    assert done.returncode == 0, done.stderr
    assert done.stderr == UNKNOWN
    assert "% of" not in done.stdout


def test_the_config_file_gives_the_volume_limits(recording, tmp_path):
    config = tmp_path / "nitrometer.yml"
    config.write_text("web.listen-address: 127.0.0.1:9720\nebs.volumes:\n"
                      f"  {VOLUME}: {{type: io2, iops: 4000, throughput_mb_s: 500}}\n")
    done = nitrometer("replay", str(recording), "1", "1", "--config.file", str(config))
    assert (done.returncode, done.stderr) == (0, "")
    assert "nvme1n1 volume (io2) at 25% of 4,000 IOPS, 1% of 500.0 MB/s" in done.stdout


def test_a_bad_config_file_is_one_line(recording, tmp_path):
    config = tmp_path / "bad.yml"
    config.write_text(f"ebs.volumes:\n  {VOLUME}: {{iops: -1}}\n")
    done = nitrometer("replay", str(recording), "1", "--config.file", str(config))
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr == (f"nitrometer: config.file {config}: ebs.volumes: {VOLUME}: iops "
                           "must be a positive number up to 1000000000, got -1\n")


class Ec2Endpoint:
    """DescribeVolumes on 127.0.0.1, remembering the requests it answered."""

    def __init__(self):
        self.requests: list[dict] = []
        requests = self.requests

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (the http.server name)
                length = int(self.headers["Content-Length"])
                requests.append(parse_qs(self.rfile.read(length).decode()))
                body = DESCRIBE_VOLUMES.encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/xml;charset=UTF-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_the_ec2_api_gives_the_volume_limits(recording, tmp_path):
    endpoint = Ec2Endpoint()
    try:
        env = {"AWS_ENDPOINT_URL_EC2": endpoint.url, "AWS_ACCESS_KEY_ID": "AKIDEXAMPLE",
               "AWS_SECRET_ACCESS_KEY": "example", "AWS_REGION": "us-east-1",
               "AWS_EC2_METADATA_DISABLED": "true", "AWS_CONFIG_FILE": str(tmp_path / "none"),
               "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none")}
        done = nitrometer("replay", str(recording), "1", "1", "--collector.ebs_api", env=env)
    finally:
        endpoint.close()
    assert (done.returncode, done.stderr) == (0, "")
    assert "nvme1n1 volume (gp3) at 17% of 6,000 IOPS, 2% of 262.1 MB/s" in done.stdout
    [request] = endpoint.requests
    assert request["Action"] == ["DescribeVolumes"] and request["VolumeId.1"] == [VOLUME]


def test_record_keeps_the_configured_limits_for_replay(recording, tmp_path):
    config = tmp_path / "nitrometer.yml"
    config.write_text(f"ebs.volumes:\n  {VOLUME}: {{type: gp3, iops: 3000}}\n")
    again = tmp_path / "again.rec"
    done = nitrometer("record", "--source", f"replay:{recording}", "--speed", "0", "--out",
                      str(again), "--config.file", str(config))
    assert done.returncode == 0, done.stderr
    done = nitrometer("replay", str(again), "1", "1")
    assert (done.returncode, done.stderr) == (0, "")
    assert "nvme1n1 volume (gp3) at 33% of 3,000 IOPS" in done.stdout
