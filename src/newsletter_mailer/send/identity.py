"""Who a sender process is, for the store's leases and for `status`: a worker id that names the
machine and the process, so a later run on the same machine can tell at once that a worker is
gone (its process no longer exists) instead of waiting for its lease to run out."""

from __future__ import annotations

import os
import secrets
import socket
from dataclasses import dataclass
from functools import cache
from pathlib import Path

__all__ = ["Identity", "gone_here", "machine_key", "new_identity"]


@cache
def machine_key() -> str:
    """Where a process id means this process: systemd's machine-id (else the host name) and the
    PID namespace. Containers and cloned machines can share a machine-id; each has its own PID
    namespace, so a pid is only ever judged among processes that share ours."""
    machine = socket.gethostname()[:32] or "localhost"
    for path in (Path("/etc/machine-id"), Path("/var/lib/dbus/machine-id")):
        try:
            key = path.read_text(encoding="ascii").strip()
        except (OSError, UnicodeDecodeError):
            continue
        if key:
            machine = key[:12]
            break
    try:
        namespace = os.readlink("/proc/self/ns/pid").rpartition("[")[2].rstrip("]")
    except OSError:
        namespace = ""
    return f"{machine}.{namespace}".replace("-", "_") if namespace else machine.replace("-", "_")


@dataclass(frozen=True)
class Identity:
    worker: str  # machine key, pid and a random part: "3f2a9c0b1d4e-4242-k7p2"
    host: str
    pid: int


def new_identity() -> Identity:
    pid = os.getpid()
    return Identity(f"{machine_key()}-{pid}-{secrets.token_hex(2)}", socket.gethostname(), pid)


def gone_here(worker: str) -> bool:
    """True for a worker of this machine whose process has ended, and for rows claimed before
    workers had ids (an empty id: a single sender that stopped). Other machines' workers are
    never judged here: their leases tell."""
    if not worker:
        return True
    key, _, rest = worker.rpartition("-")[0].rpartition("-")
    if key != machine_key() or not rest.isdigit():
        return False
    try:
        os.kill(int(rest), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return _zombie(int(rest))


def _zombie(pid: int) -> bool:
    """A killed child not yet reaped still answers kill(0); /proc says it is a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[:1] == ["Z"]
