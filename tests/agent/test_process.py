"""process_* and python_info, written by the agent from /proc: against a fixture /proc tree
and against this process as psutil and resource see it."""

import platform
import resource

import psutil
from prometheus_client.parser import text_string_to_metric_families

from nitrometer.agent.process import CLOCK_TICKS, PAGE_SIZE, ProcessMetrics
from tests.agent.conftest import promtool_check

NAMES = ["process_virtual_memory_bytes", "process_resident_memory_bytes",
         "process_start_time_seconds", "process_cpu_seconds_total", "process_open_fds",
         "process_max_fds", "python_info"]


def text_of(metrics: ProcessMetrics) -> str:
    parts = []
    for fam in metrics.families():
        parts.append(fam.header(False))
        parts.extend(fam.lines)
    return "".join(parts)


def values(text: str) -> dict:
    return {s.name: s.value for f in text_string_to_metric_families(text) for s in f.samples}


def fake_proc(root, pid="4242", fds=5, limit="1024"):
    """A /proc tree as proc(5) (man7.org/linux/man-pages/man5/proc_pid_stat.5.html,
    proc_stat.5, proc_pid_limits.5) lays it out: btime in /proc/stat; in /proc/PID/stat
    utime (14), stime (15), starttime (22) in clock ticks, vsize (23) in bytes, rss (24) in
    pages; comm (2) in parentheses, and it may hold spaces and parentheses itself."""
    (root / "stat").write_text("cpu  1 2 3 4 5 6 7 0 0 0\nintr 0\nbtime 1700000000\n"
                               "processes 99\n")
    proc = root / pid
    (proc / "fd").mkdir(parents=True)
    for fd in range(fds):
        (proc / "fd" / str(fd)).write_text("")
    fields = ["S", "1", "4242", "4242", "0", "-1", "4194560", "1000", "0", "0", "0",
              "250", "50", "0", "0", "20", "0", "4", "0", "12345", "123456789", "5000",
              "18446744073709551615"] + ["0"] * 27
    (proc / "stat").write_text(f"{pid} (nitro (x) meter) " + " ".join(fields) + "\n")
    (proc / "limits").write_text(
        "Limit                     Soft Limit           Hard Limit           Units     \n"
        "Max cpu time              unlimited            unlimited            seconds   \n"
        f"Max open files            {limit:<20} 524288               files     \n")
    return str(root)


def test_values_from_a_fixture_proc(tmp_path):
    text = text_of(ProcessMetrics(fake_proc(tmp_path), pid="4242"))
    got = values(text)
    assert got["process_cpu_seconds_total"] == (250 + 50) / CLOCK_TICKS
    assert got["process_start_time_seconds"] == 12345 / CLOCK_TICKS + 1700000000
    assert got["process_virtual_memory_bytes"] == 123456789
    assert got["process_resident_memory_bytes"] == 5000 * PAGE_SIZE
    assert got["process_open_fds"] == 5
    assert got["process_max_fds"] == 1024
    assert got["python_info"] == 1
    assert [line.split()[2] for line in text.splitlines() if line.startswith("# HELP")] == NAMES
    assert "# TYPE process_cpu_seconds_total counter" in text
    assert f'version="{platform.python_version()}"' in text
    assert promtool_check(text) == ""


def test_no_limit_on_open_files_and_no_proc(tmp_path):
    got = values(text_of(ProcessMetrics(fake_proc(tmp_path, limit="unlimited"), pid="4242")))
    assert "process_max_fds" not in got and got["process_open_fds"] == 5
    # Without /proc only python_info is left, and the render goes on.
    assert list(values(text_of(ProcessMetrics(str(tmp_path / "none")))).keys()) == \
        ["python_info"]


def test_values_of_this_process():
    me = psutil.Process()
    before_cpu = sum(me.cpu_times()[:2])
    got = values(text_of(ProcessMetrics()))
    after_cpu = sum(me.cpu_times()[:2])
    memory = me.memory_info()
    tick = 1 / CLOCK_TICKS
    assert before_cpu - tick <= got["process_cpu_seconds_total"] <= after_cpu + tick
    assert abs(got["process_start_time_seconds"] - me.create_time()) < 0.05
    assert abs(got["process_resident_memory_bytes"] - memory.rss) < 4 << 20
    assert abs(got["process_virtual_memory_bytes"] - memory.vms) < 16 << 20
    assert abs(got["process_open_fds"] - me.num_fds()) <= 2
    assert got["process_max_fds"] == resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def test_exporter_body_carries_them_in_both_formats():
    from nitrometer.agent.exporter import Exporter
    from nitrometer.agent.state import AgentState

    exporter = Exporter(AgentState())
    text = exporter.body().decode()
    assert [n for n in NAMES if n in text] == NAMES
    om = exporter.body(openmetrics=True).decode()
    assert "# TYPE process_cpu_seconds counter\n" in om and om.endswith("# EOF\n")
    assert "process_cpu_seconds_total " in om


def test_this_process_read_again_as_its_first_reading_says():
    """After the first render (stat), this process is read through times(2) and statm:
    the values must agree with stat's."""
    metrics = ProcessMetrics()
    first = values(text_of(metrics))
    again = values(text_of(metrics))
    stat = values(text_of(ProcessMetrics("/proc", str(psutil.Process().pid))))
    assert again["process_start_time_seconds"] == first["process_start_time_seconds"]
    tick = 1 / CLOCK_TICKS
    assert first["process_cpu_seconds_total"] - tick <= again["process_cpu_seconds_total"] \
        <= stat["process_cpu_seconds_total"] + tick
    assert abs(again["process_resident_memory_bytes"]
               - stat["process_resident_memory_bytes"]) < 4 << 20
    assert abs(again["process_virtual_memory_bytes"]
               - stat["process_virtual_memory_bytes"]) < 16 << 20
    assert again["process_max_fds"] == stat["process_max_fds"]
