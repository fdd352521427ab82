"""Fixtures for all tests.

- ``clean_env``: no hub settings from the outer environment (``FLASKHUB_*``,
  ``CONFIGPROXY_AUTH_TOKEN``) and no ``./flaskhub.toml``: the working directory
  is the test's tmp_path, which it returns.
- A test marked neither ``process``, ``integration`` nor ``browser`` fails if it
  starts a process (subprocess, fork, posix_spawn, system, exec, spawn), so
  ``-m "not process and not integration and not browser"`` stays pure unit tests.
- The session leaves no CPU group of user servers it made (app.spawners.cpu).
- SIGTERM stops the session as Ctrl-C does, tearing every fixture down
  (``tests/sigterm.py``).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from app.config import Settings
from app.spawners import cpu

pytest_plugins = ["tests.sigterm"]


@pytest.fixture
def clean_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in list(os.environ):
        if name.startswith("FLASKHUB_") or name == "CONFIGPROXY_AUTH_TOKEN":
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture(scope="session", autouse=True)
def _cpu_groups_as_found() -> Iterator[None]:
    """A server killed with its hub (the fault tests) leaves its CPU group behind: at the
    end the session removes the servers' group (server_cgroup's default, which every
    test hub uses), if it made it, and the empty groups in it."""
    hierarchy = cpu.this_hierarchy()
    base = hierarchy.base(Settings().server_cgroup) if hierarchy is not None else None
    made_here = base is not None and not base.exists()
    yield
    if base is None or not made_here or not base.exists():
        return
    for group in [*(p for p in base.iterdir() if p.is_dir()), base]:
        try:
            group.rmdir()
        except OSError as e:
            print(f"\nCPU group {group} left: {e.strerror}")


PROCESS_MARKERS = ("process", "integration", "browser")


@pytest.fixture(autouse=True)
def _no_process_unless_marked(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    if any(request.node.get_closest_marker(name) for name in PROCESS_MARKERS):
        return

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError(f"{request.node.nodeid} starts a process: mark it `process`")

    monkeypatch.setattr(subprocess.Popen, "__init__", refuse)
    # Every other way a process starts or becomes another: fork (multiprocessing too),
    # posix_spawn, system, the exec and spawn families.
    for name in PROCESS_FUNCTIONS:
        if hasattr(os, name):
            monkeypatch.setattr(os, name, refuse)


PROCESS_FUNCTIONS = (
    "fork",
    "forkpty",
    "posix_spawn",
    "posix_spawnp",
    "system",
    "popen",
    *("execl", "execle", "execlp", "execlpe", "execv", "execve", "execvp", "execvpe"),
    *("spawnl", "spawnle", "spawnlp", "spawnlpe", "spawnv", "spawnve", "spawnvp", "spawnvpe"),
)
