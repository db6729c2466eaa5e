"""Which instance this is: IMDSv2 first, then DMI, then config overrides; off EC2, what we know."""

from __future__ import annotations

import logging
import os
import platform
import re
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path

from nitrometer.ec2 import arch_label, split_instance_type

log = logging.getLogger(__name__)

IMDS_ENDPOINT = "http://169.254.169.254"
DMI_ROOT = "/sys/devices/virtual/dmi/id"
DEFAULT_TIMEOUT = 1.0  # seconds; IMDS answers in milliseconds on EC2, and nothing answers off it
AMAZON_VENDOR = "Amazon EC2"

_INSTANCE_ID_RE = re.compile(r"^i-[0-9a-f]{8,17}$")
_AZ_RE = re.compile(r"^([a-z]{2}(?:-[a-z]+)+-\d+)")

_warned_off_ec2 = False


@dataclass(frozen=True)
class InstanceIdentity:
    instance_id: str = ""
    instance_type: str = ""
    family: str = ""  # m7g
    size: str = ""  # large
    arch: str = ""  # x86_64 | arm64
    region: str = ""
    az: str = ""
    source: str = "none"  # imds | dmi | config | none: where the instance id and type came from

    @property
    def on_ec2(self) -> bool:
        return self.source in ("imds", "dmi")


def normalize_arch(machine: str) -> str:
    return arch_label(machine) or machine.lower()


def region_of_az(az: str) -> str:
    """us-east-1a -> us-east-1; us-west-2-lax-1a (a Local Zone) -> us-west-2."""
    match = _AZ_RE.match(az)
    return match.group(1) if match else ""


def _complete(ident: InstanceIdentity) -> InstanceIdentity:
    family, size = split_instance_type(ident.instance_type)
    return replace(
        ident,
        family=ident.family or family,
        size=ident.size or size,
        arch=normalize_arch(ident.arch or platform.machine()),
        region=ident.region or region_of_az(ident.az),
    )


def _pool(timeout: float):
    """A urllib3 pool whose every request gets our short timeout and no retries, so an
    unreachable endpoint costs `timeout`, not the library's 5 s times its retries."""
    import urllib3

    class ShortPool(urllib3.PoolManager):
        def urlopen(self, method, url, redirect=True, **kw):
            kw["timeout"] = urllib3.Timeout(connect=timeout, read=timeout)
            kw["retries"] = False
            return super().urlopen(method, url, redirect=redirect, **kw)

    return ShortPool()


def _session(timeout: float):
    """_pool for ec2-metadata 2.x: a requests session (no retries) with our timeout."""
    import requests

    class ShortSession(requests.Session):
        def request(self, method, url, **kw):
            kw["timeout"] = timeout
            return super().request(method, url, **kw)

    return ShortSession()


def from_imds(endpoint: str = IMDS_ENDPOINT, timeout: float = DEFAULT_TIMEOUT) -> InstanceIdentity:
    """The instance identity document over IMDSv2 (the library does the token PUT)."""
    from ec2_metadata import EC2Metadata

    try:
        md = EC2Metadata(pool_manager=_pool(timeout))
    except TypeError:  # ec2-metadata 2.x, the last for Python 3.9, takes a requests session
        md = EC2Metadata(session=_session(timeout))
    md.service_url = endpoint.rstrip("/") + "/latest/"
    md.dynamic_url = f"{md.service_url}dynamic/"
    md.metadata_url = f"{md.service_url}meta-data/"
    doc = md.instance_identity_document
    return InstanceIdentity(
        instance_id=doc.get("instanceId", ""),
        instance_type=doc.get("instanceType", ""),
        arch=doc.get("architecture", ""),
        region=doc.get("region", ""),
        az=doc.get("availabilityZone", ""),
        source="imds",
    )


def _read(root: Path, name: str) -> str:
    try:
        return (root / name).read_text(errors="replace").strip()
    except OSError:
        return ""


def from_dmi(root: str = DMI_ROOT) -> InstanceIdentity | None:
    """Nitro instances: vendor Amazon EC2, product name = type, asset tag = instance id."""
    base = Path(root)
    vendors = {_read(base, "sys_vendor"), _read(base, "board_vendor")}
    if AMAZON_VENDOR not in vendors:
        return None
    asset_tag = _read(base, "board_asset_tag")
    product = _read(base, "product_name")
    return InstanceIdentity(
        instance_id=asset_tag if _INSTANCE_ID_RE.match(asset_tag) else "",
        # Bare-metal and some older types report a generic product name with no dot.
        instance_type=product if "." in product else "",
        source="dmi",
    )


OVERRIDE_KEYS = ("instance_id", "instance_type", "region", "az", "arch")


def _apply_overrides(ident: InstanceIdentity, overrides: Mapping[str, str]) -> InstanceIdentity:
    unknown = set(overrides) - set(OVERRIDE_KEYS)
    if unknown:
        from nitrometer.errors import ConfigError

        raise ConfigError(f"unknown instance identity setting(s): {', '.join(sorted(unknown))} "
                          f"(known: {', '.join(OVERRIDE_KEYS)})")
    values = {k: str(v) for k, v in overrides.items() if v}
    if not values:
        return ident
    if "instance_type" in values:
        values["family"], values["size"] = split_instance_type(values["instance_type"])
    if ident.source == "none" and {"instance_id", "instance_type"} & set(values):
        values["source"] = "config"
    return replace(ident, **values)


def instance_identity(*, endpoint: str = IMDS_ENDPOINT, timeout: float = DEFAULT_TIMEOUT,
                      dmi_root: str = DMI_ROOT, overrides: Mapping[str, str] | None = None,
                      use_imds: bool = True) -> InstanceIdentity:
    """Never fails: off EC2 it logs "not on EC2" once and returns what it knows."""
    global _warned_off_ec2
    ident = None
    imds_problem = "not asked"
    # The AWS SDKs' switch: set where the metadata service must not be asked.
    disabled = os.environ.get("AWS_EC2_METADATA_DISABLED", "").lower() == "true"
    if endpoint == IMDS_ENDPOINT and disabled:
        use_imds, imds_problem = False, "AWS_EC2_METADATA_DISABLED is set"
    if use_imds:
        try:
            ident = from_imds(endpoint, timeout)
        except Exception as exc:  # any network or HTTP failure means: ask DMI instead
            from nitrometer.neterrors import describe

            imds_problem = describe(exc)
            log.debug("IMDSv2 at %s: %s", endpoint, imds_problem)
    if ident is None:
        dmi = from_dmi(dmi_root)
        if dmi is not None:
            log.info("instance metadata unavailable (%s); identity from DMI", imds_problem)
            ident = dmi
    if ident is None:
        ident = InstanceIdentity()
        if not _warned_off_ec2:
            _warned_off_ec2 = True
            log.warning("not on EC2 (no instance metadata: %s; no Amazon EC2 DMI vendor); "
                        "carrying on without an instance identity", imds_problem)
    ident = _apply_overrides(ident, overrides or {})
    return _complete(ident)


def as_labels(ident: InstanceIdentity) -> dict[str, str]:
    """The labels of ec2_instance_info."""
    return {f.name: getattr(ident, f.name) for f in fields(ident) if f.name != "source"}
