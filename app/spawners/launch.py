"""Starting a server process as the hub's own account without forking the hub.

gevent's subprocess forks the worker in Python: about 5 ms for a 70 MiB worker,
and copy-on-write faults in the worker until the child has run its program.
`posix_spawn` (vfork and exec, in C) takes well under a millisecond. It cannot
change directory or close every descriptor by itself: the worker changes its own
directory around the call (the child starts in it), and each descriptor the
program could inherit is closed by a file action. Under gevent, `os.posix_spawn`
and `os.waitpid` are gevent's: the child is watched, and polling it never blocks
the worker.

Servers that run as another account still start through subprocess, which
changes the user, groups and umask (app.spawners.local).
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any


class Child:
    """A started process: its pid and poll(), as subprocess.Popen's."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        """None while it runs, then its exit code (-N for signal N)."""
        if self.returncode is None:
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:
                # Reaped elsewhere: it has ended, and its status is lost (Popen's 0).
                self.returncode = 0
            else:
                if pid == self.pid:
                    self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode


def spawn(program: list[str], env: dict[str, str], cwd: Path, log_fd: int) -> Child:
    """Run program (its first item a path) in cwd, in a new session, stdin from
    /dev/null, stdout and stderr to log_fd, with exactly env and no other descriptor
    of this process. Raises OSError if it cannot be started."""
    actions: list[tuple[Any, ...]] = [
        (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
        (os.POSIX_SPAWN_DUP2, log_fd, 1),
        (os.POSIX_SPAWN_DUP2, log_fd, 2),
    ]
    actions += [(os.POSIX_SPAWN_CLOSE, fd) for fd in _inheritable_fds() if fd > 2]
    # Python ignores SIGPIPE; the program gets the defaults, as Popen gives them.
    defaults = (signal.SIGPIPE, signal.SIGXFSZ)
    # The child starts in the worker's directory, which is cwd only for the call: no
    # greenlet runs meanwhile (nothing here yields), and the worker's other threads
    # (gevent's pool: password hashes, name lookups) open no relative path. Was
    # `env -C`: one more program run for each server.
    back = os.open(".", getattr(os, "O_PATH", os.O_RDONLY) | os.O_DIRECTORY)
    try:
        try:
            os.chdir(cwd)
        except OSError as e:
            raise OSError(e.errno, f"{e.strerror} (its directory, {cwd})") from e
        try:
            pid = os.posix_spawn(
                program[0], program, env, file_actions=actions, setsid=True, setsigdef=defaults
            )
        finally:
            os.fchdir(back)
    finally:
        os.close(back)
    return Child(pid)


def _inheritable_fds() -> list[int]:
    """Descriptors of this process a program it runs would keep (not close-on-exec).

    Python opens every descriptor close-on-exec; any other (one a library or the
    parent opened) is closed explicitly. Read with no greenlet switch before the
    spawn, so none can appear in between from this thread.
    """
    found = []
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        try:
            if os.get_inheritable(fd):
                found.append(fd)
        except OSError:  # the directory listing's own descriptor, closed meanwhile
            continue
    return found
