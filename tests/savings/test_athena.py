"""`savings --athena-*` end to end, offline: a real botocore Athena client behind a Stubber.

The responses follow the Athena API Reference (GetTableMetadata, StartQueryExecution,
GetQueryExecution, GetQueryResults: the header row first, values as VarCharValue, NULL as a
Datum without one, pages chained by NextToken); the Stubber also checks each against
botocore's service model. The rows are what Athena would return: the Athena rendering of the
query, read back as Trino and run by DuckDB over the same file the local path reads.
"""

from __future__ import annotations

import datetime
import json

import botocore.session
import pytest
import sqlglot
from botocore.stub import ANY, Stubber

from devkit.synth_cur import write_synthetic_cur
from nitrometer.cli import main
from nitrometer.savings import athena, cur_sql
from nitrometer.savings.cur import connect

QUERY_ID = "a1b2c3d4-5678-90ab-cdef-EXAMPLE11111"
ATHENA_TYPES = {"VARCHAR": "string", "DOUBLE": "double", "BIGINT": "bigint",
                "TIMESTAMP": "timestamp", "MAP(VARCHAR, VARCHAR)": "map<string,string>"}
ARGS = ["savings", "--athena-database", "cur", "--athena-table", "data", "--workgroup", "wg",
        "--athena-region", "us-east-1", "-o", "json"]


@pytest.fixture(scope="module")
def bill(tmp_path_factory):
    path = tmp_path_factory.mktemp("athena") / "cur2.parquet"
    write_synthetic_cur(path, 20_000, seed=9, batch_lines=10_000, product_keys="aws")
    con = connect()
    con.execute(f"CREATE VIEW data AS SELECT * FROM read_parquet('{path}')")
    columns = {name: ATHENA_TYPES[kind] for name, kind, *_ in
               con.execute("DESCRIBE data").fetchall()}
    sql = athena.query_sql(columns, "cur", "data")
    local = sqlglot.transpile(sql.replace('"cur"."data"', "data"), read="athena",
                              write="duckdb")[0]
    cursor = con.execute(local)
    header = [d[0] for d in cursor.description]
    rows = [[None if v is None else str(v) for v in row] for row in cursor.fetchall()]
    return path, columns, sql, [header] + rows


def _client():
    session = botocore.session.get_session()
    return session.create_client("athena", region_name="us-east-1",
                                 aws_access_key_id="testing", aws_secret_access_key="testing")


def _result_page(rows, token=None) -> dict:
    page = {"ResultSet": {"Rows": [{"Data": [{} if v is None else {"VarCharValue": v}
                                             for v in row]} for row in rows],
                          "ResultSetMetadata": {"ColumnInfo": [
                              {"Name": name, "Type": "varchar"} for name in rows[0]]}},
            "UpdateCount": 0}
    if token:
        page["NextToken"] = token
    return page


def _status(state: str, reason: str | None = None) -> dict:
    status = {"State": state, "SubmissionDateTime": datetime.datetime(2026, 12, 1)}
    if reason:
        status["StateChangeReason"] = reason
    return {"QueryExecution": {"QueryExecutionId": QUERY_ID, "Status": status}}


def _metadata(stub: Stubber, columns: dict[str, str]) -> None:
    stub.add_response("get_table_metadata", {"TableMetadata": {
        "Name": "data", "TableType": "EXTERNAL_TABLE",
        "Columns": [{"Name": n, "Type": t} for n, t in columns.items()],
        "PartitionKeys": [{"Name": "billing_period", "Type": "string"}]}},
        {"CatalogName": "AwsDataCatalog", "DatabaseName": "cur", "TableName": "data"})


@pytest.fixture
def stubbed(monkeypatch):
    client = _client()
    stub = Stubber(client)
    monkeypatch.setattr(athena, "client", lambda region: client)
    monkeypatch.setattr(athena.time, "sleep", lambda seconds: None)
    with stub:
        yield stub


