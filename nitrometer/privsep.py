"""Privilege separation: a small reader process keeps CAP_SYS_ADMIN, the agent drops it all.

`nitrometer run` forks the reader before it starts any thread. The reader can do two things
and nothing else: Get Log Page 0xD0 and Identify Controller, on an NVMe device node under
the configured device root, opened read-only. The agent asks it over a socketpair and then
drops every capability (effective, permitted, inheritable, ambient and the bounding set), so
HTTP, TLS, YAML and everything else in it run unprivileged.

Requests run one thread each in the reader, so a device hanging in its ioctl holds up only
the reads of that device. The reader dies with the agent (PR_SET_PDEATHSIG) and when its
socket closes.
"""

from __future__ import annotations

import ctypes
import errno
import itertools
import logging
import os
import re
import signal
import socket
import stat
import struct
import threading

log = logging.getLogger("nitrometer.privsep")

OP_GET_LOG_PAGE = 0x02  # the NVMe admin opcodes the reader will send
OP_IDENTIFY = 0x06
LOG_ID = 0xD0
MAX_PAGE = 8192
MAX_IN_FLIGHT = 64  # reader threads at once; past it a request fails EBUSY
MAX_OPEN = 256  # device descriptors the reader keeps open between reads
NODE_RE = re.compile(r"nvme\d+(n\d+)?")

# request: id, opcode, log id, nsid, length, then the path; reply: id, kind, code, data
REQUEST = struct.Struct("<IBBII")
REPLY = struct.Struct("<IBi")
REPLY_OK, REPLY_ERRNO, REPLY_NVME_STATUS = 0, 1, 2
MAX_MESSAGE = REPLY.size + MAX_PAGE + 4096

# linux/capability.h and prctl.h
CAP_SYS_ADMIN = 21
_LINUX_CAPABILITY_VERSION_3 = 0x20080522
PR_SET_PDEATHSIG = 1
PR_CAPBSET_DROP = 24
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_CLEAR_ALL = 4


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                ("inheritable", ctypes.c_uint32)]


def _libc():
    return ctypes.CDLL(None, use_errno=True)


def _prctl(option: int, arg2: int = 0, arg3: int = 0) -> None:
    libc = _libc()
    libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong,
                           ctypes.c_ulong]
    if libc.prctl(option, arg2, arg3, 0, 0) != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"prctl({option}): {os.strerror(code)}")


def _last_cap() -> int:
    try:
        with open("/proc/sys/kernel/cap_last_cap") as f:
            return int(f.read())
    except (OSError, ValueError):
        return 40


def limit_capabilities(keep: tuple[int, ...] = ()) -> None:
    """Keep only `keep` (capability numbers), in every set; () drops them all, for good."""
    for cap in range(_last_cap() + 1):
        if cap not in keep:
            try:
                _prctl(PR_CAPBSET_DROP, cap)
            except OSError as exc:
                if exc.errno != errno.EINVAL:  # EPERM: no CAP_SETPCAP, nothing to drop
                    break
    try:
        _prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL)
    except OSError:
        pass  # kernels before 4.3 have no ambient set
    mask = [0, 0]
    for cap in keep:
        mask[cap // 32] |= 1 << (cap % 32)
    data = (_CapData * 2)(*[_CapData(m, m, 0) for m in mask])
    header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    libc = _libc()
    if libc.capset(ctypes.byref(header), data) != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"capset: {os.strerror(code)}")


def capabilities() -> dict[str, int]:
    """This process's capability sets from /proc/self/status (CapEff, CapBnd, ...)."""
    sets = {}
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("Cap"):
                name, value = line.split(":")
                sets[name] = int(value, 16)
    return sets


class DirectAdmin:
    """Admin commands from this process (the CLI, or the reader itself)."""

    def get_log_page(self, path: str, nsid: int, length: int) -> bytes:
        from nitrometer import native

        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            return native.get_log_page(fd, length, nsid=nsid, log_id=LOG_ID)
        finally:
            os.close(fd)

    def identify(self, path: str) -> bytes:
        from nitrometer import native

        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            return native.identify_controller(fd)
        finally:
            os.close(fd)


