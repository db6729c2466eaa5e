"""The savings model, as the AWS Graviton Savings Dashboard computes it.

Per eligible x86 line: base savings = cost - Graviton rate x hours (the target is the mapped
family at the same size); additional savings = Graviton cost x NIH reduction; total = both.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from nitrometer.ec2 import parse_instance_type
from nitrometer.errors import ConfigError, NitrometerError
from nitrometer.savings.reference import Reference

ELIGIBLE = "eligible"
# In the order the dashboard applies them: the first that matches names the line.
REASONS = ("already Graviton", "Windows", "Spot", "RI-covered", "instance-SP-covered",
           "unknown instance type", "no Graviton equivalent", "no price")
# Not a reason a line of usage is left out but a cost with no instance type: its own row.
UNUSED_SP = "unused Savings Plan commitment"
EXCLUSION_ROWS = (ELIGIBLE, *REASONS, UNUSED_SP)
_CATEGORY_REASON = {"windows": "Windows", "spot": "Spot", "ri": "RI-covered",
                    "instance_sp": "instance-SP-covered"}
SWEEP = tuple(range(0, 45, 5))
MAX_NIH_REDUCTION = 0.40
MONEY = ["cost", "graviton_cost", "base_savings", "additional_savings", "total_savings"]


@dataclass
class Result:
    lines: pd.DataFrame  # every usage row with its reason and, if eligible, its savings
    nih_reduction: float
    generation: str
    sources: dict
    warnings: list[str] = field(default_factory=list)
    measured: dict | None = None

    @property
    def eligible(self) -> pd.DataFrame:
        return self.lines[self.lines["reason"] == ELIGIBLE]

    def _grouped(self, keys: list[str]) -> pd.DataFrame:
        eligible = self.eligible
        cols = ["hours", "nih", "projected_nih", *MONEY]
        table = eligible.groupby(keys, sort=True)[cols].sum().reset_index()
        table["savings_pct"] = _pct(table["total_savings"], table["cost"])
        return table.sort_values("total_savings", ascending=False, kind="stable")

    def by_type(self) -> pd.DataFrame:
        return self._grouped(["instance_type", "family", "target_type"])

    def by_family(self) -> pd.DataFrame:
        return self._grouped(["family", "target_family"])

    def by_month(self) -> pd.DataFrame:
        return self._grouped(["month"]).sort_values("month")

    def exclusions(self) -> pd.DataFrame:
        table = (self.lines.groupby("reason")[["lines", "hours", "cost", "unused_fees"]].sum()
                 .reindex(EXCLUSION_ROWS, fill_value=0).reset_index())
        table["lines"] = table["lines"].astype("int64")
        return table

    def totals(self) -> dict:
        eligible = self.eligible
        sums = {c: float(eligible[c].sum())
                for c in ["hours", "nih", "projected_nih", *MONEY]}
        sums["savings_pct"] = _scalar_pct(sums["total_savings"], sums["cost"])
        sums["all_lines"] = int(self.lines["lines"].sum())
        sums["all_cost"] = float(self.lines["cost"].fillna(0).sum())
        sums["all_unused_fees"] = float(self.lines["unused_fees"].sum())
        sums["eligible_lines"] = int(eligible["lines"].sum())
        return sums

    def sweep(self) -> list[dict]:
        """Total savings at 0, 5, ..., 40 % NIH reduction: the dashboard's slider as a table."""
        base = float(self.eligible["base_savings"].sum())
        graviton_cost = float(self.eligible["graviton_cost"].sum())
        cost = float(self.eligible["cost"].sum())
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