def test_athena_path_gives_the_local_answer(stubbed, bill, capsys):
    path, columns, sql, rows = bill
    _metadata(stubbed, columns)
    stubbed.add_response("start_query_execution", {"QueryExecutionId": QUERY_ID}, {
        "QueryString": sql, "WorkGroup": "wg",
        "QueryExecutionContext": {"Catalog": "AwsDataCatalog", "Database": "cur"}})
    stubbed.add_response("get_query_execution", _status("RUNNING"),
                         {"QueryExecutionId": QUERY_ID})
    stubbed.add_response("get_query_execution", _status("SUCCEEDED"),
                         {"QueryExecutionId": QUERY_ID})
    half = len(rows) // 2
    stubbed.add_response("get_query_results", _result_page(rows[:half], token="page-2"),
                         {"QueryExecutionId": QUERY_ID})
    stubbed.add_response("get_query_results", _result_page(rows[half:]),
                         {"QueryExecutionId": QUERY_ID, "NextToken": "page-2"})
    assert main(ARGS) == 0
    remote = json.loads(capsys.readouterr().out)
    stubbed.assert_no_pending_responses()
    assert main(["savings", "--cur", str(path), "-o", "json"]) == 0
    local = json.loads(capsys.readouterr().out)
    assert remote["inputs"] == {"kind": "athena", "paths": ["cur.data"]}
    for key in ("totals", "exclusions", "by_instance_type", "by_month"):
        assert json.dumps(remote[key], sort_keys=True) == json.dumps(local[key],
                                                                     sort_keys=True), key
    assert remote["totals"]["eligible_lines"] > 0


def test_output_location_is_passed_on(stubbed, bill, capsys):
    _, columns, sql, rows = bill
    _metadata(stubbed, columns)
    stubbed.add_response("start_query_execution", {"QueryExecutionId": QUERY_ID}, {
        "QueryString": ANY, "WorkGroup": "wg", "QueryExecutionContext": ANY,
        "ResultConfiguration": {"OutputLocation": "s3://bucket/results/"}})
    stubbed.add_response("get_query_execution", _status("FAILED", "SYNTAX_ERROR: line 1:8\n"
                                                                  "more detail"),
                         {"QueryExecutionId": QUERY_ID})
    assert main([*ARGS, "--athena-output", "s3://bucket/results/"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith(f"Athena query {QUERY_ID} failed: SYNTAX_ERROR: line 1:8")
    assert len(err.splitlines()) == 1


def test_permission_denied_is_one_line(stubbed, bill, capsys):
    _, columns, _, _ = bill
    _metadata(stubbed, columns)
    stubbed.add_client_error("start_query_execution", "AccessDeniedException",
                             "User is not authorized to perform: athena:StartQueryExecution",
                             http_status_code=400, expected_params={
                                 "QueryString": ANY, "QueryExecutionContext": ANY,
                                 "WorkGroup": "primary"})  # the default workgroup
    without_workgroup = [a for a in ARGS if a not in ("--workgroup", "wg")]
    assert main(without_workgroup) == 2
    err = capsys.readouterr().err.strip()
    assert "Athena StartQueryExecution: AccessDeniedException: User is not authorized" in err
    assert len(err.splitlines()) == 1


def test_table_that_is_not_a_cur(stubbed, capsys):
    _metadata(stubbed, {"name": "string", "age": "bigint"})
    assert main(ARGS) == 2
    err = capsys.readouterr().err
    assert "Athena table cur.data is not a Cost and Usage Report" in err


@pytest.fixture
def no_aws_config(monkeypatch, tmp_path):
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ACCESS_KEY_ID",
                 "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
                 "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
                 "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_WEB_IDENTITY_TOKEN_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # no instance-role lookup


@pytest.mark.parametrize("argv, message", [
    (["--athena-region", "us-east-1"], "no AWS credentials found for Athena"),
    ([], "no AWS region for Athena: give --athena-region or set AWS_REGION"),
])
def test_missing_region_or_credentials_is_one_line(no_aws_config, capsys, argv, message):
    code = main(["savings", "--athena-database", "cur", "--athena-table", "data", *argv])
    err = capsys.readouterr().err.strip()
    assert code == 2 and message in err and len(err.splitlines()) == 1


@pytest.mark.parametrize("argv, message", [
    (["--athena-database", "cur"], "--athena-database and --athena-table go together"),
    (["--athena-database", "cur", "--athena-table", "t", "--athena-output", "bucket/x"],
     "is no s3:// location"),
    (["--athena-database", "cur", "--athena-table", "t", "--cur", "x.parquet"],
     "not allowed with argument"),
    (["--cur", "x.parquet", "--workgroup", "wg"],
     "--workgroup goes with --athena-database and --athena-table"),
])
def test_bad_athena_arguments(capsys, argv, message):
    assert main(["savings", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_rendered_sql_is_the_one_query(bill):
    _, columns, sql, _ = bill
    assert sql == cur_sql.render(cur_sql.resolve("Athena table cur.data", columns), "athena",
                                 table='"cur"."data"')
    assert 'FROM "cur"."data"' in sql
