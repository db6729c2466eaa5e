"""What each EBS volume is provisioned for: its type, IOPS and throughput, so "% of limit" is
PromQL. From the config file (ebs.volumes), the EC2 API (DescribeVolumes with the instance's
role, --collector.ebs_api, off by default), or the simulator's own volumes."""

from __future__ import annotations

import logging
import threading

from nitrometer.ec2 import MIB, VolumeLimits

log = logging.getLogger("nitrometer.volumes")



class VolumeDirectory:
    """Volume id -> VolumeLimits. The config file wins over the API; lookups run on the
    caller's thread (device discovery's, never the sampler's) and are cached."""

    def __init__(self, configured: dict | None = None, *, client=None, region: str | None = None,
                 use_api: bool = False):
        self._known: dict[str, VolumeLimits] = dict(configured or {})
        self._asked: set[str] = set(self._known)
        self._lock = threading.Lock()
        self.use_api = use_api
        self.region = region
        self._client = client
        self._api_broken = False

    def get(self, volume_id: str) -> VolumeLimits | None:
        with self._lock:
            return self._known.get(volume_id)

    def add(self, volume_id: str, limits: VolumeLimits) -> None:
        with self._lock:
            self._known.setdefault(volume_id, limits)
            self._asked.add(volume_id)

    def lookup(self, volume_ids) -> None:
        """Ask the EC2 API once for volumes not yet known (when it is enabled and usable)."""
        wanted = sorted({v for v in volume_ids if v.startswith("vol-")} - self._asked)
        if not wanted or not self.use_api or self._api_broken:
            return
        self._asked.update(wanted)
        try:
            found = describe_volumes(self._ec2(), wanted)
        except ApiUnavailable as exc:
            self._api_broken = True
            log.warning("collector.ebs_api: %s; volume limits come from the config file "
                        "only", exc)
            return
        with self._lock:
            for volume_id, limits in found.items():
                self._known.setdefault(volume_id, limits)

    def _ec2(self):
        if self._client is None:
            try:
                import botocore.session
            except ImportError:
                raise ApiUnavailable("needs botocore (pip install 'nitrometer[ec2api]')") \
                    from None
            if not self.region:
                raise ApiUnavailable("no region known for the EC2 API")
            self._client = botocore.session.get_session().create_client(
                "ec2", region_name=self.region)
        return self._client


class ApiUnavailable(Exception):
    """The EC2 API cannot be asked (denied, no credentials, no botocore)."""


def describe_volumes(client, volume_ids: list[str]) -> dict[str, VolumeLimits]:
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        pages = client.get_paginator("describe_volumes").paginate(VolumeIds=volume_ids)
        volumes = [v for page in pages for v in page.get("Volumes", [])]
    except ClientError as exc:
        error = exc.response.get("Error", {})
        raise ApiUnavailable(f"DescribeVolumes refused: {error.get('Code', 'error')}: "
                             f"{error.get('Message', '')}".rstrip(": ")) from None
    except BotoCoreError as exc:
        raise ApiUnavailable(f"DescribeVolumes failed: {exc}") from None
    out = {}
    for volume in volumes:
        throughput = volume.get("Throughput")  # MiB/s, gp3 only
        out[volume["VolumeId"]] = VolumeLimits(
            volume.get("VolumeType", ""), volume.get("Iops"),
            throughput * MIB if throughput else None, "ec2_api")
    return out
