"""The spawn-lifecycle domain in-process: computed counts, lazy spawner objects,
finish_spawn with a route that fails or is slow. Real CHP, real server processes,
a real SQLite file; the pytest process is not monkey-patched, the domain runs
its greenlets all the same.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable, Iterator
from typing import Any

import gevent
import pytest
from flask import Flask

from app.auth.state import get_auth_states
from app.config import get_settings
from app.db import get_db
from app.models import Server, ServerState, User, new_user
from app.outcomes import Outcome
from app.servers import ServerManager, get_servers, state_counts
from app.spawners import Spawner
from app.users import get_users
from proxy.client import ProxyClient
from proxy.instances import ProxyInstances
from proxy.launcher import ProxyProcess
from tests.helpers import free_port, free_ports
from tests.transactions import counting


@pytest.fixture(scope="module")
def chp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    token = "test-proxy-token"
    port, api_port = free_ports(2)
    proxy = ProxyProcess(
        ip="127.0.0.1",
        port=port,
        api_ip="127.0.0.1",
        api_port=api_port,
        default_target="http://127.0.0.1:9",
        error_target=None,
        auth_token=token,
        log_file=str(tmp_path_factory.mktemp("chp") / "chp.log"),
    )
    proxy.start()
    yield f"http://127.0.0.1:{api_port}", token
    proxy.stop()


pytestmark = pytest.mark.process


@pytest.fixture
def hub_app(make_app: Callable[..., Flask], chp: tuple[str, str]) -> Iterator[Callable[..., Flask]]:
    """Apps on the module's CHP, with settings overridden; their servers stopped after."""
    api_url, token = chp
    apps: list[Flask] = []

    def _make(**overrides: Any) -> Flask:
        settings = {"slow_spawn_timeout": 10, "http_timeout": 15, **overrides}
        apps.append(
            make_app(
                proxy_api_url=api_url, proxy_auth_token=token, hub_port=free_port(), **settings
            )
        )
        return apps[-1]

    yield _make
    for flask_app in apps:
        get_servers(flask_app).stop_all()


@pytest.fixture
def app(hub_app: Callable[..., Flask]) -> Flask:
    return hub_app()


def _chp_args(app: Flask) -> tuple[str, str]:
    settings = get_settings(app)
    return settings.proxy_api_url, settings.proxy_auth_token


def _live_spawners(*user_names: str) -> int:
    """Spawner objects of these users alive in this process (after a collection)."""
    gc.collect()
    return sum(1 for o in gc.get_objects() if isinstance(o, Spawner) and o.user_name in user_names)


def _ready(app: Flask, name: str) -> bool:
    server = get_servers(app).get_server(name)
    return server is not None and server.ready


def _servers(app: Flask) -> ServerManager:
    return get_servers(app)


def test_counts_are_computed_from_the_rows(app: Flask) -> None:
    db = get_db(app)
    layout = {
        ServerState.SPAWNING: 3,
        ServerState.STOPPING: 2,
        ServerState.RUNNING: 4,
        ServerState.STOPPED: 5,
        ServerState.FAILED: 1,
    }
    with db.write() as session:
        for state, n in layout.items():
            for i in range(n):
                user = User(name=f"{state}-{i}", cookie_id="x")
                session.add(user)
                session.add(
                    Server(
                        user=user,
                        name="",
                        state=state,
                        url="http://127.0.0.1:1" if state == "running" else None,
                    )
                )
        # A running row without a URL is not ready (and not counted as such).
        broken = User(name="no-url", cookie_id="x")
        session.add(Server(user=broken, name="", state=ServerState.RUNNING, url=None))
    counts = _servers(app).counts()
    assert counts == {"active": 9, "pending": 5, "spawn_pending": 3, "stop_pending": 2, "ready": 4}
    with db.write() as session:
        session.query(Server).filter(Server.state == ServerState.SPAWNING).update(
            {"state": ServerState.RUNNING, "url": "http://127.0.0.1:2"}
        )
        assert state_counts(session)["ready"] == 7


def test_no_spawner_objects_for_users_who_never_started(app: Flask) -> None:
    users = get_users(app)
    users.create_many([f"idle{i}" for i in range(50)])
    listed, total = users.page()
    assert total == 50
    assert not any(u.servers for u in listed)
    servers = _servers(app)
    assert servers.counts()["active"] == 0
    assert _live_spawners(*(u.name for u in listed)) == 0
    assert servers.spawners == {}


def test_spawner_object_lives_only_while_the_server_runs(app: Flask) -> None:
    get_users(app).create_many(["lena"])
    servers = _servers(app)
    result = servers.start_server("lena")
    assert result.outcome == Outcome.READY
    assert _ready(app, "lena")
    assert _live_spawners("lena") == 1
    assert servers.stop_server("lena").outcome == Outcome.STOPPED
    assert servers.spawners == {}
    assert _live_spawners("lena") == 0
    assert not _ready(app, "lena")


def test_a_failed_spawner_keeps_its_error_until_the_server_starts_again(
    hub_app: Callable[..., Flask],
) -> None:
    app = hub_app(spawner_cmd=["false"])
    get_users(app).create_many(["otto"])
    servers = _servers(app)
    result = servers.start_server("otto")
    assert result.outcome == Outcome.FAILED and "exited with status 1" in result.message
    (failed,) = servers.spawners.values()
    assert failed.error is not None and "exited with status 1" in failed.error
    # An implicit start is refused with the failure; the handle stays.
    assert servers.start_server("otto", explicit=False).outcome == Outcome.FAILED
    assert list(servers.spawners.values()) == [failed]
    del failed
    # An explicit one starts again (and fails again): the old handle is gone.
    assert servers.start_server("otto").outcome == Outcome.FAILED
    assert _live_spawners("otto") == 1


