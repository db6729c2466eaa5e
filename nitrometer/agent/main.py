"""`nitrometer run`: the agent. Polls every device each interval and serves /metrics."""

from __future__ import annotations

import argparse
import logging
import os
import select
import signal
import socket
import sys
import threading
import time

from nitrometer.agent.config import DEMO_SOURCE, AgentConfig, build_config, configure_parser
from nitrometer.collectors.base import Clock, SourceSpec, parse_source
from nitrometer.errors import NitrometerError
from nitrometer.logs import setup_logging

log = logging.getLogger("nitrometer")

STOP_JOIN_TIMEOUT = 0.5  # SIGTERM to exit within a second
SIGNAL_POLL = 0.1  # seconds; see serve(), where signals cannot wake the main thread
FD_LIMIT = 8192  # soft RLIMIT_NOFILE wanted: the web server stays far below it


def configure(parser: argparse.ArgumentParser) -> None:
    from nitrometer.agent.privileges import RUN_AS_ENV

    configure_parser(parser)
    parser.add_argument("--run-as-user", dest="run_as_user", default=None, metavar="USER",
                        help="started as root: the user the agent serves as, with no group "
                        "and no capability, once the privileged reader is forked (default: "
                        f"${RUN_AS_ENV}, else nobody; root keeps the uid, still without "
                        "any capability)")


def _sources_module():
    try:
        from nitrometer.sampling import sources
    except ImportError as exc:
        raise NitrometerError(f"page sources are not available in this install: {exc}") from None
    return sources


def resolve_source(config: AgentConfig) -> SourceSpec:
    """--demo: real Amazon NVMe devices when there are any, else the simulated fleet."""
    if not config.demo or config.source.kind != "ioctl":
        return config.source
    sources = _sources_module()
    # sysfs only: the keeper is yet to be forked from this single-threaded process.
    found = sources.discover_devices(config.sysfs_path, config.dev_path, read_bdev=False)
    if found:
        log.info("demo: polling the %d Amazon NVMe devices found", len(found))
        return config.source
    log.info("demo: no Amazon NVMe devices here, polling the simulated fleet %s", DEMO_SOURCE)
    return parse_source(DEMO_SOURCE)


def open_sampling(spec: SourceSpec, config: AgentConfig, clock: Clock, volumes,
                  on_slow_identify=None, cgroups=None):
    """(sources, watcher): a fixed set for a simulation or recording; for real devices, a
    watcher that rescans off the sampling thread as devices come and go, and asks for the
    attributes of EBS volumes it has not seen (when the EC2 API collector is on).
    `on_slow_identify(device)` hears of each controller whose Identify outlives its wait."""
    sources = _sources_module()
    if spec.kind not in ("ioctl", "nvme-cli"):
        def open_fixed():
            opened = sources.open_sources(spec, sysfs_root=config.sysfs_path,
                                          dev_root=config.dev_path, clock=clock)
            for source in opened:
                simulated = getattr(source, "volume_limits", None)
                if simulated is not None:
                    volumes.add(source.device.serial, simulated)
            if cgroups is not None:  # simulated workloads
                from nitrometer.sim.cgroups import with_workloads

                opened = with_workloads(opened, cgroups)
            return opened
        return open_fixed, None
    from nitrometer.collectors.discovery import Discovery
    from nitrometer.sampling.watcher import DeviceWatcher

    discovery = Discovery(config.sysfs_path, config.dev_path)  # kept: it remembers bdevs

    def scan():
        result = discovery.scan()
        found = result.devices
        for device in result.slow:
            if on_slow_identify is not None:
                on_slow_identify(device)
        volumes.lookup([d.serial for d in found if d.kind == "ebs"])
        return found

    watcher = DeviceWatcher(scan, lambda device: sources.open_source(spec, device, clock),
                            config.rescan_interval)
    return None, watcher


