"""Which instance this is: IMDSv2 first, then DMI, then config overrides; off EC2, what we know."""

from __future__ import annotations

import logging
import os
import platform
import re
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from urllib.parse import urlsplit  # loaded anyway (pathlib); urllib.request is not

from nitrometer.ec2 import arch_label, split_instance_type

log = logging.getLogger(__name__)

IMDS_ENDPOINT = "http://169.254.169.254"
ENDPOINT_VARIABLE = "AWS_EC2_METADATA_SERVICE_ENDPOINT"  # the AWS SDKs' override
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


TOKEN_TTL = 21600  # seconds a token lives, as the AWS SDKs ask for it
TOKEN_PATH = "/latest/api/token"
DOCUMENT_PATH = "/latest/dynamic/instance-identity/document"
MAX_BODY = 64 * 1024  # the identity document is under 1 KiB


class ImdsError(Exception):
    """The metadata service answered, but not with what IMDSv2 promises."""


def _endpoint(endpoint: str) -> tuple[str, int]:
    """http://HOST[:PORT] -> (host, port); IMDS speaks plain HTTP only."""
    try:
        parts = urlsplit(endpoint)
        if parts.scheme == "http" and parts.hostname:
            return parts.hostname, parts.port or 80
    except ValueError:
        pass
    raise ImdsError(f"{endpoint}: not a URL (expected http://HOST:PORT)")


def connect(address: tuple[str, int], timeout: float) -> socket.socket:
    """A connection to the endpoint. IMDS is a numeric address (169.254.169.254 or
    [fd00:ec2::254]): connected to straight, without the name lookup, which would load the
    IDNA codec (and unicodedata) into the agent for good; a name is looked up."""
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(family, address[0])
        except OSError:
            continue
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.settimeout(timeout)
            sock.connect(address)
        except BaseException:
            sock.close()
            raise
        return sock
    return socket.create_connection(address, timeout=timeout)


def _exchange(address: tuple[str, int], method: str, target: str, headers: list,
              deadline: float) -> tuple[int, bytes]:
    """One HTTP/1.1 request on its own connection: (status, body). h11 does the protocol;
    a plain socket keeps the agent free of the HTTP client libraries (and their ssl)."""
    import h11

    left = deadline - time.monotonic()
    if left <= 0:
        raise socket.timeout("timed out")
    conn = h11.Connection(h11.CLIENT)
    host = address[0] if ":" not in address[0] else f"[{address[0]}]"
    request = h11.Request(method=method, target=target, headers=[
        ("Host", f"{host}:{address[1]}"), ("Content-Length", "0"),
        ("Connection", "close"), *headers])
    with connect(address, left) as sock:
        sock.sendall(conn.send(request) + conn.send(h11.EndOfMessage()))
        status, body = None, bytearray()
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise socket.timeout("timed out")
                sock.settimeout(left)
                conn.receive_data(sock.recv(16384))
            elif isinstance(event, h11.Response):
                status = event.status_code
            elif isinstance(event, h11.Data):
                body += event.data
                if len(body) > MAX_BODY:
                    raise ImdsError(f"the answer to {target} is larger than {MAX_BODY} bytes")
            elif isinstance(event, (h11.EndOfMessage, h11.ConnectionClosed)):
                break
    if status is None:
        raise ImdsError("the server closed the connection without answering")
    return status, bytes(body)


def from_imds(endpoint: str = IMDS_ENDPOINT, timeout: float = DEFAULT_TIMEOUT) -> InstanceIdentity:
    """The instance identity document over IMDSv2: a session token first (PUT), then the
    document with it. Each request gets `timeout` and none is retried: off EC2, and in a
    container beyond the token's hop limit (1 by default), the token never comes."""
    import json

    address = _endpoint(endpoint)
    status, token = _exchange(address, "PUT", TOKEN_PATH,
                              [("X-aws-ec2-metadata-token-ttl-seconds", str(TOKEN_TTL))],
                              time.monotonic() + timeout)
    if status != 200 or not token:
        raise ImdsError(f"HTTP {status} for the IMDSv2 token (is IMDS turned off?)")
    status, body = _exchange(address, "GET", DOCUMENT_PATH,
                             [("X-aws-ec2-metadata-token", token.decode("ascii", "replace"))],
                             time.monotonic() + timeout)
    if status != 200:
        raise ImdsError(f"HTTP {status} for the instance identity document")
    try:
        doc = json.loads(body)
    except ValueError:
        raise ImdsError("the instance identity document is not JSON") from None
    if not isinstance(doc, dict):
        raise ImdsError("the instance identity document is not a JSON object")
    return InstanceIdentity(
        instance_id=str(doc.get("instanceId", "")),
        instance_type=str(doc.get("instanceType", "")),
        arch=str(doc.get("architecture", "")),
        region=str(doc.get("region", "")),
        az=str(doc.get("availabilityZone", "")),
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


def instance_identity(*, endpoint: str | None = None, timeout: float = DEFAULT_TIMEOUT,
                      dmi_root: str = DMI_ROOT, overrides: Mapping[str, str] | None = None,
                      use_imds: bool = True) -> InstanceIdentity:
    """Never fails: off EC2 it logs "not on EC2" once and returns what it knows."""
    global _warned_off_ec2
    ident = None
    imds_problem = "not asked"
    # The AWS SDKs' switch: set where the metadata service must not be asked.
    disabled = os.environ.get("AWS_EC2_METADATA_DISABLED", "").lower() == "true"
    if endpoint is None and disabled:
        use_imds, imds_problem = False, "AWS_EC2_METADATA_DISABLED is set"
    endpoint = endpoint or os.environ.get(ENDPOINT_VARIABLE) or IMDS_ENDPOINT
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
