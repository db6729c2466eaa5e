"""diagnose names the workload behind the exceeded seconds, from a fixture cgroupfs."""

from __future__ import annotations

import json

from nitrometer.collectors.base import FastClock
from nitrometer.commands import diagnose, view
from nitrometer.commands.devices import Reporter
from nitrometer.commands.findings import analyze
from nitrometer.commands.who import Who
from nitrometer.sampling import Engine
from tests.agent.pages import ScriptedSource, device
from tests.workload.cgroupfs import CgroupTree, write_devnums

PG = "system.slice/postgresql.service"
NGINX = "system.slice/nginx.service"


def test_diagnose_names_the_top_workload_of_the_exceeded_seconds(tmp_path):
    tree = CgroupTree(tmp_path / "cgroup")
    write_devnums(tmp_path / "sys", {"nvme1n1": "259:1"})

    def script(builder, index):
        over = 3 <= index < 17  # 14 exceeded seconds
        builder.advance(reads=1000, writes=200,
                        exceeded={("volume", "iops"): 600_000} if over else None)
        pg = 830 if over else 300
        tree.add(PG, "259:1", rios=pg, wios=20)
        tree.add(NGINX, "259:1", rios=1000 - pg, wios=180)

    clock = FastClock(0)
    source = ScriptedSource(device("nvme1n1", "vol-0123456789abcdef0", "ebs"), clock, script)
    engine = Engine([source], clock=clock)
    who = Who.open(str(tmp_path / "cgroup"), str(tmp_path / "sys"))
    windows = diagnose.collect(engine, Reporter(), 25, on_tick=who.tick)
    results = [(w, analyze(w)) for w in windows]
    text = diagnose.render_text(results, view.Style(False), who)
    assert ("Who: during the 14 exceeded seconds, 83 % of read ops came from "
            "system.slice/postgresql.service") in " ".join(text.split())  # wrapped at 80
    report = diagnose.report(results, who)
    record = report["devices"][0]["workloads"]
    assert record["exceeded_seconds"] == 14 and record["read_ops"] == 14000
    assert record["workloads"][0] == {"workload": PG, "read_share": 0.83,
                                      "write_share": 0.1, "share": round(11900 / 16800, 4)}
    from tests.cli.test_diagnose import VALIDATOR

    VALIDATOR.validate(json.loads(json.dumps(report)))


def test_no_cgroupfs_no_who(tmp_path):
    assert Who.open(str(tmp_path / "none"), "/sys") is None
    assert Who.open(str(CgroupTree(tmp_path / "v1", "cpu memory").root), "/sys") is None
