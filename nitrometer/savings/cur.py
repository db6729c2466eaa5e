"""Cost and Usage Report ingest: CUR 2.0, legacy CSV headers, Athena-style Parquet.

Reads only the columns the model needs, a record batch at a time, and reduces each batch to
one row per (month, region, instance type, category) before the next is read, so memory
stays flat however long the report is.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from nitrometer.errors import NitrometerError
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
from nitrometer.savings.usage import USAGE_COLUMNS

GROUP_KEYS = ["month", "region", "instance_type", "category", "operation", "lease",
              "payment", "offering"]
SUMS = ["hours", "nih", "hours_without_nf", "cost", "unused_fees", "lines"]
REPORT_SUFFIXES = (".parquet", ".csv", ".csv.gz", ".gz")
BATCH_ROWS = 1 << 19
# A number as CUR CSV spells it; anything else (inf, nan, text) makes the line invalid.
_NUMBER_TEXT = r"^\s*[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?\s*$"


def report_files(paths: Iterable[str | Path]) -> list[Path]:
    """Files named, and the report parts inside directories named (sorted)."""
    files: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            parts = sorted(p for p in path.rglob("*")
                           if p.is_file() and p.name.lower().endswith(REPORT_SUFFIXES))
            if not parts:
                raise NitrometerError(f"{path}: no .parquet or .csv(.gz) report files inside")
            files.extend(parts)
        elif path.is_file():
            files.append(path)
        else:
            raise NitrometerError(f"{path}: no such file or directory")
    return files


def _is_parquet(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(4) == b"PAR1"


def _resolve(path: Path, names: list[str], product_kind: str | None) -> dict[str, str]:
    """canonical -> the file's column name; product-map fields as 'product:<key>'."""
    present = set(names)
    found = {canon: next((n for n in spellings if n in present), None)
             for canon, spellings in COLUMNS.items()}
    if found["usage_type"] is None:
        raise NitrometerError(f"{path} is not a Cost and Usage Report "
                              "(no line_item_usage_type or lineItem/UsageType column)")
    missing = [COLUMNS[c][0 if found["usage_type"].islower() else 1]
               for c in REQUIRED if found[c] is None]
    if missing:
        raise NitrometerError(f"{path}: missing required column {', '.join(missing)}")
    for canon in PRODUCT_KEYS:
        if found[canon] is None and product_kind:
            found[canon] = f"product:{canon}"
    return {canon: name for canon, name in found.items() if name}


def _map_lookup(product: pa.MapArray, keys: tuple[str, ...]) -> pa.Array:
    """The first value under any of keys in each map: vectorised (pc.map_lookup is slow)."""
    offsets = product.offsets.to_numpy()
    positions = np.flatnonzero(pc.is_in(product.keys, pa.array(keys)).to_numpy(
        zero_copy_only=False))
    rows = np.searchsorted(offsets, positions, side="right") - 1
    index = np.full(len(product), -1, dtype=np.int64)
    index[rows[::-1]] = positions[::-1]  # reversed so the first match wins
    return product.items.take(pa.array(index, mask=index < 0))


def _product_field(product: pa.Array, canon: str) -> pa.Array:
    """One field of CUR 2.0's product column: a map in Parquet, a JSON object in CSV."""
    if pa.types.is_map(product.type):
        return pc.cast(_map_lookup(product, PRODUCT_KEYS[canon]), pa.string())
    result = None
    for key in PRODUCT_KEYS[canon]:
        pattern = f'"{key}"\\s*:\\s*"(?P<v>[^"]*)"'
        value = pc.struct_field(pc.extract_regex(product, pattern), [0])
        result = value if result is None else pc.coalesce(result, value)
    return result


def _encoded(array: pa.Array) -> pa.DictionaryArray:
    if not pa.types.is_dictionary(array.type):
        array = pc.dictionary_encode(pc.cast(array, pa.string()))
    return array


def _per_value(array: pa.DictionaryArray, function) -> pa.Array:
    """function applied to the few distinct values (and null), then spread to the rows."""
    values = pa.concat_arrays([pc.cast(array.dictionary, pa.string()),
                               pa.nulls(1, pa.string())])
    return function(values).take(pc.fill_null(array.indices, len(array.dictionary)))


def _or_empty(values: pa.Array) -> pa.Array:
    return pc.fill_null(values, "")


def _blank_to_null(values: pa.Array) -> pa.Array:
    return pc.if_else(pc.equal(pc.utf8_trim_whitespace(values), ""),
                      pa.scalar(None, pa.string()), values)


