"""Savings Plans rates of one region's Savings Plans price list file (JSON), as a stream.

Layout: AWS Billing User Guide, "Reading the service price list file for a Savings Plan"
(https://docs.aws.amazon.com/awsaccountbilling/latest/aboutv2/reading-service-price-list-file-for-savings-plans.html):
version, publicationDate, regionCode, products[] (sku, productFamily, attributes with
purchaseTerm and purchaseOption) and terms.savingsPlan[] (sku, leaseContractLength, rates[]
with discountedUsageType, discountedOperation, unit and discountedRate.price). Each rate is
built alone, so a plan with tens of thousands of rates is never held whole.
"""

from __future__ import annotations

import math

from nitrometer.errors import NitrometerError
from nitrometer.prices.cache import COMPUTE_SP, INSTANCE_SP
from nitrometer.prices.ec2_rows import BOX_OPERATION, BOX_USAGE

SP_FAMILIES = (COMPUTE_SP, INSTANCE_SP)
RULES = (
    ("service", "rates of other services (Fargate, Lambda)"),
    ("usage type", "Local Zone, Dedicated, Host and other non-box usage"),
    ("operation", "not a box-usage operation"),
    ("unit", "not an hourly rate"),
    ("plan", "plans of other families"),
    ("duplicate", "later rates for a rate already kept (the first is kept)"),
)
PRODUCT, RATE = "products.item", "terms.savingsPlan.item.rates.item"


class PlanReader:
    def __init__(self, url: str, prefixes: set[str]):
        self.url = url
        self.prefixes = prefixes  # the usage-type prefixes of the region's own EC2 rows
        self.plans: dict[str, tuple[str, str, str]] = {}  # sku -> family, lease, payment
        self.term_sku: dict[int, str] = {}
        self.term_lease: dict[int, str] = {}
        self.meta: dict[str, str] = {"url": url}
        self.set_aside = {rule: 0 for rule, _ in RULES}

    def rates(self, body):
        """Yields (term number, instance type, operation, USD/h) of the kept rates."""
        import ijson

        builder, top, term, products = None, "", -1, 0
        try:
            for prefix, event, value in ijson.parse(body):
                if builder is not None:
                    builder.event(event, value)
                    if event == "end_map" and prefix == top:
                        if top == PRODUCT:
                            products += 1
                            self._product(builder.value)
                        else:
                            kept = self._rate(builder.value, term)
                            if kept:
                                yield kept
                        builder = None
                elif event == "start_map" and prefix in (PRODUCT, RATE):
                    builder, top = ijson.ObjectBuilder(), prefix
                    builder.event(event, value)
                elif event == "start_map" and prefix == "terms.savingsPlan.item":
                    term += 1
                elif prefix == "terms.savingsPlan.item.sku":
                    self.term_sku[term] = str(value)
                elif prefix == "terms.savingsPlan.item.leaseContractLength.duration":
                    self.term_lease[term] = f"{value}yr"
                elif prefix in ("publicationDate", "version", "regionCode"):
                    self.meta[{"publicationDate": "publication_date"}.get(prefix, prefix)] = \
                        str(value)
        except ijson.JSONError as exc:
            detail = exc.args[0] if exc.args else ""
            if isinstance(detail, bytes):  # the C parser's message
                detail = detail.decode("utf-8", "replace")
            detail = (str(detail).splitlines() or [""])[0].strip()[:120]
            raise NitrometerError(f"{self.url}: not a Savings Plans price list file "
                                  f"({detail})") from None
        if not products:
            raise NitrometerError(f"{self.url}: not a Savings Plans price list file (no "
                                  "products[] list)")

    def _product(self, item) -> None:
        if not isinstance(item, dict) or item.get("productFamily") not in SP_FAMILIES:
            return
        attributes = item.get("attributes") or {}
        self.plans[str(item.get("sku"))] = (item["productFamily"],
                                            str(attributes.get("purchaseTerm", "")),
                                            str(attributes.get("purchaseOption", "")))

    def _rate(self, rate, term: int):
        if not isinstance(rate, dict):
            raise NitrometerError(f"{self.url}: a rate of terms.savingsPlan[{term}] is not "
                                  "an object")
        if rate.get("discountedServiceCode", "AmazonEC2") != "AmazonEC2":
            return self._aside("service")
        usage = BOX_USAGE.match(str(rate.get("discountedUsageType", "")))
        if usage is None or (self.prefixes and (usage.group(1) or "") not in self.prefixes):
            return self._aside("usage type")
        operation = str(rate.get("discountedOperation", ""))
        if not BOX_OPERATION.match(operation):
            return self._aside("operation")
        if rate.get("unit", "Hrs") != "Hrs":
            return self._aside("unit")
        text = (rate.get("discountedRate") or {}).get("price")
        try:
            price = float(text)
        except (TypeError, ValueError):
            price = math.nan
        if not math.isfinite(price) or price < 0:
            raise NitrometerError(f"{self.url}: terms.savingsPlan[{term}] rate "
                                  f"{rate.get('rateCode', '?')}: price {text!r} is not a "
                                  "non-negative number")
        return term, usage.group(2), operation, price

    def _aside(self, rule: str) -> None:
        self.set_aside[rule] += 1
        return None

    def plan_of(self, term: int) -> tuple[str, str, str] | None:
        """The family, lease and payment option of a term's plan; None for other families."""
        plan = self.plans.get(self.term_sku.get(term, ""))
        if plan is None:
            return None
        family, lease, payment = plan
        return family, lease or self.term_lease.get(term, ""), payment