class Agent:
    """The sampler thread, the web server and the signal handling around them."""

    def __init__(self, config: AgentConfig, args: argparse.Namespace | None = None, *,
                 clock: Clock | None = None, notifier=None, spec: SourceSpec | None = None):
        from nitrometer.agent.events import EventSink
        from nitrometer.agent.exporter import Exporter
        from nitrometer.agent.notify import Notifier
        from nitrometer.agent.sampler import Sampler
        from nitrometer.agent.state import AgentState
        from nitrometer.agent.web import MetricsServer, load_web_config
        from nitrometer.collectors.volumes import VolumeDirectory
        from nitrometer.sampling import engine_settings

        web_config = load_web_config(config.web_config_file)  # a bad one: before any work
        self.args = args
        self.config = config
        self.clock = clock or Clock()
        self.spec = spec or resolve_source(config)
        self.state = AgentState(config.peaks_window)
        self.notifier = notifier or Notifier()
        self.events = EventSink(config.events_file)
        self.state.volumes = VolumeDirectory(config.volumes, use_api=config.enabled("ebs_api"))
        self.simulated_cgroups = simulated_cgroupfs(config, self.spec)
        open_all, self.watcher = open_sampling(self.spec, config, self.clock, self.state.volumes,
                                               self._identify_slow, self.simulated_cgroups)
        settings = engine_settings(interval=config.poll_interval,
                                   exceeded_share=config.exceeded_share,
                                   episode_gap=config.episode_end)
        self.sampler = Sampler(self.state, open_all, settings=settings, clock=self.clock,
                               events=self.events, notifier=self.notifier, watcher=self.watcher,
                               threaded=self.watcher is not None, reader=reader_of(self.spec))
        self.state.workloads = self.sampler.workloads = workload_collector(
            config, self.spec, self.simulated_cgroups)
        self._apply(config)
        if self.state.instance is not None:
            self.sampler.engine.set_instance_type(self.state.instance.instance_type)
            self.state.volumes.region = self.state.instance.region or None
        self.exporter = Exporter(self.state, process=config.exporter_metrics)
        self.servers = []  # one per --web.listen-address, as node_exporter
        for host, port in config.listen:
            try:
                self.servers.append(MetricsServer((host, port), self.exporter, web_config,
                                                  status=self.status,
                                                  limits=connection_limits(),
                                                  path=config.telemetry_path))
            except OSError as exc:
                for server in self.servers:
                    server.server_close()
                shown = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
                raise NitrometerError(f"cannot listen on {shown}: {exc.strerror}") from None
        self.server = self.servers[0]
        self.wake = threading.Event()
        # Written by a signal (signal.set_wakeup_fd) or a request: the main thread sleeps
        # on it, whichever thread the kernel gave the signal to.
        self._woken, self._waker = socket.socketpair()
        for end in (self._woken, self._waker):
            end.setblocking(False)
        self.stop_requested = False
        self.reload_requested = False

    def _identify_slow(self, device) -> None:
        """A controller slow to answer Identify at discovery: counted beside read errors."""
        with self.state.lock:
            self.state.count_error(device, "identify_timeout")
            self.state.version += 1

    def _apply(self, config: AgentConfig) -> None:
        """The settings that can change at run time (SIGHUP)."""
        with self.state.lock:
            self.state.peak_window = config.peaks_window
            for dev in self.state.devices.values():
                dev.peaks.window = config.peaks_window
            self.state.io_size = config.enabled("io_size")
            self.state.buckets = config.buckets
            self.state.peaks_enabled = config.enabled("peaks")
            self.state.version += 1
            if config.enabled("identity") and self.state.instance is None:
                from nitrometer.agent.instance import build_instance

                simulated = self.spec.target if self.spec.kind == "simulate" else None
                self.state.instance = build_instance(config, simulated)
            elif not config.enabled("identity"):
                self.state.instance = None
        if config.enabled("host") and self.sampler.host is None:
            from nitrometer.agent.host import host_sampler

            self.sampler.host = host_sampler(self.spec, self.state, self.clock,
                                             config.instance_type)
        elif not config.enabled("host"):
            self.sampler.host = None
            with self.state.lock:
                self.state.host = {}
        setup_logging(config.log_level, config.log_format)

    def status(self) -> str:
        with self.state.lock:
            n, ticks = len(self.state.devices), self.state.ticks
        return f"source {self.spec}; {n} devices; {ticks} polls"

    def reload(self) -> None:
        from nitrometer.agent.web import load_web_config

        self.notifier.reloading()
        try:
            config = build_config(self.args)
            web_config = load_web_config(config.web_config_file)
            web_config.ssl_context()
            self.events.reopen(config.events_file)  # last: nothing after it can fail
        except Exception as exc:  # whatever is wrong with the new config, keep the old
            log.error("reload failed, keeping the running config: %s", exc)
            self.notifier.ready()
            return
        for what in ("listen_address", "source", "sysfs_path", "dev_path", "poll_interval",
                     "exceeded_share", "episode_end", "cgroupfs_path", "workload_top",
                     "workload_patterns", "workload_depth"):
            if getattr(config, what) != getattr(self.config, what):
                log.warning("reload: %s changes need a restart", what.replace("_", " "))
        self._apply(config)
        for server in self.servers:
            server.apply(web_config)
        self.config = config
        log.info("configuration reloaded")
        self.notifier.ready()

    def request_stop(self) -> None:
        self.stop_requested = True
        self._wake_main()

    def _wake_main(self) -> None:
        self.wake.set()
        try:
            self._waker.send(b"\0")
        except OSError:
            pass  # full: the main thread has been woken already

    def _sleep_main(self, signals_wake: bool) -> None:
        if not signals_wake:
            # A signal taken by another thread runs its handler only when this thread next
            # runs Python code: wake up often enough for that, whatever the load.
            self.wake.wait(SIGNAL_POLL)
        elif not self.wake.is_set():
            select.select([self._woken], [], [])
        try:
            while self._woken.recv(4096):
                pass
        except OSError:
            pass
        self.wake.clear()

    def install_signal_handlers(self) -> None:
        def stop(_signum, _frame):
            self.request_stop()

        def hup(_signum, _frame):
            self.reload_requested = True
            self._wake_main()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGHUP, hup)

    def serve(self) -> int:
        for server in self.servers:
            server.serve_in_thread()
        if self.watcher is not None:
            self.watcher.start()
        sampler_thread = self.sampler.start()
        log.info("serving metrics at %s (listening on %s), source %s, poll every %gs",
                 ", ".join(s.url + self.config.telemetry_path for s in self.servers),
                 self.config.listen_address,
                 self.spec,
                 self.config.poll_interval)
        self.notifier.ready()
        self.notifier.status(f"polling, serving {self.config.listen_address}")
        try:
            previous = signal.set_wakeup_fd(self._waker.fileno(), warn_on_full_buffer=False)
            signals_wake = True
        except ValueError:  # not the main thread: poll
            signals_wake = False
        try:
            while not self.stop_requested:
                self._sleep_main(signals_wake)
                if self.reload_requested and not self.stop_requested:
                    self.reload_requested = False
                    self.reload()
        finally:
            if signals_wake:
                signal.set_wakeup_fd(previous)
        self.notifier.stopping()
        log.info("stopping")
        self.sampler.interrupt()
        stop_by = time.monotonic() + STOP_JOIN_TIMEOUT
        for server in self.servers:
            server.shutdown()
        sampler_thread.join(max(stop_by - time.monotonic(), 0.0))
        for server in self.servers:
            server.wait_closed(max(stop_by - time.monotonic(), 0.1))
            server.server_close()
        self.sampler.close()
        self.events.close()
        return 0


