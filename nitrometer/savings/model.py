"""The savings model, as the AWS Graviton Savings Dashboard computes it.

Per priced x86 line: base savings = cost - Graviton rate x hours, where the Graviton rate is
the mapped family's at the same size, for the same operation (RHEL stays RHEL) and bought
the same way (on demand, Compute or EC2 Instance Savings Plan, or RI of the same term and
payment option); additional savings = Graviton cost x NIH reduction; total = both.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from nitrometer.ec2 import parse_instance_type
from nitrometer.errors import ConfigError, NitrometerError
from nitrometer.savings.reference import NO_GRAVITON_LICENSE, UPDATE_COMMAND, Reference

ELIGIBLE = "eligible"
INVALID = "invalid lines"
# A priced move whose Graviton rate costs more than the line does now: not a recommendation.
STAY = "stay: Graviton costs more"
# In the order the dashboard applies them (ours in between): the first that matches names
# the line. RI-covered comes before Spot, "no Graviton equivalent" before instance-SP.
REASONS = (INVALID, "already Graviton", "Windows", "RI-covered", "Spot",
           "unknown instance type", "no Graviton equivalent", "no price",
           "instance-SP-covered", STAY)
# Not a reason a line of usage is left out but a cost with no instance type: its own row.
UNUSED_SP = "unused Savings Plan commitment"
EXCLUSION_ROWS = (ELIGIBLE, *REASONS, UNUSED_SP)
_CATEGORY_REASON = {"windows": "Windows", "spot": "Spot", "ri": "RI-covered"}
# The dashboard's "Savings Implementation Effort".
EASY, PLANNING, EXCLUDED, GRAVITON = ("Typically Easy", "Requires Additional Planning",
                                      "Excluded", "Already Graviton")
EFFORTS = (EASY, PLANNING, EXCLUDED, GRAVITON)
# Lines the dashboard prices: eligible, and the covered usage it plans for.
PRICED_REASONS = (ELIGIBLE, "RI-covered", "instance-SP-covered")
SWEEP = tuple(range(0, 45, 5))
MAX_NIH_REDUCTION = 0.40
MONEY = ["cost", "graviton_cost", "base_savings", "additional_savings", "total_savings"]
SUMMED = ["hours", "nih", "projected_nih", *MONEY]
_MONTH = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")
# The usage operation of Spot lines (RunInstances:SV001, ...): no price list row has it.
_SPOT_OPERATION = "RunInstances:SV"


@dataclass
class Result:
    lines: pd.DataFrame  # every usage row with its reason, effort and, if priced, savings
    nih_reduction: float
    generation: str
    sources: dict
    warnings: list[str] = field(default_factory=list)
    measured: dict | None = None
    efforts: tuple[str, ...] = (EASY, PLANNING)
    keep_local_storage: bool = False
    storage_fit: list[dict] | None = None

    @property
    def eligible(self) -> pd.DataFrame:
        return self.lines[self.lines["reason"] == ELIGIBLE]

    @property
    def headline(self) -> pd.DataFrame:
        """The lines the totals count: priced, of the chosen efforts (by default, like the
        dashboard, Typically Easy and the RI- and Instance-SP-covered usage)."""
        lines = self.lines
        return lines[lines["priced"] & lines["effort"].isin(self.efforts)]

    def _grouped(self, keys: list[str], lines: pd.DataFrame | None = None) -> pd.DataFrame:
        lines = self.headline if lines is None else lines
        table = lines.groupby(keys, sort=True, dropna=False)[SUMMED].sum().reset_index()
        table["savings_pct"] = _pct(table["total_savings"], table["cost"])
        return table.sort_values("total_savings", ascending=False, kind="stable")

    def by_type(self) -> pd.DataFrame:
        return self._grouped(["instance_type", "family", "target_type", "local_storage_gb",
                              "target_local_storage_gb"])

    def by_family(self) -> pd.DataFrame:
        return self._grouped(["family", "target_family"])

    def by_month(self) -> pd.DataFrame:
        return self._grouped(["month"]).sort_values("month")

    def by_effort(self) -> pd.DataFrame:
        """Every line's cost and hours per effort and reason, the savings of its priced lines,
        and whether the headline counts them."""
        lines = self.lines.assign(
            in_headline=self.lines["priced"] & self.lines["effort"].isin(self.efforts))
        table = (lines.groupby(["effort", "reason"])
                 .agg(**{c: (c, "sum") for c in ["lines", *SUMMED]},
                      in_headline=("in_headline", "any")).reset_index())
        order = {e: i for i, e in enumerate(EFFORTS)}
        table["order"] = table["effort"].map(order)
        return table.sort_values(["order", "reason"]).drop(columns="order")

    def exclusions(self) -> pd.DataFrame:
        table = (self.lines.groupby("reason")[["lines", "hours", "cost", "unused_fees"]].sum()
                 .reindex(EXCLUSION_ROWS, fill_value=0).reset_index())
        table["lines"] = table["lines"].astype("int64")
        return table

    def _sums(self, lines: pd.DataFrame) -> dict:
        sums = {c: float(lines[c].sum()) for c in SUMMED}
        sums["savings_pct"] = _scalar_pct(sums["total_savings"], sums["cost"])
        return sums

    def totals(self) -> dict:
        headline = self.headline
        sums = self._sums(headline)
        sums["all_lines"] = int(self.lines["lines"].sum())
        sums["all_cost"] = float(self.lines["cost"].fillna(0).sum())
        sums["all_unused_fees"] = float(self.lines["unused_fees"].sum())
        sums["eligible_lines"] = int(headline["lines"].sum())
        # usage the model could not price keeps the cost the input states, and says why
        unpriced = self.lines[self.lines["reason"] == "no price"]
        sums["no_price_cost"] = float(unpriced["cost"].fillna(0).sum())
        sums["no_price_regions"] = sorted({r for r in unpriced["region"] if r})
        return sums

    def latest_month(self) -> dict | None:
        """The dashboard's headline: the latest month of usage in the report."""
        headline = self.headline
        months = sorted(m for m in headline["month"].unique() if m)
        if not months:
            return None
        return {"month": months[-1], **self._sums(headline[headline["month"] == months[-1]])}

    def sweep(self) -> list[dict]:
        """Total savings at 0, 5, ..., 40 % NIH reduction: the dashboard's slider as a table."""
        headline = self.headline
        base = float(headline["base_savings"].sum())
        graviton_cost = float(headline["graviton_cost"].sum())
        cost = float(headline["cost"].sum())
        rows = []
        for pct in SWEEP:
            additional = graviton_cost * pct / 100
            rows.append({"nih_reduction_pct": pct, "base_savings": base,
                         "additional_savings": additional, "total_savings": base + additional,
                         "savings_pct": _scalar_pct(base + additional, cost)})
        return rows


