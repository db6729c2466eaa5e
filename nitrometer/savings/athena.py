"""The CUR aggregation on Amazon Athena, for a bill that outgrows one machine.

The same query as the local path (cur_sql), rendered in Athena's dialect, over the table the
CUR already lives in. The table's columns come from Athena's GetTableMetadata; the query runs
through StartQueryExecution, GetQueryExecution and GetQueryResults (Athena API Reference).
"""

from __future__ import annotations

import time
from typing import Callable

import pandas as pd

from nitrometer.errors import NitrometerError
from nitrometer.savings import cur_sql
from nitrometer.savings.cur import combine_parts

CATALOG = "AwsDataCatalog"
DONE = ("SUCCEEDED", "FAILED", "CANCELLED")


def client(region: str | None):
    """An Athena client from the standard AWS configuration (environment, profile, role)."""
    try:
        import botocore.session
    except ImportError:
        raise NitrometerError("savings on Athena needs botocore: "
                              "pip install 'nitrometer[savings,ec2api]'") from None
    session = botocore.session.get_session()
    region = region or session.get_config_variable("region")
    if not region:
        raise NitrometerError("no AWS region for Athena: give --athena-region or set "
                              "AWS_REGION")
    if session.get_credentials() is None:
        raise NitrometerError("no AWS credentials found for Athena (environment, "
                              "~/.aws/credentials, or an instance role)")
    return session.create_client("athena", region_name=region)


def _call(what: str, function: Callable, **params) -> dict:
    """One API call; any failure is one line naming the call and AWS's reason."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return function(**params)
    except ClientError as exc:
        error = exc.response.get("Error", {})
        raise NitrometerError(f"Athena {what}: {error.get('Code', 'error')}: "
                              f"{error.get('Message', '').strip()}") from None
    except BotoCoreError as exc:
        raise NitrometerError(f"Athena {what}: {exc}") from None


def table_columns(athena, database: str, table: str) -> dict[str, str]:
    """column name -> Athena type (partition keys included)."""
    meta = _call("GetTableMetadata", athena.get_table_metadata, CatalogName=CATALOG,
                 DatabaseName=database, TableName=table)["TableMetadata"]
    return {c["Name"]: c.get("Type", "string")
            for c in meta.get("Columns", []) + meta.get("PartitionKeys", [])}


def query_sql(columns: dict[str, str], database: str, table: str) -> str:
    try:
        resolved = cur_sql.resolve(f"Athena table {database}.{table}", columns)
    except ValueError as exc:
        raise NitrometerError(str(exc)) from None
    name = f'"{database}"."{table}"'
    return cur_sql.render(resolved, "athena", table=name)


def run_query(athena, sql: str, database: str, workgroup: str, output: str | None,
              sleep: Callable[[float], None] | None = None) -> list[list[str | None]]:
    """The rows of one query (the header row first), waiting for it to finish."""
    params = {"QueryString": sql, "WorkGroup": workgroup,
              "QueryExecutionContext": {"Catalog": CATALOG, "Database": database}}
    if output:
        params["ResultConfiguration"] = {"OutputLocation": output}
    query_id = _call("StartQueryExecution", athena.start_query_execution,
                     **params)["QueryExecutionId"]
    wait = 0.25
    while True:
        status = _call("GetQueryExecution", athena.get_query_execution,
                       QueryExecutionId=query_id)["QueryExecution"]["Status"]
        if status["State"] in DONE:
            break
        (sleep or time.sleep)(wait)
        wait = min(wait * 2, 5.0)
    if status["State"] != "SUCCEEDED":
        reason = (status.get("StateChangeReason") or "no reason given").splitlines()[0]
        raise NitrometerError(f"Athena query {query_id} {status['State'].lower()}: {reason}")
    rows: list[list[str | None]] = []
    token = None
    while True:
        page = _call("GetQueryResults", athena.get_query_results,
                     QueryExecutionId=query_id,
                     **({"NextToken": token} if token else {}))
        rows += [[cell.get("VarCharValue") for cell in row["Data"]]
                 for row in page["ResultSet"]["Rows"]]
        token = page.get("NextToken")
        if not token:
            return rows


def read_usage_athena(athena, database: str, table: str, workgroup: str,
                      output: str | None = None,
                      sleep: Callable[[float], None] | None = None) -> pd.DataFrame:
    """The usage table of a CUR table in Athena: the aggregation runs there."""
    sql = query_sql(table_columns(athena, database, table), database, table)
    rows = run_query(athena, sql, database, workgroup, output, sleep)
    header, body = rows[0], rows[1:]
    expected = cur_sql.GROUP_KEYS + cur_sql.SUMS
    if header != expected:
        raise NitrometerError(f"Athena returned columns {header}, not {expected}")
    frame = pd.DataFrame(body, columns=header)
    for key in cur_sql.GROUP_KEYS:
        frame[key] = frame[key].fillna("")
    for total in cur_sql.SUMS:
        frame[total] = pd.to_numeric(frame[total]).fillna(0)
    return combine_parts([frame])
