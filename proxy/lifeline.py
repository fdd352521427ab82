"""Children that end when the process that started them is killed (Linux).

`flaskhub run` starts CHP and gunicorn; if it is killed with SIGKILL it cannot
stop them, and they would keep the hub's ports, so that the next `flaskhub run`
could not start. Passed as ``preexec_fn``, `die_with_parent` asks the kernel to
send the child SIGTERM when the thread that started it ends.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import signal
import sys

PR_SET_PDEATHSIG = 1

# Loaded before any fork: the child only calls it.
_prctl = (
    ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True).prctl
    if sys.platform == "linux"
    else None
)


def die_with_parent() -> None:
    """In the child, between fork and exec: SIGTERM when the parent thread ends."""
    if _prctl is not None:
        _prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
