"""identity.py: a worker is judged gone by its pid only on this machine and in this PID
namespace; anyone else's worker waits for its lease."""

from __future__ import annotations

import os
import subprocess
import sys

from newsletter_mailer.send.identity import gone_here, machine_key, new_identity


def test_this_process_is_alive_and_a_finished_one_is_gone() -> None:
    me = new_identity()
    assert me.pid == os.getpid() and me.worker.startswith(machine_key() + "-")
    assert not gone_here(me.worker)
    child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    assert gone_here(f"{machine_key()}-{int(child.stdout)}-beef")


def test_other_machines_and_other_pid_namespaces_are_never_judged_here() -> None:
    dead_pid = 2**22 + 12345  # beyond pid_max: no such process here
    assert gone_here(f"{machine_key()}-{dead_pid}-beef")
    assert not gone_here(f"othermachine00-{dead_pid}-beef")
    machine, _, namespace = machine_key().partition(".")
    other_namespace = f"{machine}.{int(namespace or 0) + 1}"
    assert not gone_here(f"{other_namespace}-{dead_pid}-beef")  # a container sharing /etc/machine-id
    assert gone_here("")  # rows claimed before workers had ids: the single sender that stopped
