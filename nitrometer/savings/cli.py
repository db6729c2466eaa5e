"""`nitrometer savings`: Graviton savings in normalized instance hours, from a bill or the fleet."""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys

from nitrometer.errors import ConfigError, NitrometerError
from nitrometer.savings.reference import GENERATIONS


def configure(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--cur", nargs="+", metavar="PATH",
                        help="Cost and Usage Report files or directories of parts (CUR 2.0 / "
                             "Data Exports or legacy; Parquet, CSV or CSV.gz)")
    source.add_argument("--usage", metavar="CSV",
                        help="a plain usage table: instance_type, hours[, region][, cost]")
    source.add_argument("--athena-database", metavar="DB",
                        help="run the aggregation on Amazon Athena, over the CUR table in "
                             "this database (with --athena-table)")
    athena = parser.add_argument_group("Amazon Athena (--athena-database)")
    athena.add_argument("--athena-table", metavar="TABLE",
                        help="the CUR 2.0 or legacy CUR table")
    athena.add_argument("--workgroup", metavar="WG",
                        help="Athena workgroup (default primary)")
    athena.add_argument("--athena-region", metavar="REGION",
                        help="region of the table (default: the AWS configuration's)")
    athena.add_argument("--athena-output", metavar="S3URL",
                        help="query result location, s3://bucket/prefix/ (default: the "
                             "workgroup's)")
    parser.add_argument("--prometheus", metavar="URL",
                        help="the fleet's Prometheus: its counters are the usage when no "
                             "--cur/--usage is given, and the source of --measured")
    nih = parser.add_mutually_exclusive_group()
    nih.add_argument("--nih-reduction", default="10", metavar="PCT",
                     help="assumed NIH reduction on Graviton, 0-40 %%: 10%% or 10 (a bare "
                          "number is a percentage; default 10)")
    nih.add_argument("--measured", action="store_true",
                     help="measure the NIH reduction from --prometheus and use it")
    parser.add_argument("--generation", choices=GENERATIONS, default="latest",
                        help="Graviton generation to move to (default: the dashboard's latest)")
    parser.add_argument("--region", default="us-east-1",
                        help="region of usage rows that name none (default us-east-1)")
    parser.add_argument("--prices", metavar="CSV",
                        help="your rates (instance_type, price[, region]) over the packaged ones")
    parser.add_argument("--cache-dir", metavar="DIR",
                        help="price cache of `nitrometer prices update` (default "
                             "$NITROMETER_CACHE_DIR, under systemd $STATE_DIRECTORY, else "
                             "$XDG_CACHE_HOME/nitrometer)")
    parser.add_argument("--easy-only", action="store_true",
                        help="headline counts only 'Typically Easy' usage (default, like the "
                             "dashboard: also RI- and Instance-SP-covered usage)")
    parser.add_argument("--keep-local-storage", action="store_true",
                        help="for types with local NVMe, move to the cheapest Graviton type "
                             "with at least as much local storage and as many vCPUs")
    parser.add_argument("-o", "--output", choices=("table", "json", "html"), default="table")
    parser.add_argument("--out", metavar="FILE", help="write the report here (default stdout)")
    window = parser.add_argument_group("Prometheus time range (default: the last 7 days)")
    window.add_argument("--start", help="unix seconds or RFC 3339")
    window.add_argument("--end", help="unix seconds or RFC 3339 (default now)")
    window.add_argument("--range", dest="span", metavar="DURATION",
                        help="length of the range ending at --end, e.g. 7d, 12h")
    window.add_argument("--work-metric", action="append", metavar="NAME",
                        help="counter of work done (repeatable; default: the NVMe read and "
                             "write operation counters)")
    window.add_argument("--label-filter", metavar="MATCHERS",
                        help='label matchers for the work counter, e.g. service="db"')
    window.add_argument("--group-by", default="job", metavar="LABELS",
                        help="comparison groups for --measured: target labels, comma-separated "
                             "(default job); Graviton and x86 hosts are compared only within "
                             "a group")
    window.add_argument("--min-hosts", type=int, default=1,
                        help="hosts each side of a group needs for a measurement (default 1)")
    window.add_argument("--min-hours", type=float, default=1.0,
                        help="instance hours each side of a group needs for a measurement "
                             "(default 1)")
    window.add_argument("--confidence", type=float, default=90.0, metavar="PCT",
                        help="level of the measured reduction's interval (default 90)")
    parser.add_argument("--no-progress", action="store_true",
                        help="no progress bar while reading reports")