def simulated_cgroupfs(config: AgentConfig, spec: SourceSpec):
    """Simulated devices get simulated workloads: a private cgroupfs in known shares."""
    if spec.kind != "simulate" or not config.enabled("workload"):
        return None
    from nitrometer.sim.cgroups import SimulatedCgroupfs

    return SimulatedCgroupfs()


def workload_collector(config: AgentConfig, spec: SourceSpec, simulated=None):
    """The workload collector, when it is on and cgroup v2 has the io controller here (or
    the simulated devices' own tree)."""
    if not config.enabled("workload"):
        return None
    from nitrometer.agent.workloads import WorkloadCollector
    from nitrometer.collectors.cgroups import CgroupIO, io_controller_mounted

    root = simulated.root if simulated is not None else config.cgroupfs_path
    if not io_controller_mounted(root):
        log.info("no cgroup v2 io controller at %s: no per-workload IO", root)
        return None
    rescan = max(1, round(config.rescan_interval / config.poll_interval))
    cgroups = CgroupIO(root, config.workload_patterns, config.workload_depth,
                       rescan_every=rescan)
    collector = WorkloadCollector(cgroups, simulated.devnum if simulated is not None else None,
                                  sysfs_root=config.sysfs_path, top=config.workload_top,
                                  episode_gap=config.episode_end)
    collector.kube = kubernetes_directory(config)
    return collector


