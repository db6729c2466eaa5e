"""diagnose names the workload behind the exceeded seconds, from a fixture cgroupfs."""

from __future__ import annotations

import json

import pytest

from devkit.cgroupfs import CgroupTree, write_devnums
from devkit.pages import ScriptedSource, device
from nitrometer.collectors.base import FastClock
from nitrometer.commands import diagnose, view
from nitrometer.commands.devices import Reporter
from nitrometer.commands.findings import analyze
from nitrometer.commands.who import Who
from nitrometer.sampling import Engine

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


def test_diagnose_on_a_simulation_names_its_simulated_workloads(capsys):
    from nitrometer.cli import main
    from nitrometer.sim.cgroups import shares_for

    code = main(["diagnose", "--speed", "0", "--duration", "20s", "--json", "--source",
                 "simulate:i3en.xlarge:over-limit:gp3"])
    report = json.loads(capsys.readouterr().out)
    assert code == 1
    from tests.cli.test_diagnose import VALIDATOR

    VALIDATOR.validate(report)
    for index, entry in enumerate(report["devices"]):
        record = entry["workloads"]
        assert record["exceeded_seconds"] >= 10
        shares = {path.split("/")[-1]: (read, write) for path, read, write in shares_for(index)}
        for w in record["workloads"]:
            if w["workload"].startswith("pod/"):
                continue  # labelled by pod UID and container id: checked by name below
            read, write = shares[w["workload"].split("/")[-1]]
            assert w["read_share"] == pytest.approx(read, abs=2e-3)
            assert w["write_share"] == pytest.approx(write, abs=2e-3)
    code = main(["diagnose", "--speed", "0", "--duration", "20s", "--source",
                 "simulate:i3en.xlarge:over-limit:gp3"])
    text = " ".join(capsys.readouterr().out.split())
    assert "Who: during the 20 exceeded seconds, 45 % of write ops came from " \
           "system.slice/nginx.service" in text
