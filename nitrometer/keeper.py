"""The keeper: the one process that keeps the reader's privilege while the agent runs.

The agent, once it has dropped every capability, can never start a privileged process
again. So before it drops them it forks this keeper, whose only job is to fork readers
(nitrometer/privsep.py) and hand the agent a fresh socket to each over its control socket
(SCM_RIGHTS): the first at start, a new one whenever a reader dies, and one in place of a
reader the agent reports as no longer answering (killed first). A reader that dies young
is replaced after a growing pause, so a reader that cannot start does not spin.

The keeper is single-threaded and never touches a device; it ends when the agent closes
the control socket or dies (PR_SET_PDEATHSIG). Without a keeper the agent cannot read any
device again: it stops feeding the systemd watchdog (nitrometer/broker.py), so that
systemd restarts the whole service.
"""

from __future__ import annotations

import logging
import os
import select
import signal
import socket
import time

from nitrometer import privsep
from nitrometer.privsep import KEEPER_MESSAGE, KEEPER_NEWS, KEEPER_REPLACE, MAX_KEEPER_MESSAGE

log = logging.getLogger("nitrometer.keeper")

YOUNG = 10.0  # seconds: a reader that dies younger than this counts as failing to start
FIRST_PAUSE = 0.5  # seconds before replacing a reader that died young; doubles each time
MAX_PAUSE = 8.0  # so a reader killed once is back within a second or two, never past 15 s


def describe_end(pid: int, status: int) -> str:
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        try:
            name = signal.Signals(sig).name
        except ValueError:
            name = f"signal {sig}"
        return f"reader {pid} was killed by {name}"
    return f"reader {pid} exited with status {os.WEXITSTATUS(status)}"


class Keeper:
    def __init__(self, control: socket.socket, dev_root: str):
        self.control = control
        self.dev_root = dev_root
        self.current: int | None = None  # the reader the agent is using
        self.started = 0.0
        self.young_deaths = 0
        self.next_start = 0.0
        self.ended = ""  # how the last reader ended, told with the next one
        self.wake: tuple[int, int] | None = None  # SIGCHLD's wakeup pipe

    def start_reader(self) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        keeper = os.getpid()
        pid = os.fork()
        if pid == 0:
            self.control.close()
            theirs.close()
            signal.set_wakeup_fd(-1)
            for fd in self.wake or ():
                os.close(fd)
            privsep.reader_main(ours, self.dev_root, keeper)
        ours.close()
        self.current, self.started = pid, time.monotonic()
        news = KEEPER_MESSAGE.pack(KEEPER_NEWS, pid) + self.ended.encode()[:900]
        try:
            socket.send_fds(self.control, [news], [theirs.fileno()])
        finally:
            theirs.close()
        self.ended = ""

    def reader_ended(self, how: str) -> None:
        lived = time.monotonic() - self.started
        self.young_deaths = self.young_deaths + 1 if lived < YOUNG else 0
        pause = 0.0 if not self.young_deaths else \
            min(FIRST_PAUSE * 2 ** (self.young_deaths - 1), MAX_PAUSE)
        self.ended, self.current = how, None
        self.next_start = time.monotonic() + pause

    def reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if pid == self.current:
                self.reader_ended(describe_end(pid, status))

    def on_request(self, message: bytes) -> None:
        if len(message) < KEEPER_MESSAGE.size:
            return
        kind, pid = KEEPER_MESSAGE.unpack_from(message)
        if kind != KEEPER_REPLACE or pid != self.current:
            return  # about a reader already replaced
        why = message[KEEPER_MESSAGE.size:].decode("utf-8", "replace")
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        # Not waited for: a reader stuck in an ioctl may take until the kernel lets go.
        self.reader_ended(f"reader {pid} {why}: killed")
        self.next_start = 0.0

    def run(self) -> None:
        wake_r, wake_w = self.wake = os.pipe()
        os.set_blocking(wake_w, False)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        signal.set_wakeup_fd(wake_w)
        self.start_reader()
        while True:
            timeout = None if self.current is not None else \
                max(self.next_start - time.monotonic(), 0.0)
            ready, _, _ = select.select([self.control, wake_r], [], [], timeout)
            if wake_r in ready:
                os.read(wake_r, 512)
            self.reap()
            if self.control in ready:
                try:
                    message = self.control.recv(MAX_KEEPER_MESSAGE)
                except OSError:
                    message = b""
                if not message:
                    return  # the agent is gone
                self.on_request(message)
            if self.current is None and time.monotonic() >= self.next_start:
                self.start_reader()


def keeper_main(control: socket.socket, dev_root: str, parent: int) -> None:
    """The keeper's whole life; never returns."""
    code = 0
    try:
        privsep._prctl(privsep.PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:  # the agent died before the line above
            os._exit(0)
        for sig in (signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        try:
            privsep.limit_capabilities(privsep.privileged_capabilities())
        except OSError as exc:
            log.debug("keeper keeps its capabilities as they were: %s", exc)
        Keeper(control, dev_root).run()
    except (BrokenPipeError, ConnectionResetError):
        pass  # the agent is gone
    except BaseException:
        log.exception("the privileged keeper failed")
        code = 1
    os._exit(code)


def start_keeper(dev_root: str) -> tuple[socket.socket, int]:
    """(the agent's control socket, the keeper's pid); call before any thread starts."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    parent = os.getpid()
    pid = os.fork()
    if pid == 0:
        ours.close()
        keeper_main(theirs, dev_root, parent)
    theirs.close()
    return ours, pid
