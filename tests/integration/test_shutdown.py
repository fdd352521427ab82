"""POST /hub/api/shutdown and GET /hub/api/health against a running hub."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable

import pytest

from tests.helpers import wait_for
from tests.integration.conftest import Hub, pid_alive, server_pids

pytestmark = pytest.mark.integration


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
