"""Stopping a running hub: POST /hub/api/shutdown (with GET /hub/api/health), and Ctrl-C."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import requests

from tests.helpers import wait_for
from tests.integration.conftest import Hub, hub_env, pid_alive, server_pids, start_hub

pytestmark = pytest.mark.integration

DRAIN_SECONDS = 3


@pytest.mark.parametrize("servers", [True, False])
def test_shutdown_stops_the_hub_and_its_servers_as_asked(
    hub_factory: Callable[..., Hub], servers: bool
) -> None:
    hub = hub_factory()
    health = hub.api("GET", "/health")
    assert health.status_code == 200 and health.json()["proxy"] == "ok"
    name = f"shut-{str(servers).lower()}"
    assert hub.api("POST", f"/users/{name}").status_code == 201
    assert hub.api("POST", f"/users/{name}/server").status_code == 201
    [pid] = server_pids(name)
    response = hub.api("POST", "/shutdown", json={"servers": servers})
    assert response.status_code == 202
    wait_for(lambda: hub.process.poll() is not None)
    assert hub.process.returncode == 0
    if servers:
        assert not pid_alive(pid)
    else:
        assert pid_alive(pid)
        os.kill(pid, signal.SIGTERM)
        wait_for(lambda: not pid_alive(pid))


def group_members(pgid: int) -> list[int]:
    """Live processes of a process group."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and pid_alive(int(entry.name)):
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == pgid:
                found.append(int(entry.name))
    return found


# Twice: before workers ignored it, 3 stops in 4 printed the traceback.
@pytest.mark.parametrize("attempt", [1, 2])
def test_ctrl_c_in_a_terminal_stops_everything_without_a_traceback(
    tmp_path: Path, attempt: int
) -> None:
    """A terminal's Ctrl-C signals the whole process group at once: gunicorn's arbiter and
    its workers (CHP and the servers have sessions of their own, stopped by the hub). A
    worker told to quit twice, by the terminal and by the arbiter, printed gevent's
    traceback."""
    data_dir = tmp_path / "data"
    hub = start_hub(data_dir, hub_env(data_dir, workers=2), own_group=True)
    pgid = hub.process.pid
    try:
        name = f"ctrl-c-{attempt}"
        assert hub.api("POST", f"/users/{name}").status_code == 201
        assert hub.api("POST", f"/users/{name}/server").status_code == 201
        [server] = server_pids(name, hub)
        assert len(group_members(pgid)) == 3  # the arbiter and its two workers
        os.killpg(pgid, signal.SIGINT)
        assert hub.process.wait(timeout=60) == 0
    finally:
        hub.stop()
    log = hub.log()
    assert "FlaskHub stopped." in log
    assert "Traceback" not in log, log[-3000:]
    wait_for(lambda: not group_members(pgid) and not pid_alive(server))


def test_with_drain_seconds_sigterm_leaves_the_hub_serving_that_long(
    hub_factory: Callable[..., Hub],
) -> None:
    """A rolling upgrade's old replica: told to stop, it goes on answering while the
    nodes' DNS forgets it, then stops as ever."""
    hub = hub_factory(drain_seconds=DRAIN_SECONDS)
    hub.process.send_signal(signal.SIGTERM)
    t0 = time.monotonic()
    answered = 0
    while time.monotonic() - t0 < DRAIN_SECONDS - 1:
        # New connections, as a proxy opens one per request.
        response = requests.get(
            f"{hub.hub_url}/hub/health", headers={"Connection": "close"}, timeout=5
        )
        assert response.status_code == 200
        answered += 1
    assert answered > 0
    wait_for(lambda: hub.process.poll() is not None, timeout=DRAIN_SECONDS + 15)
    assert hub.process.returncode == 0
    assert "Stopping in 3 s (drain_seconds)" in hub.log()


def test_a_draining_hub_serves_while_requests_come_but_not_for_its_own_health_check(
    hub_factory: Callable[..., Hub],
) -> None:
    """A swarm slow to tell every node keeps sending requests past drain_seconds: they
    are answered, and the hub stops once they stop; the container's health check (a
    loopback GET of /hub/health) does not keep it."""
    hub = hub_factory(drain_seconds=2)
    hub.process.send_signal(signal.SIGTERM)
    t0 = time.monotonic()
    while time.monotonic() - t0 < 3.5:  # past drain_seconds, well within 3 x drain_seconds
        response = requests.get(f"{hub.hub_url}/hub/login", headers={"Connection": "close"})
        assert response.status_code == 200
    wait_for(lambda: hub.process.poll() is not None, timeout=15)
    assert "No request for 1 s after" in hub.log()

    checked = hub_factory(drain_seconds=2)
    checked.process.send_signal(signal.SIGTERM)

    def health_checked_until_stopped() -> bool:
        try:
            requests.get(f"{checked.hub_url}/hub/health", timeout=1)
        except requests.ConnectionError:
            pass
        return checked.process.poll() is not None

    wait_for(health_checked_until_stopped, timeout=15, interval=0.05)
    assert "No request for 1 s after" in checked.log()
