"""Least privilege for `nitrometer run`: start the keeper, then drop everything here.

Three ways the agent can be started, one outcome: the process that serves HTTP holds no
capability and, started as root, no longer is root.
- As root outside systemd: the bounding set is emptied (while CAP_SETPCAP is there to do
  it), then supplementary groups, group and user become those of `--run-as-user`
  (default nobody), which clears every other capability set.
- Under the shipped unit (a dynamic user with ambient capabilities, and a syscall filter
  that denies capset): the ambient set is cleared and the agent re-executes itself, which
  leaves an unprivileged user nothing effective or permitted; the keeper's sockets cross
  the exec (HANDOVER). The bounding set stays as the unit gave it: emptying it would need
  CAP_SETPCAP, and with NoNewPrivileges and noroot-locked securebits nothing can gain a
  capability from it anyway.
- Otherwise (a user with capabilities but no ambient ones): capset drops them all.
Every drop happens before the first thread starts: capabilities belong to each thread.
"""

from __future__ import annotations

import logging
import os
import sys

from nitrometer import privsep
from nitrometer.errors import NitrometerError

log = logging.getLogger("nitrometer")

RUN_AS_ENV = "NITROMETER_RUN_AS_USER"  # the default of --run-as-user when set
DEFAULT_RUN_AS = "nobody"


def run_as_default() -> str:
    return os.environ.get(RUN_AS_ENV) or DEFAULT_RUN_AS


def lookup_user(name: str) -> tuple[int, int]:
    import pwd

    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        raise NitrometerError(f"--run-as-user {name}: no such user") from None
    return entry.pw_uid, entry.pw_gid


def unreadable_for(uid: int, gid: int, targets=None) -> str | None:
    """The first directory on the way to Python's standard library or to nitrometer itself
    that uid (with gid, and no other group) could not enter, or None. Modules are imported
    after the drop, so the user must be able to read them: an interpreter under a home
    directory of mode 0700 (pyenv as root) is one it cannot."""
    import stat

    import nitrometer

    for target in targets or (os.path.dirname(os.__file__),
                              os.path.dirname(nitrometer.__file__)):
        path = "/"
        for part in os.path.realpath(target).split(os.sep)[1:]:
            path = os.path.join(path, part)
            try:
                st = os.stat(path)
            except OSError:
                return path
            if st.st_uid == uid:
                allowed = st.st_mode & stat.S_IXUSR
            elif st.st_gid == gid:
                allowed = st.st_mode & stat.S_IXGRP
            else:
                allowed = st.st_mode & stat.S_IXOTH
            if not allowed:
                return path
    return None


def become(name: str, explicit: bool = True) -> None:
    """As root: empty the bounding set, then take `name`'s user and group, no other group.
    A user who could not read the agent's own code is an error when asked for; when it is
    only the default, the agent stays uid 0 with no capability and says so."""
    uid, gid = lookup_user(name)
    blocked = unreadable_for(uid, gid) if uid != 0 else None
    if blocked is not None and explicit:
        raise NitrometerError(f"--run-as-user {name}: it cannot read {blocked}, where this "
                              "Python or nitrometer lives")
    if blocked is not None:
        log.warning("staying uid 0 with no capability: %s cannot read %s, where this Python "
                    "or nitrometer lives (install both where it can, or give --run-as-user)",
                    name, blocked)
        uid = 0
    try:
        privsep.limit_bounding_set(())  # while CAP_SETPCAP is there to do it
        if uid != 0:
            os.setgroups([])
            os.setgid(gid)
            os.setuid(uid)  # leaving root clears the other sets
        privsep.limit_capabilities(())
    except OSError as exc:
        raise NitrometerError(f"cannot become {name}: {exc.strerror}") from None


def reexec_without_ambient(broker) -> None:
    """Clear the ambient set and run this same command again: nothing is kept."""
    privsep._prctl(privsep.PR_CAP_AMBIENT, privsep.PR_CAP_AMBIENT_CLEAR_ALL)
    env = dict(os.environ)
    if broker is not None:
        from nitrometer.broker import HANDOVER

        env[HANDOVER] = broker.handover()
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, "-m", "nitrometer", *sys.argv[1:]], env)


def drop(run_as: str | None, broker=None) -> None:
    """run_as None: the default user (NITROMETER_RUN_AS_USER, else nobody)."""
    if os.geteuid() == 0:
        become(run_as or run_as_default(), explicit=run_as is not None)
        return
    held = privsep.capabilities()
    if not (held.get("CapEff", 0) or held.get("CapPrm", 0) or held.get("CapAmb", 0)):
        return
    try:
        privsep.limit_capabilities(())
    except OSError as exc:
        if held.get("CapAmb", 0):
            reexec_without_ambient(broker)  # capset denied (the unit's filter)
        raise NitrometerError(f"cannot drop capabilities: {exc.strerror}") from None


def separate_privileges(spec, dev_path: str, run_as: str | None):
    """Fork the keeper (ioctl source), then drop every privilege here; the broker or None."""
    from nitrometer.broker import HANDOVER, Broker, start_broker

    handed = os.environ.pop(HANDOVER, None)
    if handed:  # this is the re-executed agent: the keeper runs already
        broker = Broker.take_over(handed)
        privsep.install(broker)
        return broker
    broker = None
    if spec.kind == "ioctl":
        try:
            broker = start_broker(dev_path)
        except OSError as exc:
            raise NitrometerError(f"cannot start the privileged reader: {exc}") from None
        privsep.install(broker)
    if spec.kind == "nvme-cli":
        log.warning("source nvme-cli: nvme runs with the agent's own capabilities, "
                    "without privilege separation")
        return broker
    try:
        drop(run_as, broker)
    except BaseException:
        if broker is not None:
            broker.close()
        raise
    return broker
