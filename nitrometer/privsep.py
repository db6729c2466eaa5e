"""Privilege separation: the agent holds no capability; a keeper and its readers hold what
reading the devices takes.

`nitrometer run` (source ioctl) forks, before it starts any thread, a **keeper**: the one
process that keeps CAP_SYS_ADMIN for as long as the agent runs. Its only job is to start
**readers** and hand the agent a fresh socket to each (SCM_RIGHTS), with backoff when they
keep dying (nitrometer/keeper.py). The agent then drops every capability (and, started as
root, its user and groups), so HTTP, TLS, YAML and everything else in it run unprivileged.

A reader does two things and nothing else: Get Log Page 0xD0 and Identify Controller, on
an NVMe device node under the configured device root, opened read-only; a page only for
the namespace id the kernel reports for that node (NVME_IOCTL_ID), or the controller's
0xFFFFFFFF on a controller node. The agent's side (nitrometer/broker.py) asks it over
the socket, replaces it through the keeper when it dies or stops answering, and counts
each replacement.

Both interfaces are narrow on purpose, so that a small C program with no interpreter can
take the reader's place (one loop over the socket, no thread per request) without any
change on the agent's side:
- reader: a SOCK_SEQPACKET socket; request `REQUEST` + path, reply `REPLY` + data, one
  message each, replies matched by id and possibly out of order;
- keeper to agent: one message per new reader, `KEEPER_NEWS` (pid) + how the previous one
  ended, carrying the reader's socket as SCM_RIGHTS; agent to keeper: `KEEPER_REPLACE`
  (pid) + why, to replace a reader that stopped answering.

Requests run one thread each in this (Python) reader, so a device hanging in its ioctl
holds up only the reads of that device. The reader dies with its keeper and the keeper
with the agent (PR_SET_PDEATHSIG); each also ends when its socket closes.
"""

from __future__ import annotations

import ctypes
import errno
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

CONTROLLER_NSID = 0xFFFFFFFF
NVME_IOCTL_ID = 0x4E40  # _IO('N', 0x40): the namespace id of a namespace node

# request: id, opcode, log id, nsid, length, then the path; reply: id, kind, code, data
REQUEST = struct.Struct("<IBBII")
REPLY = struct.Struct("<IBi")
REPLY_OK, REPLY_ERRNO, REPLY_NVME_STATUS = 0, 1, 2
MAX_MESSAGE = REPLY.size + MAX_PAGE + 4096
# keeper <-> agent: kind, reader pid, then text (how the last reader ended, or why replace)
KEEPER_MESSAGE = struct.Struct("<BI")
KEEPER_NEWS, KEEPER_REPLACE = 1, 2
MAX_KEEPER_MESSAGE = 1024

# linux/capability.h and prctl.h
CAP_DAC_READ_SEARCH = 2
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


def limit_bounding_set(keep: tuple[int, ...] = ()) -> None:
    """Drop every capability but `keep` from the bounding set (needs CAP_SETPCAP; without
    it the set stays as it is)."""
    for cap in range(_last_cap() + 1):
        if cap not in keep:
            try:
                _prctl(PR_CAPBSET_DROP, cap)
            except OSError as exc:
                if exc.errno != errno.EINVAL:  # EPERM: no CAP_SETPCAP, nothing to drop
                    break


def limit_capabilities(keep: tuple[int, ...] = ()) -> None:
    """Keep only `keep` (capability numbers), in every set; () drops them all, for good."""
    limit_bounding_set(keep)
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


def privileged_capabilities() -> tuple[int, ...]:
    """What the keeper and its readers keep: CAP_SYS_ADMIN for the admin commands and, when
    not root (the unit's dynamic user), CAP_DAC_READ_SEARCH to open the nodes that EC2 makes
    root's alone (/dev/nvmeX is root:root 0600)."""
    keep = [CAP_SYS_ADMIN]
    if os.geteuid() != 0 and capabilities().get("CapEff", 0) & (1 << CAP_DAC_READ_SEARCH):
        keep.append(CAP_DAC_READ_SEARCH)
    return tuple(keep)


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
        self._fds: dict[str, tuple[int, int]] = {}  # path -> (fd, the nsid it answers for)
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

    @staticmethod
    def namespace_id(fd: int, path: str) -> int:
        """The one nsid a page is read for through this node: the kernel's for a namespace
        node, 0xFFFFFFFF (the whole controller) for a controller node."""
        if re.fullmatch(r"nvme\d+", os.path.basename(path)):
            return CONTROLLER_NSID
        import fcntl

        return fcntl.ioctl(fd, NVME_IOCTL_ID) & 0xFFFFFFFF

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
            entry = self._fds.pop(real, None)
        if entry is None:
            fd = self._open(real)
            try:
                entry = (fd, self.namespace_id(fd, real))
            except OSError:
                os.close(fd)
                raise
        fd, own_nsid = entry
        try:
            if nsid != own_nsid:
                raise Refused(f"{path} answers for namespace {own_nsid:#x}, not {nsid:#x}")
            page = native.get_log_page(fd, length, nsid=nsid, log_id=LOG_ID)
        except BaseException:
            os.close(fd)
            raise
        with self._lock:
            stale = [self._fds.pop(real, None)]
            self._fds[real] = entry
            while len(self._fds) > MAX_OPEN:  # devices long detached: drop the oldest
                stale.append(self._fds.pop(next(iter(self._fds))))
        for old in stale:
            if old is not None:
                os.close(old[0])
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
    """A reader's whole life (a child of the keeper); never returns."""
    code = 0
    try:
        _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:  # the keeper died before the line above
            os._exit(0)
        for sig in (signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)
        for sig in (signal.SIGTERM, signal.SIGCHLD):
            signal.signal(sig, signal.SIG_DFL)
        try:
            limit_capabilities(privileged_capabilities())
        except OSError as exc:
            log.debug("privileged reader keeps its capabilities as they were: %s", exc)
        reader, lock = Reader(dev_root), threading.Lock()
        slots = threading.BoundedSemaphore(MAX_IN_FLIGHT)
        while True:
            message = sock.recv(MAX_MESSAGE)
            if not message:
                break  # the agent dropped this reader
            if not slots.acquire(blocking=False):
                rid = struct.unpack_from("<I", message)[0] if len(message) >= 4 else 0
                _reply(sock, lock, rid, REPLY_ERRNO, errno.EBUSY)
                continue
            threading.Thread(target=_serve_request, args=(reader, sock, lock, slots, message),
                             daemon=True).start()
    except BaseException:
        code = 1
    os._exit(code)

