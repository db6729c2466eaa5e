"""Cost and Usage Report ingest: CUR 2.0, legacy CSV headers, Athena-style Parquet.

The aggregation (cur_sql) runs in DuckDB, in process: it reads only the columns it names, a
row group at a time, and keeps one row per (month, region, instance type, category, ...), so
memory stays flat however long the report is.
"""

from __future__ import annotations

import csv
import gzip
import os
import tempfile
import threading
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from nitrometer.errors import NitrometerError
from nitrometer.savings import cur_sql
from nitrometer.savings.usage import USAGE_COLUMNS, check_input_file

REPORT_SUFFIXES = (".parquet", ".csv", ".csv.gz", ".gz")
# DuckDB's own budget: the reader streams, so this bounds the hash table and buffers only.
MEMORY_LIMIT = "256MB"
# Each reading thread holds its own row-group buffers (about 25 MiB a thread on CUR 2.0 with
# a full product map): four keep a 10M-line bill well under 500 MiB.
THREADS = 4
HEADER_BYTES = 1 << 20  # a legacy CUR header with every tag column stays far below
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
        else:
            check_input_file(path)
            files.append(path)
    for part in files:
        check_input_file(part)
    return files


def _format(path: Path) -> str:
    """"parquet", "gzip" (CSV inside) or "csv", from the file's first bytes."""
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic == b"PAR1":
        return "parquet"
    return "gzip" if magic[:2] == b"\x1f\x8b" else "csv"


def _csv_header(path: Path, compression: str) -> list[str]:
    """The header line's names; a file that is no CSV text says so here, in words."""
    opener = gzip.open if compression == "gzip" else open
    try:
        with opener(path, "rb") as f:
            first = f.readline(HEADER_BYTES)
    except (OSError, EOFError) as exc:
        raise NitrometerError(f"{path} is not a readable gzip file: {exc}") from None
    if b"\0" in first:
        raise NitrometerError(f"{path} is neither Parquet nor CSV: it holds binary data")
    try:
        text = first.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise NitrometerError(f"{path} is not a CSV report: its header line is not UTF-8 "
                              "text") from None
    return next(csv.reader([text]), [])


def _unique(names: list[str]) -> list[str]:
    """Header names made unique as SQL sees them (case-insensitively): name, name_1, ..."""
    seen: set[str] = set()
    unique = []
    for name in names:
        candidate, n = name, 0
        while candidate.lower() in seen:
            n += 1
            candidate = f"{name}_{n}"
        seen.add(candidate.lower())
        unique.append(candidate)
    return unique


def connect(spill_dir: str | None = None):
    """An in-process DuckDB with a bounded budget; times in UTC (the bill's months).

    spill_dir: where DuckDB may spill past its budget (else nowhere: never the working
    directory)."""
    import duckdb

    con = duckdb.connect(config={"memory_limit": MEMORY_LIMIT,
                                 "threads": min(THREADS, os.cpu_count() or 1),
                                 "preserve_insertion_order": False,
                                 "temp_directory": spill_dir or ""})
    con.execute("SET TimeZone = 'UTC'")
    # progress is tracked for the bar (query_progress), never printed by DuckDB itself
    con.execute("SET enable_progress_bar = true")
    con.execute("SET enable_progress_bar_print = false")
    return con


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _scan(paths: list[Path], kind: str, names: tuple[str, ...]) -> str:
    """DuckDB's reader of report files: Parquet, or CSV with the header's columns, every one
    as text (a line whose number is no number is counted invalid, not fatal)."""
    listed = "[" + ", ".join(_quote(str(p)) for p in paths) + "]"
    if kind == "parquet":
        return f"read_parquet({listed}, union_by_name = true)"
    columns = "{" + ", ".join(f"{_quote(n)}: 'VARCHAR'" for n in names) + "}"
    return (f"read_csv({listed}, header = true, auto_detect = false, columns = {columns}, "
            f"delim = ',', quote = '\"', escape = '\"', compression = "
            f"'{'gzip' if kind == 'gzip' else 'none'}')")