def _column(batch: pa.RecordBatch, found: dict[str, str], canon: str) -> pa.Array | None:
    """Numbers as float64, text as a dictionary array (CUR text repeats a lot)."""
    name = found.get(canon)
    if name is None:
        return None
    if name.startswith("product:"):
        return _encoded(_product_field(batch.column("product"), canon))
    column = batch.column(name)
    if canon in NUMERIC:
        return column
    if canon == "start" and pa.types.is_timestamp(column.type):
        return pc.dictionary_encode(pc.floor_temporal(column, unit="month"))
    return _encoded(column)


def _parse_number(column: pa.Array) -> tuple[pa.Array, pa.Array]:
    """float64 values (null when blank or not a finite number) and where the value was bad:
    text that is no number, or a number that is not finite."""
    if pa.types.is_dictionary(column.type):
        column = pc.cast(column, pa.string())
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        text = pc.utf8_trim_whitespace(column)
        blank = pc.fill_null(pc.equal(text, ""), True)
        ok = pc.fill_null(pc.match_substring_regex(text, _NUMBER_TEXT), False)
        values = pc.cast(pc.if_else(ok, text, pa.scalar(None, pa.string())), pa.float64())
        bad = pc.and_(pc.invert(blank), pc.invert(ok))
    else:
        values = pc.cast(column, pa.float64())
        bad = pa.array(np.zeros(len(column), dtype=bool))
    finite = pc.fill_null(pc.is_finite(values), True)
    bad = pc.or_(bad, pc.invert(finite))
    return pc.if_else(finite, values, pa.scalar(None, pa.float64())), bad


def _fee_types(found: dict[str, str]) -> tuple[str, ...]:
    """Fee line types this report can amortize: those whose unused-amount columns it has."""
    fees = []
    if any(c in found for c in RI_FEE_COLUMNS):
        fees.append(RI_FEE)
    if all(c in found for c in SP_FEE_COLUMNS):
        fees.append(SP_FEE)
    return tuple(fees)


def _is(line_type: pa.DictionaryArray, value: str) -> pa.Array:
    return _per_value(line_type, lambda v: pc.fill_null(pc.equal(v, value), False))


