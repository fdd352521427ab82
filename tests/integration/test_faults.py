"""Faults of the hub's own processes: a worker killed mid-spawn, CHP killed or
restarted, the hub killed with servers running."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests

from app.background import EXTERNAL_ROUTE_CHECK_SECONDS
from proxy.launcher import ProxyProcess
from tests.helpers import free_ports, wait_for
from tests.integration.conftest import (
    Hub,
    login,
    pid_alive,
    process_tree,
    server_pids,
    start_hub,
)

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
    assert model["pending"] is None and model["server"] is None, model
    page = login(hub, name).get(f"{hub.public_url}/hub/spawn-pending/{name}", timeout=30)
    assert page.status_code >= 400
    assert f"pid {worker_pid}" in page.text and "Start the server again." in page.text


def _proxy_pid(hub: Hub) -> int | None:
    """The pid of the CHP serving this hub's proxy API port."""
    port = hub.proxy_api_url.rsplit(":", 1)[1].encode()
    for entry in Path("/proc").iterdir():
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"--api-port" in cmdline and port in cmdline and pid_alive(int(entry.name)):
            return int(entry.name)
    return None


def _routes_when_up(hub: Hub) -> dict[str, Any]:
    try:
        return hub.routes()
    except requests.RequestException:
        return {}


def _start_servers(hub: Hub, names: list[str]) -> None:
    assert hub.api("POST", "/users", json={"usernames": names}).status_code == 201
    for name in names:
        assert hub.api("POST", f"/users/{name}/server").status_code == 201


def _all_routed(hub: Hub, names: list[str]) -> bool:
    routes = _routes_when_up(hub)
    return all(f"/user/{name}" in routes for name in names)


def test_a_killed_managed_proxy_has_all_routes_back_within_5_seconds(
    hub_factory: Callable[..., Hub],
) -> None:
    hub = hub_factory()
    names = ["chp-a", "chp-b", "chp-c"]
    _start_servers(hub, names)
    old = _proxy_pid(hub)
    assert old is not None
    os.kill(old, signal.SIGKILL)
    # The supervisor restarts CHP (an empty table) ...
    wait_for(lambda: _proxy_pid(hub) not in (None, old) and _routes_when_up(hub), timeout=20)
    # ... and the reconcile loop notices a lost route and restores them all.
    wait_for(lambda: _all_routed(hub, names), timeout=5)
    token = hub.token("chp-a")
    status = hub.get("/user/chp-a/api/status", headers={"Authorization": f"token {token}"})
    assert status.status_code == 200 and status.json()["user"] == "chp-a"


def test_a_restarted_external_proxy_gets_its_routes_back(
    hub_factory: Callable[..., Hub], tmp_path: Path
) -> None:
    port, api_port, hub_port = free_ports(3)
    token = secrets.token_hex(16)
    proxy = ProxyProcess(
        ip="127.0.0.1",
        port=port,
        api_ip="127.0.0.1",
        api_port=api_port,
        default_target=f"http://127.0.0.1:{hub_port}",
        error_target=None,
        auth_token=token,
        log_file=str(tmp_path / "chp.log"),
    )
    proxy.start()
    try:
        hub = hub_factory(
            proxy_auto_start=False,
            port=port,
            proxy_api_port=api_port,
            hub_port=hub_port,
            proxy_auth_token=token,
        )
        (hub.data_dir / "proxy_auth_token").write_text(token)  # for Hub.routes()
        names = ["ext-a", "ext-b"]
        _start_servers(hub, names)
        proxy.stop()
        proxy.start()  # a new CHP: no routes
        # Back within the route check interval of an external proxy (30 s), in fact
        # at the next tick: a route the last check made sure of is gone.
        wait_for(lambda: _all_routed(hub, names), timeout=EXTERNAL_ROUTE_CHECK_SECONDS)
        token = hub.token("ext-a")
        status = hub.get("/user/ext-a/api/status", headers={"Authorization": f"token {token}"})
        assert status.status_code == 200 and status.json()["user"] == "ext-a"
    finally:
        proxy.stop()


def test_a_killed_hub_keeps_its_servers_and_routes_them_on_restart(
    hub_factory: Callable[..., Hub],
) -> None:
    hub = hub_factory()
    names = ["kept-a", "kept-b"]
    _start_servers(hub, names)
    servers = {name: server_pids(name) for name in names}
    assert all(servers.values())
    hub_processes = [p for p in process_tree(hub.process.pid) if not _is_user_server(p)]
    for pid in hub_processes:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    hub.process.wait(timeout=10)
    # CHP goes with `flaskhub run` (it was told to), so the ports are free again.
    wait_for(lambda: _proxy_pid(hub) is None, timeout=15)
    assert all(pid_alive(p) for pids in servers.values() for p in pids)

    fresh = start_hub(hub.data_dir, hub.env)
    hub.process, hub.admin_token = fresh.process, fresh.admin_token
    wait_for(lambda: _all_routed(hub, names), timeout=30)
    for name in names:
        assert _server_row(hub, name)[0] == "running"  # type: ignore[index]
        assert server_pids(name) == servers[name]
        token = hub.token(name)
        status = hub.get(f"/user/{name}/api/status", headers={"Authorization": f"token {token}"})
        assert status.status_code == 200 and status.json()["user"] == name


def _is_user_server(pid: int) -> bool:
    try:
        return b"JUPYTERHUB_USER=" in Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return False