def _type_facts(ref: Reference, instance_type: str, region: str, generation: str) -> dict:
    try:
        family, size = parse_instance_type(instance_type)
    except NitrometerError:
        return {"family": instance_type, "size": "", "arch": "", "nf": np.nan,
                "known": False, "price": np.nan, "target_type": None, "target_price": np.nan}
    target = ref.graviton_target(instance_type, region, generation)
    nf = ref.normalization_factor(instance_type)
    price = ref.price(instance_type, region)
    return {
        "family": family, "size": size, "arch": ref.arch(instance_type),
        "nf": np.nan if nf is None else nf, "known": ref.known(instance_type),
        "price": np.nan if price is None else price,
        "target_type": target.instance_type if target else None,
        "target_price": np.nan if target is None or target.price is None else target.price,
    }


def _reason(row) -> str:
    if row.category == "unused_sp":
        return UNUSED_SP
    if row.arch == "arm64":
        return "already Graviton"
    if row.category in _CATEGORY_REASON:
        return _CATEGORY_REASON[row.category]
    if not row.known:
        return "unknown instance type"
    if not isinstance(row.target_type, str):
        return "no Graviton equivalent"
    if np.isnan(row.target_price) or np.isnan(row.cost):
        return "no price"
    return ELIGIBLE


def run_model(usage: pd.DataFrame, ref: Reference, *, nih_reduction: float = 0.10,
              generation: str = "latest") -> Result:
    """Classify every usage row and price the eligible ones on Graviton."""
    if not -1 < nih_reduction < 1:
        raise ConfigError(f"NIH reduction {nih_reduction * 100:g} % is not between -100 and 100 %")
    if usage.empty:
        raise NitrometerError("no EC2 instance usage found in the input")
    pairs = usage[["instance_type", "region"]].drop_duplicates()
    facts = pd.DataFrame([{"instance_type": t, "region": r, **_type_facts(ref, t, r, generation)}
                          for t, r in pairs.itertuples(index=False)])
    lines = usage.merge(facts, on=["instance_type", "region"], how="left")
    # Inputs without a bill price the hours on demand; hours without a factor use the table.
    lines["cost"] = lines["cost"].fillna(lines["hours"] * lines["price"])
    lines["nih"] = lines["nih"] + lines["hours_without_nf"] * lines["nf"].fillna(0.0)
    lines["reason"] = [_reason(row) for row in lines.itertuples(index=False)]
    eligible = lines["reason"] == ELIGIBLE
    lines["target_family"] = lines["target_type"].str.split(".").str[0]
    lines["graviton_cost"] = np.where(eligible, lines["hours"] * lines["target_price"], 0.0)
    lines["base_savings"] = np.where(eligible, lines["cost"] - lines["graviton_cost"], 0.0)
    lines["additional_savings"] = lines["graviton_cost"] * nih_reduction
    lines["total_savings"] = lines["base_savings"] + lines["additional_savings"]
    lines["projected_nih"] = np.where(eligible, lines["nih"] * (1 - nih_reduction), 0.0)
    return Result(lines, nih_reduction, generation, ref.sources(), _warnings(lines, ref))


def _warnings(lines: pd.DataFrame, ref: Reference) -> list[str]:
    warnings = []
    unknown = lines[lines["reason"] == "unknown instance type"]
    if len(unknown):
        names = ", ".join(sorted(unknown["instance_type"].unique())[:5])
        warnings.append(f"{int(unknown['lines'].sum())} lines of "
                        f"{unknown['instance_type'].nunique()} unknown instance types "
                        f"({names}) left out")
    priced = {region for region, _ in ref.overrides} | set(ref.regions)
    no_price = lines[(lines["reason"] == "no price") & ~lines["region"].isin(priced)]
    for region, group in no_price.groupby("region"):
        label = region or "(no region)"
        warnings.append(f"no prices for region {label}: {int(group['lines'].sum())} lines "
                        "counted as 'no price' (packaged regions: "
                        f"{', '.join(ref.regions)}; pass --prices CSV for others)")
    missing_nf = lines[lines["nf"].isna() & (lines["hours_without_nf"] > 0)]
    if len(missing_nf):
        warnings.append(f"no normalization factor for {missing_nf['instance_type'].nunique()} "
                        "instance types: their normalized hours count as 0")
    return warnings