def kubernetes_directory(config: AgentConfig, env=os.environ):
    """Names from the Kubernetes API, when in a cluster with a service account."""
    from nitrometer.agent import kubernetes

    if not config.enabled("kubernetes") or not kubernetes.in_cluster(
            env, config.serviceaccount_path):
        return None
    try:
        client = kubernetes.Client.from_environment(config.serviceaccount_path, env)
    except (kubernetes.ApiError, OSError) as exc:  # e.g. an unreadable CA file
        log.warning("kubernetes API not used: %s", exc)
        return None
    directory = kubernetes.Directory(client, config.node_name)
    directory.start()
    return directory


def reader_of(spec: SourceSpec):
    """The privileged reader's broker when this agent reads devices through one."""
    from nitrometer import privsep

    admin = privsep.current_admin()
    return admin if spec.kind == "ioctl" and hasattr(admin, "silent_for") else None


def raise_fd_limit(wanted: int = FD_LIMIT) -> int:
    """Soft RLIMIT_NOFILE up to `wanted` (within the hard limit); returns the soft limit."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError) as exc:
            log.warning("cannot raise the open file limit to %d: %s", target, exc)
    return soft


def connection_limits():
    """Connections stay under a quarter of the fd limit: the sampler keeps the rest."""
    import resource

    from nitrometer.agent.http11 import Limits

    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    default = Limits()
    if soft == resource.RLIM_INFINITY or soft // 4 >= default.max_connections:
        return default
    return Limits(max_connections=max(8, soft // 4))


# glibc's malloc.h: mallopt parameters, and the values the agent sets.
MALLOC_TUNING = (
    # At most two arenas: threads would otherwise get arenas of their own (64 MiB of
    # address space, some of it resident, each) in an agent that allocates little.
    ("MALLOC_ARENA_MAX", -8, 2),
    # A fixed threshold: a rendered /metrics body (hundreds of KiB, made and freed every
    # tick) is mapped and given back whole. By default glibc raises the threshold after the
    # first such free and keeps every later body in a heap that never shrinks.
    ("MALLOC_MMAP_THRESHOLD_", -3, 64 * 1024),
    ("MALLOC_TRIM_THRESHOLD_", -1, 128 * 1024),
)


def tune_malloc() -> list[str]:
    """Sets what MALLOC_TUNING says, except where the environment already does (it wins).
    Call before any thread starts; the names of the settings applied."""
    import ctypes

    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # musl and others: no mallopt
        return []
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    return [name for name, param, value in MALLOC_TUNING
            if not os.environ.get(name) and mallopt(param, value) == 1]


def run(args: argparse.Namespace) -> int:
    tune_malloc()
    config = build_config(args)
    setup_logging(config.log_level, config.log_format)
    from nitrometer import native  # noqa: F401 - says clearly if the C core is missing

    raise_fd_limit()
    from nitrometer.agent.privileges import separate_privileges

    # --demo settles on real or simulated devices first: a simulation needs no keeper.
    spec = resolve_source(config)
    # Before any thread starts: the keeper is forked from a single-threaded process, and
    # capabilities belong to each thread.
    broker = separate_privileges(spec, config.dev_path, getattr(args, "run_as_user", None))
    try:
        agent = Agent(config, args, spec=spec)
        agent.install_signal_handlers()
        code = agent.serve()
    finally:
        if broker is not None:
            broker.close()
    if any(server.busy_threads for server in agent.servers):
        # Every close path has run. A connection thread still inside bcrypt would abort
        # the interpreter's exit ("exception not rethrown"): leave without one.
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code
