"""Faults of the hub's own processes: a worker killed mid-spawn, CHP killed or
restarted, the hub killed with servers running."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Callable

import pytest

from tests.helpers import wait_for
from tests.integration.conftest import Hub, login, server_pids

pytestmark = pytest.mark.integration


def _server_row(hub: Hub, name: str) -> tuple[str, str | None, dict, str | None] | None:
    rows = hub.query(
        "SELECT s.state, s.owner, s.spawner_state, s.failure_message FROM servers s"
        " JOIN users u ON u.id = s.user_id WHERE u.name = ? AND s.name = ''",
        name,
    )
    if not rows:
        return None
    state, owner, spawner_state, message = rows[0]
    return state, owner, json.loads(spawner_state or "{}"), message


def test_a_spawn_whose_worker_is_killed_fails_and_its_process_goes(
    hub_factory: Callable[..., Hub],
) -> None:
    hub = hub_factory(workers=2, spawner="tests.spawners:FaultSpawner", slow_spawn_timeout=0.5)
    name = "never-orphan"  # its process starts, then never answers HTTP
    assert hub.api("POST", f"/users/{name}").status_code == 201
    assert hub.api("POST", f"/users/{name}/server").status_code == 202
    # The spawn stored its process (and which worker runs it) before waiting for HTTP.
    row = wait_for(lambda: (r := _server_row(hub, name)) and r[2].get("pid") and r, timeout=30)
    assert row[0] == "spawning"
    worker_pid = int(row[1].split(":")[1])
    assert server_pids(name)
    os.kill(worker_pid, signal.SIGKILL)

    # The reconcile loop (in the other worker, or the one gunicorn starts instead)
    # notices that the spawn's worker is gone.
    wait_for(lambda: _server_row(hub, name)[0] == "failed", timeout=30)  # type: ignore[index]
    message = _server_row(hub, name)[3]  # type: ignore[index]
    assert f"The hub process that was starting this server (pid {worker_pid} on" in message
    wait_for(lambda: not server_pids(name), timeout=15)
    model = hub.api("GET", f"/users/{name}").json()
    assert model["pending"] is None and model["server"] is None
    page = login(hub, name).get(f"{hub.public_url}/hub/spawn-pending/{name}", timeout=30)
    assert page.status_code >= 400
    assert f"pid {worker_pid}" in page.text and "Start the server again." in page.text
