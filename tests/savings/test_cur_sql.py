"""The one aggregation query, rendered for DuckDB and for Athena (Trino)."""

from __future__ import annotations

import duckdb
import pandas as pd
import pyarrow.parquet as pq
import pytest
import sqlglot
from sqlglot import exp

from devkit.synth_cur import write_synthetic_cur
from nitrometer.savings import cur_sql
from nitrometer.savings.cur import connect, read_usage
from tests.savings.cur_tables import CUR2_COLUMNS, CUR2_PRODUCT_KEYS, LEGACY_ATHENA_COLUMNS

KEYS = cur_sql.GROUP_KEYS


def _table_reads(sql: str, table: str) -> tuple[set[str], set[str]]:
    """Columns the query reads from `table` and the product-map keys it looks up."""
    tree = sqlglot.parse_one(sql, read="trino")
    columns, keys = set(), set()
    for select in tree.find_all(exp.Select):
        source = select.args.get("from_") or select.args.get("from")
        if source is None or source.this.name != table:
            continue
        for column in select.find_all(exp.Column):
            columns.add(column.name)
        for call in select.find_all(exp.Anonymous, exp.Bracket):
            if isinstance(call, exp.Bracket) or call.name.lower() == "element_at":
                keys.update(e.name for e in call.expressions if isinstance(e, exp.Literal))
    return columns, keys


@pytest.mark.parametrize("table, documented", [("cur2", CUR2_COLUMNS),
                                               ("legacy", LEGACY_ATHENA_COLUMNS)])
def test_athena_rendering_reads_only_documented_columns(table, documented):
    columns = cur_sql.resolve(table, documented)
    sql = cur_sql.render(columns, "athena", table=f'"cur"."{table}"')
    read, keys = _table_reads(sql, table)
    assert read and read <= set(documented), read - set(documented)
    assert {"line_item_usage_type", "line_item_unblended_cost"} <= read
    if table == "cur2":
        # the region from its static column, the operating system from the map
        assert {"product", "product_region_code"} <= read and keys == {"operating_system"}
        assert "ELEMENT_AT(product, 'operating_system')" in sql  # a missing key: NULL
        assert keys <= CUR2_PRODUCT_KEYS
    else:
        assert "product_region" in read and not keys


def test_legacy_sample_columns_are_the_athena_spelling(sample_2018):
    """AWS's own Athena-format legacy CUR: every column the query reads is in the file."""
    schema = pq.ParquetFile(sample_2018[0]).schema_arrow
    types = {name: str(schema.field(name).type) for name in schema.names}
    sql = cur_sql.render(cur_sql.resolve("sample", types), "athena", table='"cur"."sample"')
    read, _ = _table_reads(sql, "sample")
    assert read <= set(schema.names)
    assert read <= set(LEGACY_ATHENA_COLUMNS) | {"product_region", "product_operating_system"}


@pytest.fixture(scope="module")
def cur2_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("sql") / "cur2.parquet"
    write_synthetic_cur(path, 30_000, seed=5, batch_lines=10_000, product_keys="aws")
    return path


def _sorted(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame[KEYS + cur_sql.SUMS].sort_values(KEYS).reset_index(drop=True)
    return frame.astype({k: object for k in KEYS})


def test_athena_rendering_gives_the_local_answer(cur2_file):
    """The Athena rendering, read back as Trino and run by DuckDB, equals the local path."""
    con = connect()
    con.execute(f"CREATE VIEW cur2 AS SELECT * FROM read_parquet('{cur2_file}')")
    types = {row[0]: row[1] for row in con.execute("DESCRIBE cur2").fetchall()}
    athena_sql = cur_sql.render(cur_sql.resolve("cur2", types), "athena", table="cur2")
    back = sqlglot.transpile(athena_sql, read="athena", write="duckdb")[0]
    remote = con.execute(back).df()
    local = read_usage([cur2_file])
    assert len(local) > 10 and set(local.category) >= {"usage", "ri", "spot", "unused_sp"}
    pd.testing.assert_frame_equal(_sorted(remote), _sorted(local), check_dtype=False,
                                  rtol=1e-9)


def test_duckdb_rendering_parses_as_duckdb():
    sql = cur_sql.render(cur_sql.resolve("cur2", CUR2_COLUMNS), "duckdb")
    assert sqlglot.parse_one(sql, read="duckdb").find(exp.Group) is not None
    assert "product['operating_system']" in sql  # DuckDB's map lookup
    with pytest.raises(duckdb.CatalogException):  # well-formed: only the relation is missing
        connect().execute(sql)
