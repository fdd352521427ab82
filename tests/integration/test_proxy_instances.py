"""Several CHP instances (proxy_api_urls): the hub keeps each one's routes.

Two real CHPs, each with its own public port, stand for a proxy on each of two
machines (or a swarm's global proxy service): a user reaches their server through
either one, an instance that restarts empty is filled within ticks, and an
instance that is down costs no spawn, stop or health check.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from proxy.launcher import ProxyProcess
from tests.helpers import free_ports, wait_for
from tests.integration.conftest import Hub

pytestmark = pytest.mark.integration


class Proxies:
    """Two real CHPs in front of one hub port."""

    def __init__(self, tmp_path: Path) -> None:
        self.token = secrets.token_hex(16)
        self.hub_port, *ports = free_ports(5)
        self.chps = [
            ProxyProcess(
                ip="127.0.0.1",
                port=ports[2 * i],
                api_ip="127.0.0.1",
                api_port=ports[2 * i + 1],
                default_target=f"http://127.0.0.1:{self.hub_port}",
                error_target=None,
                auth_token=self.token,
                log_file=str(tmp_path / f"chp{i}.log"),
            )
            for i in range(2)
        ]

    def routes(self, i: int) -> dict[str, Any]:
        """CHP i's table ({} while it is down)."""
        try:
            response = requests.get(
                f"{self.chps[i].api_url}/api/routes",
                headers={"Authorization": f"token {self.token}"},
                timeout=5,
            )
        except requests.ConnectionError:
            return {}
        return response.json()

    def public(self, i: int, path: str, token: str) -> requests.Response:
        return requests.get(
            f"http://127.0.0.1:{self.chps[i].port}{path}",
            headers={"Authorization": f"token {token}"},
            timeout=10,
        )


@pytest.fixture
def proxies(tmp_path: Path) -> Iterator[Proxies]:
    two = Proxies(tmp_path)
    for chp in two.chps:
        chp.start()
    yield two
    for chp in two.chps:
        chp.stop()


@pytest.fixture
def hub(hub_factory: Callable[..., Hub], proxies: Proxies) -> Hub:
    first, second = proxies.chps
    hub = hub_factory(
        proxy_auto_start=False,
        port=first.port,
        proxy_api_port=first.api_port,
        proxy_api_urls=[first.api_url, second.api_url],
        hub_port=proxies.hub_port,
        proxy_auth_token=proxies.token,
    )
    (hub.data_dir / "proxy_auth_token").write_text(proxies.token)  # for Hub.routes()
    return hub


def _start(hub: Hub, name: str) -> str:
    """Start name's server; return a token of theirs."""
    assert hub.api("POST", f"/users/{name}").status_code == 201
    assert hub.api("POST", f"/users/{name}/server").status_code == 201
    return hub.token(name)


def test_a_server_is_routed_on_every_instance_and_its_stop_unroutes_it_on_each(
    hub: Hub, proxies: Proxies
) -> None:
    token = _start(hub, "ana")
    for i in (0, 1):
        assert "/user/ana" in proxies.routes(i)
        status = proxies.public(i, "/user/ana/api/status", token)
        assert status.status_code == 200 and status.json()["user"] == "ana"
    assert hub.api("DELETE", "/users/ana/server").status_code == 204
    for i in (0, 1):
        assert "/user/ana" not in proxies.routes(i)


def test_an_instance_that_restarts_empty_is_filled_and_one_down_stops_nothing(
    hub: Hub, proxies: Proxies
) -> None:
    token = _start(hub, "bo")
    second = proxies.chps[1]
    second.stop()
    second.start()  # a new CHP: an empty table, found by the next tick
    wait_for(lambda: "/user/bo" in proxies.routes(1), timeout=10)
    assert proxies.public(1, "/user/bo/api/status", token).status_code == 200

    second.stop()  # now down for good: spawns, stops and health go on through the first
    cy = _start(hub, "cy")
    assert proxies.public(0, "/user/cy/api/status", cy).status_code == 200
    assert hub.get("/hub/health").status_code == 200
    assert hub.api("DELETE", "/users/bo/server").status_code == 204
    assert "/user/bo" not in proxies.routes(0)

    second.start()  # back, empty: it gets cy's route and never bo's
    wait_for(lambda: "/user/cy" in proxies.routes(1), timeout=15)
    assert "/user/bo" not in proxies.routes(1)
    assert proxies.public(1, "/user/cy/api/status", cy).status_code == 200


def test_activity_seen_by_any_instance_reaches_the_hub(hub: Hub, proxies: Proxies) -> None:
    token = _start(hub, "di")
    before = hub.api("GET", "/users/di").json()["servers"][""]["last_activity"]
    # Only through the second CHP: the first has seen nothing since the spawn.
    assert proxies.public(1, "/user/di/api/status", token).status_code == 200
    hub.api("POST", "/proxy")  # a route check now, not in EXTERNAL_ROUTE_CHECK_SECONDS
    after = hub.api("GET", "/users/di").json()["servers"][""]["last_activity"]
    assert after > before
