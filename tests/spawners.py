"""Fault-injecting spawners for tests: real processes, behaviour chosen by the user's name.

Configure a hub with ``spawner = "tests.spawners:FaultSpawner"``. The name's
prefix picks the fault, so one hub serves every lifecycle test:

- ``slow-*``: waits SLOW_SECONDS (reporting progress) before starting normally
- ``hang-*``: start() never returns (start_timeout cancels it)
- ``fail-*``: start() raises at once
- ``failafter-*``: start() raises after SLOW_SECONDS
- ``never-*``: the process runs but never answers HTTP (http_timeout)
- ``exit-*``: the process exits with status 3 at once
- ``oldversion-*``: the server answers with X-JupyterHub-Version 1.0.0
- ``evil-*``: tests/evil_server.py, a server whose page attacks whoever opens it
- ``held-*``: the process waits until ``release_held(data_dir, name)``, then runs the
  built-in server: its start-up is held after the process started, before it listens
- anything else: the real built-in server

With auth state, the user's access token goes to the server as ACCESS_TOKEN (the
README's example of handing it on). Every call of start() is appended to
``<data_dir>/start-calls.log``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import gevent

from app.spawners import SimpleLocalProcessSpawner, SpawnerError

SLOW_SECONDS = 5.0
FAIL_STATUS = 418


class FaultSpawner(SimpleLocalProcessSpawner):
    """SimpleLocalProcessSpawner (the hub's account) with faults injected by username prefix."""

    @property
    def fault(self) -> str:
        return self.user_name.split("-", 1)[0] if "-" in self.user_name else ""

    def start(self) -> str:
        with (Path(self.settings.data_dir) / "start-calls.log").open("a") as f:
            f.write(f"{self.user_name}\n")
        if self.auth_state is not None:
            self.env["ACCESS_TOKEN"] = self.auth_state.get("access_token", "")
        fault = self.fault
        if fault == "fail":
            raise SpawnerError(f"Injected failure for {self.user_name}", FAIL_STATUS)
        if fault in ("slow", "failafter"):
            for step in range(1, 4):
                gevent.sleep(SLOW_SECONDS / 3)
                self.report_progress(25 * step, f"Injected slow step {step} of 3")
            if fault == "failafter":
                raise SpawnerError(f"Injected late failure for {self.user_name}", FAIL_STATUS)
        if fault == "hang":
            gevent.sleep(3600)
        if fault == "oldversion":
            self.env["FLASKHUB_SINGLEUSER_VERSION"] = "1.0.0"
        return super().start()

    def command(self) -> list[str]:
        fault = self.fault
        if fault == "never":
            return [sys.executable, "-c", "import time; time.sleep(600)"]
        if fault == "exit":
            return [sys.executable, "-c", "import sys; sys.exit(3)"]
        if fault == "evil":
            return [sys.executable, str(Path(__file__).with_name("evil_server.py"))]
        if fault == "held":
            gate = _held_gate(Path(self.settings.data_dir), self.user_name)
            wait = 'while [ ! -e "$0" ]; do sleep 0.05; done; exec "$@"'
            return ["/bin/sh", "-c", wait, str(gate), *super().command()]
        return super().command()


def _held_gate(data_dir: Path, name: str) -> Path:
    return data_dir / f"held-{name}"


def release_held(data_dir: Path, name: str) -> None:
    """Let the held-* user's server process go on to start the built-in server."""
    _held_gate(data_dir, name).touch()


def start_calls(data_dir: Path, name: str | None = None) -> int:
    """How many times start() was called (for one user, or all)."""
    path = data_dir / "start-calls.log"
    lines = path.read_text().split() if path.exists() else []
    return len(lines) if name is None else lines.count(name)


__all__ = ["FaultSpawner", "release_held", "start_calls"]


GATE_FILE = "spawn-gate"


class GatedSpawner(SimpleLocalProcessSpawner):
    """start() waits until ``<data_dir>/spawn-gate`` exists, then starts spawner_cmd.

    With the gate closed every spawn stays pending, so what the limits let
    through is exact; opened, the spawns finish as fast as the server starts.
    """

    def start(self) -> str:
        gate = Path(self.settings.data_dir) / GATE_FILE
        while not gate.exists():
            gevent.sleep(0.2)
        return super().start()
