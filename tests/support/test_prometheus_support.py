"""The Prometheus test server itself: starts, answers PromQL, reads backfilled blocks."""

import time

from tests.support.prometheus import PrometheusServer, backfill_openmetrics


def test_backfilled_series_are_queryable(tmp_path):
    now = int(time.time()) - 3600
    lines = ["# TYPE demo_total counter"]
    lines += [f"demo_total{{host=\"a\"}} {i * 10} {now + i * 60}" for i in range(10)]
    tsdb = backfill_openmetrics(tmp_path, "\n".join(lines) + "\n# EOF\n")
    with PrometheusServer(tmp_path, storage_dir=tsdb) as prom:
        result = prom.query("demo_total", at=now + 9 * 60)
        assert [r["value"][1] for r in result] == ["90"]
        increase = prom.query("increase(demo_total[10m])", at=now + 9 * 60)
        assert float(increase[0]["value"][1]) > 80