DIRECT = DirectAdmin()
_current: object | None = None


def current_admin():
    """The admin backend the agent installed (the broker), or None for direct calls."""
    return _current


def install(admin) -> None:
    global _current
    _current = admin


# -- the privileged reader ---------------------------------------------------------------

class Refused(Exception):
    pass


class Reader:
    """Runs in the privileged child: validates, opens read-only, sends one of two commands."""

    def __init__(self, dev_root: str):
        self.dev_root = os.path.realpath(dev_root)
        self._fds: dict[str, int] = {}
        self._lock = threading.Lock()

    def check_path(self, path: str) -> str:
        real = os.path.realpath(path)
        if os.path.dirname(real) != self.dev_root:
            raise Refused(f"{path} is not under {self.dev_root}")
        if not NODE_RE.fullmatch(os.path.basename(real)):
            raise Refused(f"{path} is not an NVMe device node")
        return real

    def _open(self, path: str) -> int:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
        mode = os.fstat(fd).st_mode
        if not (stat.S_ISCHR(mode) or stat.S_ISBLK(mode)):
            os.close(fd)
            raise Refused(f"{path} is not a device node")
        return fd

    def run(self, opcode: int, log_id: int, nsid: int, length: int, path: str) -> bytes:
        from nitrometer import native

        if opcode == OP_GET_LOG_PAGE:
            if log_id != LOG_ID or not 0 < length <= MAX_PAGE:
                raise Refused(f"log page {log_id:#04x} of {length} bytes is not allowed")
        elif opcode != OP_IDENTIFY:
            raise Refused(f"admin opcode {opcode:#04x} is not allowed")
        real = self.check_path(path)
        if opcode == OP_IDENTIFY:
            fd = self._open(real)
            try:
                return native.identify_controller(fd)
            finally:
                os.close(fd)
        with self._lock:  # the page fd stays open between reads, as in IoctlSource
            fd = self._fds.pop(real, None)
        if fd is None:
            fd = self._open(real)
        try:
            page = native.get_log_page(fd, length, nsid=nsid, log_id=LOG_ID)
        except BaseException:
            os.close(fd)
            raise
        with self._lock:
            stale = [self._fds.pop(real, None)]
            self._fds[real] = fd
            while len(self._fds) > MAX_OPEN:  # devices long detached: drop the oldest
                stale.append(self._fds.pop(next(iter(self._fds))))
        for old in stale:
            if old is not None:
                os.close(old)
        return page


def _reply(sock: socket.socket, lock: threading.Lock, rid: int, kind: int, code: int,
           data: bytes = b"") -> None:
    with lock:
        try:
            sock.send(REPLY.pack(rid, kind, code) + data)
        except OSError:
            pass


def _serve_request(reader: Reader, sock, lock, slots, message: bytes) -> None:
    from nitrometer import native

    rid = 0
    try:
        rid, opcode, log_id, nsid, length = REQUEST.unpack_from(message)
        path = message[REQUEST.size:].decode("utf-8", "strict")
        data = reader.run(opcode, log_id, nsid, length, path)
        _reply(sock, lock, rid, REPLY_OK, 0, data)
    except Refused as exc:
        log.warning("privileged reader refused: %s", exc)
        _reply(sock, lock, rid, REPLY_ERRNO, errno.EPERM)
    except OSError as exc:
        _reply(sock, lock, rid, REPLY_ERRNO, exc.errno or errno.EIO)
    except native.NvmeStatusError as exc:
        _reply(sock, lock, rid, REPLY_NVME_STATUS, exc.status)
    except Exception:  # a malformed request: refuse it, keep serving
        _reply(sock, lock, rid, REPLY_ERRNO, errno.EINVAL)
    finally:
        slots.release()


