"""Privilege separation: the agent holds no capability; a keeper and its readers hold what
reading the devices takes.

`nitrometer run` (source ioctl) starts, before it starts any thread, a **keeper**: the one
process that keeps CAP_SYS_ADMIN for as long as the agent runs. Its only job is to start
**readers** and hand the agent a fresh socket to each (SCM_RIGHTS), with backoff when they
keep dying. The agent then drops every capability (and, started as root, its user and
groups), so HTTP, TLS, YAML and everything else in it run unprivileged.

Keeper and readers are one small C program with no interpreter, shipped in the package
(native/reader/, started by nitrometer/keeper.py). A reader does two things and nothing
else: Get Log Page 0xD0 and Identify Controller, on an NVMe device node under the
configured device root, opened read-only; a page only for the namespace id the kernel
reports for that node (NVME_IOCTL_ID), or the controller's 0xFFFFFFFF on a controller node.
The agent's side (nitrometer/broker.py) asks it over the socket, replaces it through the
keeper when it dies or stops answering, and counts each replacement.

This module holds the contract both sides keep (native/reader/reader.h has the same
numbers), and the capability helpers the agent drops its own privileges with:
- reader: a SOCK_SEQPACKET socket; request `REQUEST` + path, reply `REPLY` + data, one
  message each, replies matched by id and possibly out of order: each device has one
  worker thread in the reader, so a device hanging in its ioctl holds up only its own
  requests; past MAX_IN_FLIGHT requests at once, a request fails EBUSY;
- keeper to agent: one message per new reader, `KEEPER_NEWS` (pid) + how the previous one
  ended, carrying the reader's socket as SCM_RIGHTS; agent to keeper: `KEEPER_REPLACE`
  (pid) + why, to replace a reader that stopped answering.
The reader dies with its keeper and the keeper with the agent (PR_SET_PDEATHSIG); each
also ends when its socket closes.
"""

from __future__ import annotations

import ctypes
import errno
import os
import struct

OP_GET_LOG_PAGE = 0x02  # the NVMe admin opcodes the reader will send
OP_IDENTIFY = 0x06
LOG_ID = 0xD0
MAX_PAGE = 8192
MAX_IN_FLIGHT = 64  # requests queued or running in a reader; past it a request fails EBUSY
MAX_OPEN = 256  # devices a reader keeps a worker (and an open node) for
CONTROLLER_NSID = 0xFFFFFFFF  # the nsid of a page read through a controller node

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
    """Admin commands from this process (the CLI)."""

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