def _pct(numerator: pd.Series, denominator: pd.Series) -> pd.Series:
    return (100 * numerator / denominator.where(denominator != 0)).fillna(0.0)


def _scalar_pct(numerator: float, denominator: float) -> float:
    return 100 * numerator / denominator if denominator else 0.0


def check_nih_reduction(value: float) -> float:
    """A fraction in [0, 0.40], like the dashboard's slider."""
    if not 0 <= value <= MAX_NIH_REDUCTION:
        raise ConfigError(f"NIH reduction {value * 100:g} % is outside 0-40 %")
    return value


def _none_to_nan(value):
    return np.nan if value is None else value


def _family_known(ref: Reference, instance_type: str) -> bool:
    family = instance_type.split(".")[0]
    return any(name.startswith(family + ".") for name in ref.specs)


def _type_facts(ref: Reference, instance_type: str, region: str, generation: str,
                keep_local_storage: bool) -> dict:
    try:
        family, size = parse_instance_type(instance_type)
    except NitrometerError:
        return {"family": instance_type, "size": "", "arch": "", "nf": np.nan,
                "known": False, "mapped": False, "target_type": None, "mapped_type": None,
                "target_nf": np.nan,
                "local_storage_gb": np.nan, "target_local_storage_gb": np.nan}
    target = ref.graviton_target(instance_type, region, generation)
    target_type = target.instance_type if target else None
    named = ref.graviton_type(instance_type, generation)
    if target_type is None and named and not _family_known(ref, named) and \
            not ref.region_source(region).get("cached"):
        # a family the packaged tables do not carry (i8ge): its prices are missing, which
        # says nothing about whether the size exists
        target_type = named
    mapped_type = target_type
    storage = ref.local_storage(instance_type)
    # keeping the local disk may take another family or size (i3en.3xlarge has no i4g of
    # its size); a family the dashboard maps to nothing (d3, HDD) stays without a target
    if keep_local_storage and storage and ref.graviton_type(instance_type, generation) and \
            (target_type is None or (ref.local_storage(target_type) or 0) < storage):
        target_type = ref.storage_keeping_target(instance_type, region) or target_type
    nf = ref.normalization_factor(instance_type)
    return {
        "family": family, "size": size, "arch": ref.arch(instance_type),
        "nf": _none_to_nan(nf), "known": ref.known(instance_type, region),
        # the dashboard's graviton_instance_exists keys off the default (latest) family
        "mapped": ref.graviton_type(instance_type, "latest") is not None,
        "target_type": target_type, "mapped_type": mapped_type,
        "target_nf": _none_to_nan(ref.normalization_factor(target_type)
                                  if target_type else None),
        "local_storage_gb": _none_to_nan(storage),
        "target_local_storage_gb": _none_to_nan(ref.local_storage(target_type)
                                                if target_type else None),
    }


