"""Which hub process this is, and whether a process named so is still alive.

A hub process is named ``host:pid:start`` (its start in clock ticks since boot,
so a reused pid is told apart). Leases and spawns record their owner's name; a
process on the same host can tell at once whether that owner died.
"""

from __future__ import annotations

import functools
import os
import socket
from pathlib import Path


def this_process() -> str:
    """The name of the calling process (a new one after fork)."""
    return _name_of(os.getpid())


@functools.cache
def _name_of(pid: int) -> str:
    return f"{socket.gethostname()}:{pid}:{_start_stamp(pid)}"


def process_alive(name: str | None) -> bool | None:
    """True or False for a process of this host; None when it cannot be told (another
    host, or a name of another form)."""
    parts = (name or "").rsplit(":", 2)
    if len(parts) != 3 or not parts[1].isdigit():
        return None
    host, pid, start = parts
    if host != socket.gethostname():
        return None
    stamp = _start_stamp(int(pid))
    return stamp is not None and (start == "None" or stamp == start)


def describe(name: str | None) -> str:
    """A process's name as a message shows it: "pid 12 on host"."""
    if name is None:
        return "an earlier hub"
    parts = name.rsplit(":", 2)
    return f"pid {parts[1]} on {parts[0]}" if len(parts) == 3 else name


def _start_stamp(pid: int) -> str | None:
    """When the process started (clock ticks since boot), or None if it is gone or a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return None
    except OSError:  # no /proc here: existence is all we can tell
        return "None" if _exists(pid) else None
    fields = stat.rsplit(")", 1)[1].split()
    return None if fields[0] in ("Z", "X") else fields[19]


def _exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
