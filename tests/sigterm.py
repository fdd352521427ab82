"""SIGTERM ends a test session as Ctrl-C does: the running test stops and every fixture
is torn down (a cluster's node containers, volumes and network, a swarm the session
made, dockerd, CHP), where Python's default would end the process with none of that.

A second SIGTERM ends the process at once, as before: a teardown that hangs is not
waited for forever.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType

import pytest


def _interrupt(signum: int, _frame: FrameType | None) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    raise KeyboardInterrupt(f"stopped by signal {signum} (SIGTERM): tearing down the fixtures")


def pytest_configure(config: pytest.Config) -> None:
    # Only the main thread may set a handler (a session run by pytester in a thread: skip).
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _interrupt)


def pytest_unconfigure(config: pytest.Config) -> None:
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