def summarize_batch(batch: pa.RecordBatch, found: dict[str, str]) -> pa.Table | None:
    """EC2 instance-hour and fee lines of one batch, summed per month, region, type, category."""
    usage_type = _column(batch, found, "usage_type")
    line_type = _column(batch, found, "line_type")
    fees = _fee_types(found)
    keep = pc.and_(_per_value(usage_type, lambda v: pc.or_(
        pc.match_substring(v, "BoxUsage"), pc.match_substring(v, "SpotUsage"))),
        _per_value(line_type, lambda v: pc.is_in(v, pa.array(USAGE_LINE_TYPES))))
    if RI_FEE in fees:  # EC2 RI fee lines: HeavyUsage:<type>
        keep = pc.or_(keep, pc.and_(_is(line_type, RI_FEE), _per_value(
            usage_type, lambda v: pc.match_substring(v, "HeavyUsage"))))
    product_code = _column(batch, found, "product_code")
    if product_code is not None:
        keep = pc.and_(keep, _per_value(product_code, lambda v: pc.fill_null(
            pc.equal(v, "AmazonEC2"), True)))
    if SP_FEE in fees:  # the commitment is not per product: kept whatever the product code
        keep = pc.or_(keep, _is(line_type, SP_FEE))
    keep = pc.fill_null(keep, False)
    if not pc.any(keep).as_py():
        return None
    batch = batch.filter(keep)
    usage_type, line_type = usage_type.filter(keep), line_type.filter(keep)
    n = len(batch)
    ri_fee, sp_fee = _is(line_type, RI_FEE), _is(line_type, SP_FEE)
    fee = pc.or_(ri_fee, sp_fee)

    def text(canon: str, function=_blank_to_null) -> pa.Array:
        column = _column(batch, found, canon)
        if column is None:
            return function(pa.nulls(n, pa.string()))
        return _per_value(column, function)

    no_bad = pa.array(np.zeros(n, dtype=bool))

    def checked(canon: str) -> tuple[pa.Array, pa.Array]:
        """Values and where they are bad (not a number, not finite, or negative)."""
        column = _column(batch, found, canon)
        if column is None:
            return pa.nulls(n, pa.float64()), no_bad
        values, bad = _parse_number(column)
        negative = pc.fill_null(pc.less(values, 0.0), False)
        return values, pc.or_(bad, negative)

    def number(canon: str) -> pa.Array:
        return checked(canon)[0]

    parsed_type = _per_value(usage_type, lambda v: pc.utf8_lower(
        pc.replace_substring_regex(v, r"^.*:", "")))
    instance_type = pc.coalesce(text("instance_type", lambda v: pc.utf8_lower(
        _blank_to_null(v))), parsed_type)
    instance_type = pc.if_else(sp_fee, "", instance_type)  # a commitment has no type
    spot = pc.or_(_per_value(usage_type, lambda v: pc.match_substring(v, "SpotUsage")),
                  text("operation", lambda v: pc.fill_null(pc.match_substring(v, ":SV"),
                                                           False)))
    windows = pc.or_(text("os", lambda v: pc.fill_null(pc.match_substring(v, "Windows"),
                                                        False)),
                     text("operation", lambda v: pc.is_in(v, pa.array(WINDOWS_OPERATIONS))))
    ri_covered = pc.or_(_is(line_type, "DiscountedUsage"), ri_fee)
    sp_covered = _per_value(line_type, lambda v: pc.equal(v, "SavingsPlanCoveredUsage"))
    instance_sp = pc.and_(sp_covered, text("sp_type", lambda v: pc.fill_null(
        pc.match_substring(v, "EC2Instance"), False)))
    compute_sp = pc.and_(sp_covered, pc.invert(instance_sp))
    # the dashboard's purchase option: Savings Plan, then reservation, then Spot
    category = pc.if_else(sp_fee, "unused_sp", pc.if_else(windows, "windows", pc.if_else(
        instance_sp, "instance_sp", pc.if_else(compute_sp, "compute_sp", pc.if_else(
            ri_covered, "ri", pc.if_else(spot, "spot", "usage"))))))
    empty = pa.scalar("", pa.string())
    lease = pc.if_else(sp_covered, text("sp_term", _or_empty), pc.if_else(
        ri_covered, text("ri_lease", _or_empty), empty))
    payment = pc.if_else(sp_covered, text("sp_payment", _or_empty), pc.if_else(
        ri_covered, text("ri_payment", _or_empty), empty))
    offering = pc.if_else(sp_covered, text("sp_type", _or_empty), pc.if_else(
        ri_covered, text("ri_class", _or_empty), empty))

    def amount(canon: str) -> pa.Array:
        return pc.fill_null(number(canon), 0.0)

    def bad(*canons: str) -> pa.Array:
        result = no_bad
        for canon in canons:
            result = pc.or_(result, checked(canon)[1])
        return result

    unblended = amount("unblended_cost")
    unused = pc.if_else(ri_fee, pc.add(amount("ri_unused_upfront"),
                                       amount("ri_unused_recurring")),
                        pc.if_else(sp_fee, pc.subtract(amount("sp_commitment"),
                                                       amount("sp_used_commitment")), 0.0))
    cost = pc.if_else(fee, unused, pc.if_else(
        sp_covered, pc.coalesce(number("sp_cost"), unblended),
        pc.if_else(ri_covered, pc.coalesce(number("ri_cost"), unblended), unblended)))
    # A line whose usage or the cost it is counted at is no finite, non-negative number is
    # counted as invalid, with no hours or cost: it cannot be priced.
    invalid = pc.if_else(fee, pc.if_else(ri_fee, bad(*RI_FEE_COLUMNS), bad(*SP_FEE_COLUMNS)),
                         pc.or_(bad("usage_amount"), pc.if_else(
                             sp_covered, bad("sp_cost"), pc.if_else(
                                 ri_covered, bad("ri_cost"), bad("unblended_cost")))))
    invalid = pc.or_(invalid, pc.and_(pc.invert(fee), pc.invert(
        pc.fill_null(pc.is_finite(cost), True))))
    category = pc.if_else(invalid, "invalid", category)
    cost = pc.if_else(invalid, 0.0, cost)
    unused = pc.if_else(invalid, 0.0, unused)
    # fee lines carry no usage: their hours are the reservation's, not instances'
    hours = pc.if_else(pc.or_(fee, invalid), 0.0, amount("usage_amount"))
    no_number = pa.scalar(None, pa.float64())
    factor = number("normalization_factor")
    factor = pc.if_else(pc.greater(factor, 0.0), factor, no_number)
    normalized = number("normalized_usage")
    normalized = pc.if_else(pc.greater(normalized, 0.0), normalized, no_number)
    nih = pc.if_else(pc.or_(fee, invalid), 0.0,
                     pc.coalesce(normalized, pc.multiply(hours, factor)))
    table = pa.table({
        "month": text("start", lambda v: pc.fill_null(pc.utf8_slice_codeunits(v, 0, 7), "")),
        "region": text("region", lambda v: pc.fill_null(_blank_to_null(v), "")),
        "instance_type": instance_type, "category": category,
        "operation": pc.if_else(fee, empty, text("operation", lambda v: pc.fill_null(
            _blank_to_null(v), "RunInstances"))),
        "lease": lease, "payment": payment, "offering": offering, "hours": hours,
        "nih": pc.fill_null(nih, 0.0),
        "hours_without_nf": pc.if_else(pc.is_null(nih), hours, 0.0),
        "cost": cost, "unused_fees": unused, "lines": pa.array(np.ones(n, dtype=np.int64)),
    })
    return _group(table)