class _FailingProxy(ProxyClient):
    def add_route(self, routespec: str, target: str, data: dict[str, Any]) -> None:
        from proxy.client import ProxyError

        raise ProxyError("injected: the proxy refused the route")


class _SlowProxy(ProxyClient):
    def add_route(self, routespec: str, target: str, data: dict[str, Any]) -> None:
        gevent.sleep(2)
        super().add_route(routespec, target, data)


def _proxies(app: Flask, client_class: type[ProxyClient]) -> ProxyInstances:
    """The app's one proxy, through a client of client_class (which injects a fault)."""

    class Instances(ProxyInstances):
        def _client(self, url: str) -> ProxyClient:
            return client_class(url, self.auth_token)

    url, token = _chp_args(app)
    return Instances([url], token)


def test_route_failure_stops_the_server_and_records_the_failure(app: Flask) -> None:
    servers = _servers(app)
    servers.routes.use(_proxies(app, _FailingProxy))
    get_users(app).create_many(["rita"])
    result = servers.start_server("rita")
    assert result.outcome == Outcome.FAILED
    assert "injected: the proxy refused the route" in result.message
    (spawner,) = servers.spawners.values()
    assert spawner.poll() is not None  # the process it started is gone
    server = servers.get_server("rita")
    assert server is not None and server.state == ServerState.FAILED


def test_slow_spawn_timeout_includes_the_route_and_never_cancels(
    hub_app: Callable[..., Flask],
) -> None:
    app = hub_app(slow_spawn_timeout=1)
    servers = _servers(app)
    servers.routes.use(_proxies(app, _SlowProxy))
    get_users(app).create_many(["sam"])
    t0 = time.monotonic()
    result = servers.start_server("sam")
    assert result.outcome == Outcome.PENDING and time.monotonic() - t0 < 2
    server = servers.get_server("sam")
    assert server is not None and server.pending == "spawn"
    servers.spawns[server.id].join(timeout=30)
    server = servers.get_server("sam")
    assert server is not None and server.ready
    assert not servers.routes.lost("/user/sam/")


def test_per_user_origins_route_services_on_the_hubs_host(
    hub_app: Callable[..., Flask], chp: tuple[str, str]
) -> None:
    """CHP with --host-routing matches no route without a host: a service's route names
    the hub's, as users' routes name theirs."""
    service = {"name": "svc", "url": "http://127.0.0.1:9", "api_token": "svc-token-0123456789"}
    app = hub_app(subdomain_host="http://localhost:8000", services=[service])
    assert get_servers(app).check_routes()["added"] >= 2
    routes = ProxyClient(*chp).get_all_routes()
    assert routes["/localhost/services/svc/"]["target"] == "http://127.0.0.1:9"
    assert "/services/svc/" not in routes


def test_the_route_check_moves_what_the_proxy_saw_used_in_one_write(app: Flask) -> None:
    """Each running server's route carries the time CHP last proxied to it (or added
    it): the check moves the users' and servers' last_activity forward to it, all in
    one write however many servers (one each took a share of the hub's CPU while a
    class started)."""
    with get_db(app).write() as session:
        for name in ("ann", "ben", "cy"):
            user = new_user(name, admin=False)
            session.add(user)
            session.add(Server(user=user, state=ServerState.RUNNING, url="http://127.0.0.1:9"))
    servers = _servers(app)
    assert servers.check_routes()["added"] >= 3  # CHP stamps each route as it adds it
    stamped = ProxyClient(*_chp_args(app)).get_all_routes()
    with counting(get_db(app).engine) as check:
        servers.check_routes()
    assert check.writes == 1, check.sql
    for name in ("ann", "ben", "cy"):
        found = get_users(app).get(name)
        assert found is not None
        seen = stamped[f"/user/{name}/"]["last_activity"]
        assert found.last_activity == seen and found.servers[0].last_activity == seen
    with counting(get_db(app).engine) as again:
        servers.check_routes()
    assert again.writes == 0, again.sql  # nothing newer seen: nothing written


def test_start_my_server_and_stop_cost_a_write_per_step(
    app: Flask, log_in: Callable[..., Any]
) -> None:
    """GET /hub/spawn: the login's read, the claim (server, token, OAuth client), the local
    spawner's three steps in one write (reported before it first waits), its state once
    started, and running with the hub's last two steps; no read of what the claim or the
    finish already know. A stop: its claim and its end."""
    client = app.test_client()
    log_in(client, "mona")
    with counting(get_db(app).engine) as spawn:
        answer = client.get("/hub/spawn")
    assert answer.status_code == 302 and answer.location == "/user/mona/", answer.text
    assert (spawn.transactions, spawn.writes) == (5, 4), spawn.sql
    with counting(get_db(app).engine) as stop:
        assert _servers(app).stop_server("mona").outcome == Outcome.STOPPED
    assert (stop.transactions, stop.writes) == (2, 2), stop.sql


def test_a_spawn_reads_a_fresh_auth_state_once(hub_app: Callable[..., Flask]) -> None:
    """With auth state kept and fresh, one read of it before the claim (whether the server
    is active matters only for a stale one, which would be refreshed)."""
    app = hub_app(crypt_key="ab" * 32, auth_refresh_age=3600)
    get_users(app).create_many(["nell"])
    get_auth_states(app).save("nell", {"access_token": "at"})
    with counting(get_db(app).engine) as spawn:
        assert _servers(app).start_server("nell").outcome == Outcome.READY
    assert (spawn.transactions, spawn.writes) == (5, 4), spawn.sql
