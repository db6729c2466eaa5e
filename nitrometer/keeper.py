"""Starts the keeper: the one process that keeps the reader's privilege while the agent runs.

The agent, once it has dropped every capability, can never start a privileged process
again. So before it drops them it starts the keeper, a small C program shipped in the
package (nitrometer-reader, from native/reader/): it keeps CAP_SYS_ADMIN (and, as the
unit's dynamic user, CAP_DAC_READ_SEARCH) and nothing else, forks readers and hands the
agent a fresh socket to each over the control socket (SCM_RIGHTS): the first at start, a
new one whenever a reader dies (after 0.5 s, doubling up to 8 s while readers keep dying
within 10 s), and one in place of a reader the agent reports as no longer answering (killed
first). The protocol is nitrometer/privsep.py's; the agent's side is nitrometer/broker.py.

The keeper ends when the agent closes the control socket or dies (PR_SET_PDEATHSIG), and
takes its reader along. Without a keeper the agent cannot read any device again: it stops
feeding the systemd watchdog (nitrometer/broker.py), so that systemd restarts the service.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

READER = Path(__file__).with_name("nitrometer-reader")  # built by native/build.py


def start_keeper(dev_root: str, binary: str | os.PathLike | None = None
                 ) -> tuple[socket.socket, int]:
    """(the agent's control socket, the keeper's pid); call before any thread starts.
    `binary`: another build of the keeper (the sanitized one in tests)."""
    program = os.fspath(binary or READER)
    if not os.access(program, os.X_OK):
        raise OSError(f"{program} is missing or not executable (reinstall nitrometer, or "
                      "build it with native/build.py)")
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        os.set_inheritable(theirs.fileno(), True)
        # fork + exec in one call, which reports a failed exec here rather than in a child
        pid = os.posix_spawn(program, [program, str(theirs.fileno()), dev_root,
                                       str(os.getpid())], os.environ, setsigmask=())
    except OSError:
        ours.close()
        raise
    finally:
        theirs.close()
    return ours, pid
