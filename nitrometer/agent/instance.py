"""The instance: identity, on-demand and Graviton-equivalent prices, and accrued cost counters.

Hours accrue from the agent's own uptime, so Prometheus can sum cost and normalized hours
across a fleet and compute Graviton savings live.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from nitrometer.ec2 import arch_label, split_instance_type, storage_limits

log = logging.getLogger("nitrometer.instance")

UNKNOWN_TYPE = "unknown"


@dataclass
class InstanceContext:
    instance_id: str
    instance_type: str
    family: str
    size: str
    arch: str
    region: str
    az: str
    source: str  # imds | dmi | config | simulated
    price: float | None = None
    normalization_factor: float | None = None
    graviton_type: str | None = None
    graviton_price: float | None = None
    # (kind, op) -> {"iops": ..., "throughput": ...}: the instance's storage limits.
    limits: dict | None = None
    seconds: float = 0.0  # instance time while the agent ran
    normalized_seconds: float = 0.0
    cost: float = 0.0
    graviton_cost: float = 0.0

    @property
    def info_labels(self) -> dict[str, str]:
        return {"instance_id": self.instance_id, "instance_type": self.instance_type,
                "family": self.family, "size": self.size, "arch": self.arch,
                "region": self.region, "az": self.az}

    def accrue(self, seconds: float) -> None:
        if seconds <= 0:
            return
        hours = seconds / 3600.0
        self.seconds += seconds
        if self.normalization_factor is not None:
            self.normalized_seconds += seconds * self.normalization_factor
        if self.price is not None:
            self.cost += hours * self.price
        if self.graviton_price is not None:
            self.graviton_cost += hours * self.graviton_price


def _fetch_identity(config):
    """IMDSv2, then DMI under --path.sysfs; an empty identity off EC2 (logged once there)."""
    import os

    from nitrometer.identity import instance_identity

    try:
        return instance_identity(
            dmi_root=os.path.join(config.sysfs_path, "devices/virtual/dmi/id"))
    except Exception as exc:  # identity is context, never a reason to stop polling
        log.warning("instance identity unavailable: %s", exc)
        return None


def build_instance(config, simulated_type: str | None = None) -> InstanceContext:
    """From config overrides, the real identity, or the simulated type (demo)."""
    ident = None if simulated_type else _fetch_identity(config)
    instance_type = config.instance_type or getattr(ident, "instance_type", None) \
        or simulated_type or UNKNOWN_TYPE
    # Off EC2 nothing says which region: no price rather than an invented one. A simulated
    # instance is in us-east-1 unless told otherwise.
    region = getattr(ident, "region", None) or config.region or \
        ("us-east-1" if simulated_type else "")
    family, size = split_instance_type(instance_type)
    if simulated_type and not config.instance_type:
        source = "simulated"
    elif config.instance_type:
        source = "config"
    else:
        source = getattr(ident, "source", None) or "none"
    ctx = InstanceContext(
        instance_id=getattr(ident, "instance_id", None) or ("simulated" if simulated_type else ""),
        instance_type=instance_type,
        family=getattr(ident, "family", None) or family,
        size=getattr(ident, "size", None) or size,
        arch=arch_label(getattr(ident, "arch", "")),
        region=region,
        az=getattr(ident, "az", None) or "",
        source=source,
    )
    ctx.limits = storage_limits(instance_type)
    if ctx.region:
        _price(ctx)
    return ctx


def _price(ctx: InstanceContext) -> None:
    if ctx.instance_type == UNKNOWN_TYPE:
        return  # off EC2 without --instance.type: no price, no cost counters
    from nitrometer.prices.instance import instance_pricing

    # the price cache first, then the packaged snapshot; only this type's rates are read
    pricing = instance_pricing(ctx.instance_type, ctx.region, warn=log.warning)
    log.info("prices for %s: %s", ctx.region, pricing.source)
    ctx.price = pricing.price
    ctx.normalization_factor = pricing.specs.normalization_factor
    if not ctx.arch:
        ctx.arch = arch_label(pricing.specs.arch)
    ctx.graviton_type, ctx.graviton_price = pricing.graviton_type, pricing.graviton_price