def run(args: argparse.Namespace) -> int:
    missing = [m for m in ("pandas", "pyarrow", "duckdb", "sqlglot")
               if importlib.util.find_spec(m) is None]
    if missing:
        names = ", ".join(missing[:-1]) + " and " * (len(missing) > 1) + missing[-1]
        raise NitrometerError(f"nitrometer savings needs {names}: "
                              "pip install 'nitrometer[savings]'")
    # pandas, pyarrow and DuckDB load here, only for this command.
    from nitrometer.savings import prom
    from nitrometer.savings.html import render_html
    from nitrometer.savings.model import check_nih_reduction, run_model
    from nitrometer.savings.reference import Reference
    from nitrometer.savings.report import render_table, to_document

    if not (args.cur or args.usage or args.athena_database or args.prometheus):
        raise ConfigError("give one input: --cur PATH..., --usage CSV, --athena-database DB "
                          "or --prometheus URL")
    if bool(args.athena_database) != bool(args.athena_table):
        raise ConfigError("--athena-database and --athena-table go together")
    stray = [flag for flag, value in (("--workgroup", args.workgroup),
                                      ("--athena-region", args.athena_region),
                                      ("--athena-output", args.athena_output)) if value]
    if stray and not args.athena_database:
        raise ConfigError(f"{stray[0]} goes with --athena-database and --athena-table")
    if args.athena_output and not args.athena_output.startswith("s3://"):
        raise ConfigError(f"--athena-output {args.athena_output!r} is no s3:// location")
    if args.measured and not args.prometheus:
        raise ConfigError("--measured needs --prometheus URL to measure from")
    reference = Reference(cache_dir=args.cache_dir, use_cache=True)
    if args.prices:
        reference.load_prices(args.prices)
    percent = parse_percent(args.nih_reduction)
    nih_reduction = check_nih_reduction(percent / 100)
    if 0 < percent < 1 and not args.nih_reduction.strip().endswith("%"):
        print(f"nitrometer: warning: --nih-reduction {args.nih_reduction} is read as "
              f"{percent:g} %; write {percent * 100:g}% for {percent * 100:g} %",
              file=sys.stderr)

    client = hosts = measured = None
    if args.prometheus:
        client = prom.Prometheus(args.prometheus)
        start, end = prom.time_range(args.start, args.end, args.span)
        group_by = prom.group_labels(args.group_by.split(","))
    if args.cur:
        from nitrometer.savings.cur import read_usage
        usage = read_usage(args.cur, progress=not args.no_progress and sys.stderr.isatty())
        inputs = {"kind": "cur", "paths": list(args.cur)}
    elif args.athena_database:
        from nitrometer.savings import athena

        usage = athena.read_usage_athena(athena.client(args.athena_region),
                                         args.athena_database, args.athena_table,
                                         args.workgroup or "primary", args.athena_output)
        inputs = {"kind": "athena",
                  "paths": [f"{args.athena_database}.{args.athena_table}"]}
    elif args.usage:
        from nitrometer.savings.usage import read_usage_csv
        usage = read_usage_csv(args.usage, args.region)
        inputs = {"kind": "usage-csv", "paths": [args.usage]}
    else:
        hosts = prom.fleet_hosts(client, start, end, group_by)
        usage = prom.fleet_usage(hosts)
        inputs = {"kind": "prometheus", "paths": [args.prometheus],
                  "start": prom.iso(start), "end": prom.iso(end)}
    if args.measured:
        if args.min_hosts < 1 or args.min_hours < 0:
            raise ConfigError("--min-hosts must be at least 1 and --min-hours not negative")
        if not 0 < args.confidence < 100:
            raise ConfigError("--confidence must lie between 0 and 100 %")
        measured = prom.measure_nih_reduction(
            client, start, end, work_metrics=tuple(args.work_metric or prom.DEFAULT_WORK_METRICS),
            label_filter=args.label_filter, group_by=group_by,
            min_hosts=args.min_hosts, min_hours=args.min_hours,
            confidence=args.confidence / 100, hosts=hosts)
        nih_reduction = measured["nih_reduction_pct"] / 100
    result = run_model(usage, reference, nih_reduction=nih_reduction,
                       generation=args.generation, easy_only=args.easy_only,
                       keep_local_storage=args.keep_local_storage)
    result.measured = measured
    if measured:
        result.warnings += measured["warnings"]
    if client is not None:
        hosts = hosts if hosts is not None else prom.fleet_hosts(client, start, end)
        result.storage_fit = prom.storage_fit(client, start, end, hosts, result)
    document = to_document(result, inputs)
    if args.output == "json":
        text = json.dumps(document, indent=2, allow_nan=False) + "\n"
    elif args.output == "html":
        text = render_html(document)
    else:
        text = render_table(document)
    _write(text, args.out)
    to_stderr = args.output != "table" or args.out
    for warning in result.warnings:
        # a region without prices is said on stderr whatever the output
        if to_stderr or warning.startswith("no prices for region"):
            print(f"nitrometer: warning: {warning}", file=sys.stderr)
    return 0


def parse_percent(text: str) -> float:
    """A percentage as people write it: "10%", "10 %" or a bare "10" (also a percentage)."""
    stripped = text.strip()
    number = stripped[:-1] if stripped.endswith("%") else stripped
    try:
        value = float(number)
    except ValueError:
        value = float("nan")
    if value != value or value in (float("inf"), float("-inf")):
        raise ConfigError(f"--nih-reduction {text!r} is not a percentage (write 10% or 10)")
    return value


def _write(text: str, path: str | None) -> None:
    if not path or path == "-":
        sys.stdout.write(text)
        return
    try:
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
    except OSError as exc:
        raise NitrometerError(f"cannot write {path}: {exc.strerror}") from None