def _reason(row) -> str:
    if row.category == "unused_sp":
        return UNUSED_SP
    if row.category == "invalid":
        return INVALID
    if row.arch == "arm64":
        return "already Graviton"
    if row.category in _CATEGORY_REASON:
        return _CATEGORY_REASON[row.category]
    if not row.known:
        return "unknown instance type"
    if not isinstance(row.target_type, str) or row.operation in NO_GRAVITON_LICENSE:
        return "no Graviton equivalent"
    if np.isnan(row.target_rate) or np.isnan(row.cost):
        # a region whose price list has the target, but not for this operation or purchase
        # option: the dashboard's "no equivalent"; else we lack the prices
        return "no Graviton equivalent" if row.target_listed else "no price"
    if row.category == "instance_sp":
        return "instance-SP-covered"
    return ELIGIBLE


def _effort(row) -> str:
    """The dashboard's "Savings Implementation Effort" (graviton_savings_dashboard-definition
    .yaml): Excluded when graviton_instance_exists is '*Unavailable' (the family maps to no
    Graviton family, or the price list has no row of the source type for the line's
    operation, as for Spot's RunInstances:SV... operations) or the OS is Windows; Planning
    for RI-, Spot- and Instance-SP-covered usage; else Typically Easy, also when the mapped
    size or operation has no Graviton rate ("No equivalent graviton instance")."""
    if row.reason == "already Graviton":
        return GRAVITON
    if row.reason in (INVALID, UNUSED_SP, "Windows", "unknown instance type") or \
            not row.available:
        return EXCLUDED
    if row.reason in ("RI-covered", "Spot", "instance-SP-covered"):
        return PLANNING
    return EASY


def _listed(lines: pd.DataFrame, ref: Reference) -> pd.Series:
    """The source type has a price list row for the line's operation. A region without a
    cached price list can only say so for on-demand Linux: other operations are presumed
    listed, except Spot's, which no price list row has."""
    cached = lines["region"].map(lambda r: bool(ref.region_source(r).get("cached")))
    spot_operation = lines["operation"].str.startswith(_SPOT_OPERATION)
    return lines["price"].notna() | (~cached & ~spot_operation)