def reader_main(sock: socket.socket, dev_root: str, parent: int) -> None:
    """The privileged child's whole life; never returns."""
    code = 0
    try:
        _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:  # the agent died before the line above
            os._exit(0)
        for sig in (signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        try:
            limit_capabilities((CAP_SYS_ADMIN,))
        except OSError as exc:
            log.debug("privileged reader keeps its capabilities as they were: %s", exc)
        reader, lock = Reader(dev_root), threading.Lock()
        slots = threading.BoundedSemaphore(MAX_IN_FLIGHT)
        while True:
            message = sock.recv(MAX_MESSAGE)
            if not message:
                break  # the agent is gone
            if not slots.acquire(blocking=False):
                rid = struct.unpack_from("<I", message)[0] if len(message) >= 4 else 0
                _reply(sock, lock, rid, REPLY_ERRNO, errno.EBUSY)
                continue
            threading.Thread(target=_serve_request, args=(reader, sock, lock, slots, message),
                             daemon=True).start()
    except BaseException:
        code = 1
    os._exit(code)


class Broker:
    """The agent's side: the admin backend that asks the privileged reader."""

    def __init__(self, sock: socket.socket, pid: int):
        self.sock, self.pid = sock, pid
        self._ids = itertools.count(1)
        self._pending: dict[int, list] = {}
        self._lock = threading.Lock()
        self._send_lock = threading.Lock()
        self._dead = False
        self._thread = None

    def _ensure_reader_thread(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._receive, name="nitrometer-privsep",
                                            daemon=True)
            self._thread.start()

    def _receive(self) -> None:
        while True:
            try:
                message = self.sock.recv(MAX_MESSAGE)
            except OSError:
                message = b""
            if len(message) < REPLY.size:
                break
            rid, kind, code = REPLY.unpack_from(message)
            with self._lock:
                waiter = self._pending.pop(rid, None)
            if waiter is not None:
                waiter[1] = (kind, code, message[REPLY.size:])
                waiter[0].set()
        with self._lock:
            self._dead = True
            pending, self._pending = self._pending, {}
        for waiter in pending.values():
            waiter[1] = (REPLY_ERRNO, errno.EIO, b"")
            waiter[0].set()

    def request(self, opcode: int, path: str, *, log_id: int = 0, nsid: int = 0,
                length: int = 0) -> bytes:
        from nitrometer import native

        rid = next(self._ids) & 0xFFFFFFFF
        waiter = [threading.Event(), None]
        with self._lock:
            if self._dead:
                raise OSError(errno.EIO, "the privileged reader is gone")
            self._pending[rid] = waiter
            self._ensure_reader_thread()
        message = REQUEST.pack(rid, opcode, log_id, nsid, length) + os.fsencode(path)
        try:
            with self._send_lock:
                self.sock.send(message)
        except OSError as exc:
            with self._lock:
                self._pending.pop(rid, None)
            raise OSError(errno.EIO, f"the privileged reader is gone: {exc.strerror}") from None
        waiter[0].wait()
        kind, code, data = waiter[1]
        if kind == REPLY_OK:
            return data
        if kind == REPLY_NVME_STATUS:
            raise native.NvmeStatusError(f"the controller answered NVMe status {code:#x}", code)
        raise OSError(code, os.strerror(code))

    def get_log_page(self, path: str, nsid: int, length: int) -> bytes:
        return self.request(OP_GET_LOG_PAGE, path, log_id=LOG_ID, nsid=nsid, length=length)

    def identify(self, path: str) -> bytes:
        return self.request(OP_IDENTIFY, path)

    def close(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        try:
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass


def start_broker(dev_root: str) -> Broker:
    """Fork the privileged reader; call before any thread starts."""
    parent_sock, child_sock = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    parent = os.getpid()
    pid = os.fork()
    if pid == 0:
        parent_sock.close()
        reader_main(child_sock, dev_root, parent)
    child_sock.close()
    return Broker(parent_sock, pid)
