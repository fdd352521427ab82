"""Threads of gunicorn's arbiter, kept out of the way of the forks of its workers.

The arbiter runs threads (CHP's supervisor, the services' supervisors, the
announcement that the hub serves) while gunicorn forks workers from its main
thread. A child has only the forking thread: a lock that another thread held at
the fork stays held in the child for ever. The first worker of a hub hung like
that: the announcement thread was importing `encodings.idna` (getaddrinfo
encodes host names with it) when gunicorn forked, and the worker's own first
connection blocked on that module's import lock. So a thread does such work
(sockets, first imports, printing) inside `fork_safe()`, and a fork of this
process waits until no thread is inside it.

A thread starts its children inside it too: a worker forked while subprocess.Popen
runs keeps Popen's pipes, and Popen then waits until that worker exits. A managed
service was left like that, started but never recorded and never restarted.
"""

from __future__ import annotations

import contextlib
import logging  # noqa: F401  (its fork hook first: see _GUARD)
import os
import threading
from collections.abc import Iterator

# Reentrant: a thread inside fork_safe() may itself fork (subprocess.Popen with a
# preexec_fn runs the fork hooks), and fork_safe() blocks may nest.
_GUARD = threading.RLock()
# Registered at import, before any thread can be inside fork_safe(): registering
# later, from a thread, could itself race a fork. And after logging's hook, which takes
# logging's lock before a fork: hooks run last-registered first, so every fork takes
# _GUARD before that lock, and a thread that forks (Popen with a preexec_fn) inside
# fork_safe() cannot deadlock with one that logs and forks.
os.register_at_fork(
    before=_GUARD.acquire, after_in_parent=_GUARD.release, after_in_child=_GUARD.release
)


@contextlib.contextmanager
def fork_safe() -> Iterator[None]:
    """Hold off forks of this process (from other threads) while the block runs."""
    with _GUARD:
        yield