def _group(table: pa.Table) -> pa.Table:
    grouped = table.group_by(GROUP_KEYS).aggregate([(c, "sum") for c in SUMS])
    return grouped.rename_columns([c.removesuffix("_sum") for c in grouped.column_names])


def _csv_header(path: Path) -> list[str]:
    with pa.input_stream(str(path), compression="detect") as stream:
        first = io.TextIOWrapper(stream, encoding="utf-8-sig", errors="replace").readline()
    return next(csv.reader([first]), [])


def _batches(path: Path) -> tuple[dict[str, str], Iterator[pa.RecordBatch], int | None]:
    """Column mapping, the batches holding only the needed columns, and the line count."""
    try:
        if _is_parquet(path):
            names = pq.ParquetFile(path).schema_arrow.names
            text = [c for canon, c in _resolve(path, names, None).items()
                    if canon not in NUMERIC and canon != "start"]
            parquet = pq.ParquetFile(path, read_dictionary=text)
            found = _resolve(path, names, "map" if "product" in names else None)
            columns = sorted({n if not n.startswith("product:") else "product"
                              for n in found.values()})
            return (found, parquet.iter_batches(batch_size=BATCH_ROWS, columns=columns),
                    parquet.metadata.num_rows)
        names = _csv_header(path)
        found = _resolve(path, names, "json" if "product" in names else None)
        columns = sorted({n if not n.startswith("product:") else "product"
                          for n in found.values()})
        # numbers as text too: a line that is no number is counted invalid, not fatal
        types = {name: pa.string() for name in found.values()
                 if not name.startswith("product:")}
        types.setdefault("product", pa.string())
        reader = pacsv.open_csv(
            pa.input_stream(str(path), compression="detect"),
            read_options=pacsv.ReadOptions(block_size=16 << 20),
            convert_options=pacsv.ConvertOptions(include_columns=columns, column_types=types,
                                                 strings_can_be_null=True,
                                                 # "nan" and "NULL" are bad numbers, not blanks
                                                 null_values=[""]))
        return found, iter(reader), None
    except (pa.ArrowInvalid, UnicodeDecodeError, OSError) as exc:
        raise NitrometerError(f"{path} is not a readable usage report: "
                              f"{str(exc).splitlines()[0]}") from None


def read_usage(paths: Iterable[str | Path], progress: bool = False) -> pd.DataFrame:
    """The normalised usage table (see usage.USAGE_COLUMNS) of one or more CUR files."""
    from tqdm import tqdm  # only for the bar; the model itself does not need it

    files = report_files(paths)
    opened = [(path, *_batches(path)) for path in files]
    known = [rows for *_, rows in opened]
    total = sum(known) if all(r is not None for r in known) else None
    parts: list[pa.Table] = []
    with tqdm(total=total, unit=" lines", unit_scale=True, disable=not progress,
              desc="reading usage", leave=False) as bar:
        for path, found, batches, _ in opened:
            try:
                for batch in batches:
                    summary = summarize_batch(batch, found)
                    if summary is not None:
                        parts.append(summary)
                    bar.update(batch.num_rows)
            except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
                raise NitrometerError(f"{path}: unreadable line(s): "
                                      f"{str(exc).splitlines()[0]}") from None
    if not parts:
        return pd.DataFrame({c: pd.Series(dtype=t) for c, t in USAGE_COLUMNS.items()})
    table = _group(pa.concat_tables(parts))
    frame = table.to_pandas()
    frame["source"] = "cur"
    return frame[list(USAGE_COLUMNS)]