def _invalid_months(usage: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """A usage date that is no date cannot name a month: its line counts as invalid (with
    its hours and cost), and cannot take the latest-month headline. Returns the bad dates."""
    months = usage["month"].fillna("").astype(str)
    bad = (months != "") & ~months.map(lambda m: bool(_MONTH.match(m)))
    if not bad.any():
        return usage, []
    usage = usage.copy()
    usage.loc[bad, "category"] = "invalid"
    usage.loc[bad, "month"] = ""
    return usage, sorted(set(months[bad]))


def run_model(usage: pd.DataFrame, ref: Reference, *, nih_reduction: float = 0.10,
              generation: str = "latest", easy_only: bool = False,
              keep_local_storage: bool = False) -> Result:
    """Classify every usage row and price the priced ones on Graviton."""
    if not -1 < nih_reduction < 1:
        raise ConfigError(f"NIH reduction {nih_reduction * 100:g} % is not between -100 and 100 %")
    if usage.empty:
        raise NitrometerError("no EC2 instance usage found in the input")
    usage, bad_months = _invalid_months(usage)
    pairs = usage[["instance_type", "region"]].drop_duplicates()
    facts = pd.DataFrame([{"instance_type": t, "region": r,
                           **_type_facts(ref, t, r, generation, keep_local_storage)}
                          for t, r in pairs.itertuples(index=False)])
    lines = usage.merge(facts, on=["instance_type", "region"], how="left")
    keys = ["instance_type", "region", "target_type", "operation", "category", "lease",
            "payment", "offering"]
    rates = {}
    for row in lines[keys].drop_duplicates().itertuples(index=False):
        target = row.target_type if isinstance(row.target_type, str) else None
        rates[tuple(row)] = (
            _none_to_nan(ref.rate(row.instance_type, row.region, row.operation)),
            _none_to_nan(target and ref.purchase_rate(target, row.region, row.operation,
                                                      row.category, row.lease, row.payment,
                                                      row.offering)),
            bool(target) and ref.exists_in(target, row.region))
    looked_up = [rates[tuple(row)] for row in lines[keys].itertuples(index=False)]
    lines["price"] = [r[0] for r in looked_up]
    lines["target_rate"] = [r[1] for r in looked_up]
    lines["target_listed"] = [r[2] for r in looked_up]
    # Inputs without a bill price the hours on demand; hours without a factor use the table.
    lines["cost"] = lines["cost"].fillna(lines["hours"] * lines["price"])
    lines["nih"] = lines["nih"] + lines["hours_without_nf"] * lines["nf"].fillna(0.0)
    lines["reason"] = [_reason(row) for row in lines.itertuples(index=False)]
    priceable = lines["reason"].isin(PRICED_REASONS) & lines["target_rate"].notna() \
        & lines["cost"].notna()
    # a move that costs more at the same hours is no saving, whatever the NIH reduction
    costs_more = priceable & (lines["hours"] * lines["target_rate"] > lines["cost"] + 1e-9)
    lines.loc[costs_more, "reason"] = STAY
    lines["available"] = lines["mapped"].astype(bool) & _listed(lines, ref)
    lines["effort"] = [_effort(row) for row in lines.itertuples(index=False)]
    priced = priceable & ~costs_more
    lines["priced"] = priced
    lines["target_family"] = lines["target_type"].str.split(".").str[0]
    lines["graviton_cost"] = np.where(priced, lines["hours"] * lines["target_rate"], 0.0)
    lines["base_savings"] = np.where(priced, lines["cost"] - lines["graviton_cost"], 0.0)
    lines["additional_savings"] = lines["graviton_cost"] * nih_reduction
    lines["total_savings"] = lines["base_savings"] + lines["additional_savings"]
    # the normalized hours of the chosen target: a larger size has more of them
    resized = lines["target_type"].ne(lines["mapped_type"]) & lines["target_nf"].notna()
    target_nih = np.where(resized, lines["hours"] * lines["target_nf"], lines["nih"])
    lines["projected_nih"] = np.where(priced, target_nih * (1 - nih_reduction), 0.0)
    efforts = (EASY,) if easy_only else (EASY, PLANNING)
    warnings = _warnings(lines, ref)
    if bad_months:
        warnings.insert(0, f"usage dates that are no date ({_names(bad_months, 3)}): "
                           "their lines counted as invalid lines")
    result = Result(lines, nih_reduction, generation, ref.sources(), warnings,
                    efforts=efforts, keep_local_storage=keep_local_storage)
    return result


def _names(types, limit: int = 8) -> str:
    types = sorted(set(types))
    more = f", ... ({len(types)} in all)" if len(types) > limit else ""
    return ", ".join(types[:limit]) + more


def region_warnings(lines: pd.DataFrame, ref: Reference) -> list[str]:
    """Regions whose usage had no prices: said on stderr whatever the output format."""
    warnings = []
    unpriced = lines[(lines["reason"] == "no price")
                     & ~lines["region"].map(lambda r: bool(ref.region_source(r)["source"]))]
    for region, group in unpriced.groupby("region"):
        label = region or "(no region)"
        fix = (f"run {UPDATE_COMMAND.format(region=region)}" if region
               else "give the region (--region or a region column)")
        warnings.append(f"no prices for region {label}: {int(group['lines'].sum())} lines of "
                        f"{_names(group['instance_type'])} counted as 'no price'; {fix}")
    return warnings


def _warnings(lines: pd.DataFrame, ref: Reference) -> list[str]:
    warnings = []
    invalid = lines[lines["reason"] == INVALID]
    if len(invalid):
        warnings.append(f"{int(invalid['lines'].sum())} invalid lines (usage or cost negative, "
                        "not finite, not a number, or no date) of "
                        f"{_names(invalid['instance_type'])} left out")
    unknown = lines[lines["reason"] == "unknown instance type"]
    if len(unknown):
        warnings.append(f"{int(unknown['lines'].sum())} lines of "
                        f"{unknown['instance_type'].nunique()} unknown instance types "
                        f"({_names(unknown['instance_type'])}) left out")
    warnings += region_warnings(lines, ref)
    no_rate = lines[(lines["reason"] == "no price")
                    & lines["region"].map(lambda r: bool(ref.region_source(r)["source"]))]
    if len(no_rate):
        pairs = {f"{t} ({o}{', ' + c if c not in ('usage', 'windows') else ''})"
                 for t, o, c in zip(no_rate["target_type"], no_rate["operation"],
                                    no_rate["category"])}
        warnings.append(f"{int(no_rate['lines'].sum())} lines have no Graviton rate for their "
                        f"operation or purchase option: {_names(pairs)}")
    missing_nf = lines[lines["nf"].isna() & (lines["hours_without_nf"] > 0)]
    if len(missing_nf):
        warnings.append(f"no normalization factor for {_names(missing_nf['instance_type'])}: "
                        "their normalized hours count as 0")
    stay = lines[lines["reason"] == STAY]
    for (source, target), group in stay.groupby(["instance_type", "target_type"]):
        more = float((group["hours"] * group["target_rate"] - group["cost"]).sum())
        warnings.append(f"{source} stays: {target} would cost ${more:,.2f} more for the same "
                        "hours")
    shrunk = lines[lines["priced"] & (lines["target_local_storage_gb"].fillna(0)
                                      < lines["local_storage_gb"].fillna(0))]
    for (source, target), group in shrunk.groupby(["instance_type", "target_type"]):
        row = group.iloc[0]
        warnings.append(f"{source} -> {target}: {row['target_local_storage_gb']:g} GB of local "
                        f"NVMe against {row['local_storage_gb']:g} GB "
                        "(--keep-local-storage picks a target that keeps it)")
    return warnings
