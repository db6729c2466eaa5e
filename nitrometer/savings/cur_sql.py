"""The one SQL aggregation of a Cost and Usage Report, rendered for DuckDB and for Athena.

The query is written once, in Trino's dialect (Athena engine v3 is Trino), and sqlglot renders
it for the engine that runs it. It reduces the bill to the usage table (usage.USAGE_COLUMNS):
one row per (month, region, instance type, category, operation, lease, payment, offering).
Only the first step, which names the report's own columns, depends on the input; every step
after it reads the canonical names of cur_columns.COLUMNS.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlglot
from sqlglot import exp

from nitrometer.savings.cur_columns import (
    COLUMNS,
    NUMERIC,
    PRODUCT_KEYS,
    REQUIRED,
    RI_FEE,
    RI_FEE_COLUMNS,
    SP_FEE,
    SP_FEE_COLUMNS,
    USAGE_LINE_TYPES,
    WINDOWS_OPERATIONS,
)

SOURCE_DIALECT = "trino"
DIALECTS = {"duckdb": "duckdb", "athena": "athena"}
RELATION = "cur_lines"  # the placeholder the engine's own source replaces
GROUP_KEYS = ["month", "region", "instance_type", "category", "operation", "lease",
              "payment", "offering"]
SUMS = ["hours", "nih", "hours_without_nf", "cost", "unused_fees", "lines"]
# A number as CUR CSV spells it; anything else (inf, nan, text) makes the line invalid.
NUMBER_TEXT = r"^\s*[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?\s*$"
BLANK_TEXT = r"^\s*$"
JSON_VALUE = r'"{key}"\s*:\s*"([^"]*)"'  # as a CUR 2.0 CSV writes the product object
LARGEST_DOUBLE = "1.7976931348623157e308"  # abs(x) <= it: finite (false for NaN everywhere)
NUMERIC_TYPES = ("double", "float", "real", "decimal", "bigint", "integer", "int", "smallint",
                 "tinyint", "hugeint", "ubigint", "uinteger")


@dataclass(frozen=True)
class Column:
    """Where a canonical column comes from in one report: its own name and kind."""
    name: str  # the report's column, or "product" for a field of the product column
    kind: str  # "number", "text", "time", "map" (product map key) or "json" (product JSON)


def column_kind(canon: str, sql_type: str) -> str:
    sql_type = sql_type.lower()
    numeric = sql_type.startswith(NUMERIC_TYPES)
    if canon in NUMERIC:
        return "number" if numeric else "text"
    if canon == "start" and sql_type.startswith(("timestamp", "date")):
        return "time"
    return "text"


def resolve(label: str, types: dict[str, str]) -> dict[str, Column]:
    """canonical name -> its Column in a report with these columns and SQL types.

    Raises ValueError naming what is wrong when the report is not a CUR."""
    found = {canon: next((n for n in spellings if n in types), None)
             for canon, spellings in COLUMNS.items()}
    if found["usage_type"] is None:
        raise ValueError(f"{label} is not a Cost and Usage Report "
                         "(no line_item_usage_type or lineItem/UsageType column)")
    legacy = not found["usage_type"].islower()
    missing = [COLUMNS[c][1 if legacy else 0] for c in REQUIRED if found[c] is None]
    if missing:
        raise ValueError(f"{label}: missing required column {', '.join(missing)}")
    columns = {canon: Column(name, column_kind(canon, types[name]))
               for canon, name in found.items() if name}
    product_type = types.get("product", "").lower()
    for canon in PRODUCT_KEYS:
        if canon not in columns and product_type:
            kind = "map" if product_type.startswith("map") else "json"
            columns[canon] = Column("product", kind)
    return columns


def _quote(name: str) -> str:
    return exp.to_identifier(name, quoted=True).sql(SOURCE_DIALECT)


def _literal(value: str) -> str:
    return exp.Literal.string(value).sql(SOURCE_DIALECT)


def _text(canon: str, column: Column | None) -> str:
    if column is None:
        return "CAST(NULL AS VARCHAR)"
    if column.kind == "map":  # element_at: NULL for a missing key, where [] fails in Trino
        keys = [f"element_at(product, {_literal(k)})" for k in PRODUCT_KEYS[canon]]
        return keys[0] if len(keys) == 1 else f"coalesce({', '.join(keys)})"
    if column.kind == "json":  # a string value of the JSON object; no JSON parse to fail
        keys = [f"nullif(regexp_extract(product, {_literal(JSON_VALUE.format(key=k))}, 1), '')"
                for k in PRODUCT_KEYS[canon]]
        return keys[0] if len(keys) == 1 else f"coalesce({', '.join(keys)})"
    return f"CAST({_quote(column.name)} AS VARCHAR)"  # a time's month: see month_key


def _number(canon: str, column: Column | None) -> tuple[str, str]:
    """(the value as DOUBLE or NULL, whether a value is given at all)"""
    if column is None:
        return "CAST(NULL AS DOUBLE)", "FALSE"
    name = _quote(column.name)
    if column.kind == "number":
        return f"CAST({name} AS DOUBLE)", f"({name} IS NOT NULL)"
    pattern = _literal(NUMBER_TEXT)
    return (f"CASE WHEN regexp_like({name}, {pattern}) THEN try_cast(trim({name}) AS DOUBLE) "
            f"END", f"NOT regexp_like(coalesce({name}, ''), {_literal(BLANK_TEXT)})")


def fee_types(columns: dict[str, Column]) -> tuple[str, ...]:
    """Fee line types this report can amortize: those whose unused-amount columns it has."""
    fees = []
    if any(c in columns for c in RI_FEE_COLUMNS):
        fees.append(RI_FEE)
    if all(c in columns for c in SP_FEE_COLUMNS):
        fees.append(SP_FEE)
    return tuple(fees)


def _in(values) -> str:
    return ", ".join(_literal(v) for v in values)


def aggregation_sql(columns: dict[str, Column]) -> str:
    """The query, in the source dialect, over RELATION with the report's columns."""
    text_canons = [c for c in COLUMNS if c not in NUMERIC]
    first = [f"{_text(c, columns.get(c))} AS {c}" for c in text_canons]
    for canon in sorted(NUMERIC):
        value, given = _number(canon, columns.get(canon))
        first += [f"{value} AS {canon}__raw", f"{given} AS {canon}__given"]
    finite = [f"CASE WHEN abs({c}__raw) <= {LARGEST_DOUBLE} THEN {c}__raw END AS {c}, "
              f"({c}__given AND ({c}__raw IS NULL OR NOT (abs({c}__raw) <= {LARGEST_DOUBLE}) "
              f"OR {c}__raw < 0)) AS {c}__bad" for c in sorted(NUMERIC)]
    fees = fee_types(columns)
    keep = (f"(coalesce(usage_type, '') LIKE '%BoxUsage%' OR coalesce(usage_type, '') LIKE "
            f"'%SpotUsage%') AND line_type IN ({_in(USAGE_LINE_TYPES)})")
    if RI_FEE in fees:  # EC2 RI fee lines: HeavyUsage:<type>
        keep = (f"({keep}) OR (line_type = {_literal(RI_FEE)} AND "
                f"coalesce(usage_type, '') LIKE '%HeavyUsage%')")
    keep = f"({keep}) AND coalesce(product_code = 'AmazonEC2', TRUE)"
    if SP_FEE in fees:  # the commitment is not per product: kept whatever the product code
        keep = f"({keep}) OR line_type = {_literal(SP_FEE)}"

    def bad(*canons: str) -> str:
        return "(" + " OR ".join(f"{c}__bad" for c in canons) + ")"

    blank = "(trim({0}) = '' OR {0} IS NULL)"
    # Lines are first summed per distinct raw value (as cheap as a bare GROUP BY); the text
    # rules then run once per group, not once per line.
    raw_keys = ", ".join(["usage_type", "line_type", "operation", "month_key", "sp_type",
                          "ri_lease", "ri_payment", "ri_class", "sp_term", "sp_payment",
                          "instance_type", "region", "os", "invalid"])
    start = columns.get("start")
    if start is not None and start.kind == "time":
        month_key = f"date_trunc('month', {_quote(start.name)})"
        month = "coalesce(substr(CAST(month_key AS VARCHAR), 1, 7), '')"
    else:
        month_key = "substr(start, 1, 7)"
        month = "coalesce(month_key, '')"
    line_flags = f"""
    line_type = {_literal(RI_FEE)} AS ri_fee,
    line_type = {_literal(SP_FEE)} AS sp_fee,
    line_type IN ({_literal(RI_FEE)}, {_literal(SP_FEE)}) AS fee,
    line_type IN ('DiscountedUsage', {_literal(RI_FEE)}) AS ri_covered,
    line_type = 'SavingsPlanCoveredUsage' AS sp_covered"""
    return f"""
WITH named AS (
  SELECT {', '.join(first)}, {month_key} AS month_key
  FROM {RELATION}
), numbers AS (
  SELECT *, {', '.join(finite)}
  FROM named
), kept AS (
  SELECT *, {line_flags},
    coalesce(usage_amount, 0E0) AS usage_hours,
    coalesce(unblended_cost, 0E0) AS unblended
  FROM numbers
  WHERE coalesce({keep}, FALSE)
), checked AS (
  SELECT *,
    CASE WHEN ri_fee THEN coalesce(ri_unused_upfront, 0E0) + coalesce(ri_unused_recurring, 0E0)
         WHEN sp_fee THEN coalesce(sp_commitment, 0E0) - coalesce(sp_used_commitment, 0E0)
         ELSE 0E0 END AS unused,
    CASE WHEN fee THEN CASE WHEN ri_fee THEN {bad(*RI_FEE_COLUMNS)}
                            ELSE {bad(*SP_FEE_COLUMNS)} END
         ELSE usage_amount__bad OR CASE WHEN sp_covered THEN sp_cost__bad
                                        WHEN ri_covered THEN ri_cost__bad
                                        ELSE unblended_cost__bad END END AS invalid
  FROM kept
), amounts AS (
  SELECT {raw_keys},
    CASE WHEN fee OR invalid THEN 0E0 ELSE usage_hours END AS hours,
    CASE WHEN fee OR invalid THEN 0E0
         ELSE coalesce(CASE WHEN normalized_usage > 0 THEN normalized_usage END,
                       usage_hours * CASE WHEN normalization_factor > 0
                                          THEN normalization_factor END) END AS nih,
    CASE WHEN invalid THEN 0E0 WHEN fee THEN unused
         WHEN sp_covered THEN coalesce(sp_cost, unblended)
         WHEN ri_covered THEN coalesce(ri_cost, unblended) ELSE unblended END AS cost,
    CASE WHEN invalid THEN 0E0 ELSE unused END AS unused_fees
  FROM checked
), raw_groups AS (
  SELECT {raw_keys},
    sum(hours) AS hours, sum(coalesce(nih, 0E0)) AS nih,
    sum(CASE WHEN nih IS NULL THEN hours ELSE 0E0 END) AS hours_without_nf,
    sum(cost) AS cost, sum(unused_fees) AS unused_fees, count(*) AS lines
  FROM amounts
  GROUP BY {raw_keys}
), flagged AS (
  SELECT *, {line_flags},
    (line_type = 'SavingsPlanCoveredUsage'
     AND coalesce(sp_type LIKE '%EC2Instance%', FALSE)) AS instance_sp,
    (coalesce(usage_type LIKE '%SpotUsage%', FALSE)
     OR coalesce(operation LIKE '%:SV%', FALSE)) AS spot,
    (coalesce(os LIKE '%Windows%', FALSE)
     OR coalesce(operation IN ({_in(WINDOWS_OPERATIONS)}), FALSE)) AS windows
  FROM raw_groups
), keyed AS (
  SELECT
    {month} AS month,
    CASE WHEN {blank.format('region')} THEN '' ELSE region END AS region,
    CASE WHEN sp_fee THEN ''
         ELSE coalesce(CASE WHEN {blank.format('instance_type')} THEN NULL
                            ELSE lower(instance_type) END,
                       lower(regexp_replace(usage_type, '^.*:', ''))) END AS instance_type,
    CASE WHEN invalid THEN 'invalid' WHEN sp_fee THEN 'unused_sp' WHEN windows THEN 'windows'
         WHEN instance_sp THEN 'instance_sp' WHEN sp_covered THEN 'compute_sp'
         WHEN ri_covered THEN 'ri' WHEN spot THEN 'spot' ELSE 'usage' END AS category,
    CASE WHEN fee THEN '' WHEN {blank.format('operation')} THEN 'RunInstances'
         ELSE operation END AS operation,
    CASE WHEN sp_covered THEN coalesce(sp_term, '') WHEN ri_covered THEN coalesce(ri_lease, '')
         ELSE '' END AS lease,
    CASE WHEN sp_covered THEN coalesce(sp_payment, '')
         WHEN ri_covered THEN coalesce(ri_payment, '') ELSE '' END AS payment,
    CASE WHEN sp_covered THEN coalesce(sp_type, '') WHEN ri_covered THEN coalesce(ri_class, '')
         ELSE '' END AS offering,
    hours, nih, hours_without_nf, cost, unused_fees, lines
  FROM flagged
)
SELECT {', '.join(GROUP_KEYS)},
  sum(hours) AS hours, sum(nih) AS nih, sum(hours_without_nf) AS hours_without_nf,
  sum(cost) AS cost, sum(unused_fees) AS unused_fees, sum(lines) AS lines
FROM keyed
GROUP BY {', '.join(GROUP_KEYS)}
"""


def render(columns: dict[str, Column], dialect: str, table: str | None = None) -> str:
    """The aggregation in `dialect` ("duckdb" or "athena"), reading `table` if given
    (database.table for Athena) instead of the RELATION placeholder."""
    tree = sqlglot.parse_one(aggregation_sql(columns), read=SOURCE_DIALECT)
    if table is not None:
        replacement = exp.to_table(table, dialect=SOURCE_DIALECT)
        for node in tree.find_all(exp.Table):
            if node.name == RELATION and not node.args.get("db"):
                node.replace(replacement.copy())
    return tree.sql(dialect=DIALECTS[dialect], pretty=True)