def _columns(con, path: Path) -> tuple[str, tuple[str, ...], dict[str, cur_sql.Column]]:
    """The file's format, its CSV header (empty for Parquet) and the columns the query reads."""
    import duckdb

    kind = _format(path)
    names: tuple[str, ...] = ()
    try:
        if kind == "parquet":
            described = con.execute(f"DESCRIBE SELECT * FROM {_scan([path], kind, ())}")
            types = {name: sql_type for name, sql_type, *_ in described.fetchall()}
        else:
            names = tuple(_unique(_csv_header(path, kind)))
            types = dict.fromkeys(names, "VARCHAR")
    except duckdb.Error as exc:
        raise NitrometerError(f"{path} is not a readable usage report: {_reason(exc)}") from None
    try:
        return kind, names, cur_sql.resolve(str(path), types)
    except ValueError as exc:
        raise NitrometerError(str(exc)) from None


def _reason(exc: BaseException) -> str:
    """DuckDB's message in one line: what is wrong and where, without its advice."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__
    first = lines[0].split("Error: ", 1)[-1]
    if first.startswith("CSV Error on Line") and len(lines) > 2:
        reason = lines[2] if lines[1].startswith("Original Line") else lines[1]
        return f"{first.replace('CSV Error on Line:', 'line')}: {reason}"
    return first


class _Progress:
    """A bar on stderr fed by DuckDB's own estimate of the running query's progress."""

    def __init__(self, con, enabled: bool, queries: int):
        self.con, self.enabled, self.queries = con, enabled, queries
        self.done = threading.Event()

    def __enter__(self):
        if self.enabled:
            from tqdm import tqdm

            self.bar = tqdm(total=100 * self.queries, unit="%", desc="reading usage",
                            leave=False, bar_format="{desc}: {percentage:3.0f}%|{bar}| "
                                                    "{elapsed}<{remaining}")
            self.base = 0
            self.thread = threading.Thread(target=self._poll, daemon=True)
            self.thread.start()
        return self

    def next_file(self, index: int) -> None:
        if self.enabled:
            self.base = 100 * index

    def _poll(self) -> None:
        while not self.done.wait(0.2):
            import duckdb

            try:
                percent = self.con.query_progress()  # -1 between queries
            except duckdb.Error:
                continue
            if percent >= 0:
                self.bar.n = min(self.base + percent, self.bar.total)
                self.bar.refresh()

    def __exit__(self, exc_type, *exc):
        if self.enabled:
            self.done.set()
            self.thread.join()
            if exc_type is None:
                self.bar.n = self.bar.total
                self.bar.refresh()
            self.bar.close()


def read_usage(paths: Iterable[str | Path], progress: bool = False) -> pd.DataFrame:
    """The normalised usage table (see usage.USAGE_COLUMNS) of one or more CUR files."""
    files = report_files(paths)
    with tempfile.TemporaryDirectory(prefix="nitrometer-duckdb-") as spill:
        con = connect(spill)
        try:
            parts = _aggregate(con, files, progress)
        finally:
            con.close()
    return combine_parts(parts)


def _aggregate(con, files: list[Path], progress: bool) -> list[pd.DataFrame]:
    import duckdb

    # files with the same columns run as one query (a directory of parts in parallel)
    groups: dict[tuple, list[Path]] = {}
    for path in files:
        kind, names, columns = _columns(con, path)
        groups.setdefault((kind, names, tuple(sorted(columns.items()))), []).append(path)
    parts = []
    with _Progress(con, progress, len(groups)) as bar:
        for index, ((kind, names, columns), group) in enumerate(groups.items()):
            bar.next_file(index)
            try:
                con.execute(f"CREATE OR REPLACE TEMP VIEW {cur_sql.RELATION} AS "
                            f"SELECT * FROM {_scan(group, kind, names)}")
                parts.append(con.execute(cur_sql.render(dict(columns), "duckdb")).df())
            except duckdb.Error as exc:
                label = group[0] if len(group) == 1 else f"{group[0].parent} ({len(group)} files)"
                raise NitrometerError(f"{label}: unreadable line(s): {_reason(exc)}") from None
    return parts


def combine_parts(parts: list[pd.DataFrame]) -> pd.DataFrame:
    """One row per key across every part, in the model's columns and types."""
    parts = [p for p in parts if len(p)]
    if not parts:
        return pd.DataFrame({c: pd.Series(dtype=t) for c, t in USAGE_COLUMNS.items()})
    frame = pd.concat(parts, ignore_index=True)
    frame = frame.groupby(cur_sql.GROUP_KEYS, as_index=False, sort=False)[cur_sql.SUMS].sum()
    frame["source"] = "cur"
    return frame[list(USAGE_COLUMNS)].astype(USAGE_COLUMNS)
