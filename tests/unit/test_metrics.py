"""app/metrics.py in-process: who may read /hub/metrics, names, labels, buckets, recorder hooks."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import gevent
import pytest
from flask import Flask
from flask.testing import FlaskClient

from app.config import ConfigError, load
from app.db import get_db
from app.handler_names import HANDLER_NAMES
from app.metrics import (
    MetricsRecorder,
    observe_startup,
    start_event_loop_sampler,
    startup_env,
)
from app.models import Server, ServerState
from app.servers import SpawnStatus, get_servers
from app.tokens import get_tokens
from app.users import get_users
from proxy.client import ProxyError
from proxy.instances import ProxyInstances
from tests.helpers import xsrf_token
from tests.scrape import Samples

SPAWN = "jupyterhub_server_spawn_duration_seconds"
ROOT_HANDLER = "jupyterhub.apihandlers.hub.RootAPIHandler"
USER_HANDLER = "jupyterhub.apihandlers.users.UserAPIHandler"
REQUESTS = "jupyterhub_request_duration_seconds"
BUCKETS = [0.5, 1, 2.5, 5, 10, 15, 30, 60, 120, 180, 300, 600, math.inf]
SERVICES = [
    {"name": "prometheus", "api_token": "token-prometheus", "scopes": ["read:metrics"]},
    {"name": "boss", "api_token": "token-boss", "admin": True},
    {"name": "culler", "api_token": "token-culler"},
]
# Every label value each labelled metric has from start-up.
LABELS = {
    SPAWN: {s.value for s in SpawnStatus},
    "jupyterhub_proxy_add_duration_seconds": {"success", "failure"},
    "jupyterhub_proxy_delete_duration_seconds": {"success", "failure"},
    "jupyterhub_server_stop_seconds": {"success", "failure"},
    "jupyterhub_server_poll_duration_seconds": {"running", "stopped"},
}
UNLABELLED = ["jupyterhub_check_routes_duration_seconds", "jupyterhub_proxy_poll_duration_seconds"]


@pytest.fixture
def make_app(make_app: Callable[..., Flask]) -> Callable[..., Flask]:
    """make_app(**overrides): conftest's hub app, with three services."""
    return lambda **overrides: make_app(**{"services": SERVICES, **overrides})


@pytest.fixture
def app(make_app: Callable[..., Flask]) -> Flask:
    return make_app()


def token(app: Flask, user: str, scopes: list[str], admin: bool = False) -> str:
    owner = get_users(app).get_or_create(user, admin=admin)
    value, _row = get_tokens(app).create(owner.id, scopes=scopes)
    return value


def scrape(client: FlaskClient, path: str = "/hub/metrics", **headers: str) -> Samples:
    response = client.get(path, headers=headers)
    assert response.status_code == 200, response.data
    assert response.content_type.startswith("text/plain; version=0.0.4")
    return Samples.parse(response.get_data(as_text=True))


def admin_scrape(app: Flask, client: FlaskClient | None = None) -> Samples:
    return scrape(client or app.test_client(), Authorization=f"token {admin_token(app)}")


def admin_token(app: Flask) -> str:
    return token(app, "root", ["inherit"], admin=True)


def login(client: FlaskClient, name: str) -> None:
    xsrf = xsrf_token(client.get("/hub/login").text)
    response = client.post("/hub/login", data={"username": name, "_xsrf": xsrf})
    assert response.status_code == 302


# -- who may read ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("credential", "allowed"),
    [
        (None, False),
        ("garbage", False),
        ("admin-full", True),
        ("admin-read-metrics", True),
        ("admin-other-scope", False),
        ("user-full", False),
        ("user-read-metrics", False),  # a token never does more than its owner
        ("service-read-metrics", True),
        ("service-admin", True),
        ("service-plain", False),
    ],
)
@pytest.mark.parametrize("path", ["/hub/metrics", "/hub/api/metrics"])
def test_metrics_need_admin_or_read_metrics(
    app: Flask, credential: str | None, allowed: bool, path: str
) -> None:
    tokens = {
        "garbage": "no-such-token",
        "admin-full": token(app, "root", ["inherit"], admin=True),
        "admin-read-metrics": token(app, "root", ["read:metrics"], admin=True),
        "admin-other-scope": token(app, "root", ["read:users"], admin=True),
        "user-full": token(app, "alice", ["inherit"]),
        "user-read-metrics": token(app, "alice", ["read:metrics"]),
        "service-read-metrics": "token-prometheus",
        "service-admin": "token-boss",
        "service-plain": "token-culler",
    }
    headers = {"Authorization": f"token {tokens[credential]}"} if credential else {}
    response = app.test_client().get(path, headers=headers)
    if allowed:
        assert response.status_code == 200
        assert SPAWN in response.get_data(as_text=True)
    else:
        assert response.status_code == 403
        assert response.json is not None
        assert response.json["status"] == 403
        assert "read:metrics" in response.json["message"]
        assert SPAWN not in response.get_data(as_text=True)


@pytest.mark.parametrize(("name", "allowed"), [("root", True), ("alice", False)])
def test_metrics_with_a_login_cookie(app: Flask, name: str, allowed: bool) -> None:
    get_users(app).get_or_create("root", admin=True)
    client = app.test_client()
    login(client, name)
    assert client.get("/hub/metrics").status_code == (200 if allowed else 403)


def test_authenticate_prometheus_false_opens_metrics(make_app: Callable[..., Flask]) -> None:
    client = make_app(authenticate_prometheus=False).test_client()
    for path in ("/hub/metrics", "/hub/api/metrics"):
        assert scrape(client, path).get_value(f"{SPAWN}_count", status="success") == 0


def test_authenticate_prometheus_from_the_environment() -> None:
    environ = {"FLASKHUB_AUTHENTICATE_PROMETHEUS": "false"}
    assert load(environ=environ).authenticate_prometheus is False
    assert load(environ={}).authenticate_prometheus is True


# -- names, labels, buckets -------------------------------------------------------


def test_every_label_value_exists_at_zero_from_start_up(app: Flask) -> None:
    samples = admin_scrape(app)
    for name, statuses in LABELS.items():
        assert samples.label_values(f"{name}_count", "status") == statuses, name
        for status in statuses:
            assert samples.get_value(f"{name}_count", status=status) == 0, (name, status)
            assert samples.get_value(f"{name}_sum", status=status) == 0, (name, status)
    for name in UNLABELLED:
        assert samples.get_value(f"{name}_count") == 0, name


def test_spawn_buckets_are_exactly_the_specified_ones(app: Flask) -> None:
    samples = admin_scrape(app)
    for status in SpawnStatus:
        les = sorted(
            float(dict(labels)["le"])
            for name, labels in samples
            if name == f"{SPAWN}_bucket" and dict(labels)["status"] == status
        )
        assert les == BUCKETS


def test_spawn_buckets_setting(make_app: Callable[..., Flask]) -> None:
    app = make_app(spawn_duration_buckets=[1, 90])
    les = {
        dict(labels)["le"]
        for name, labels in admin_scrape(app)
        if name == f"{SPAWN}_bucket" and dict(labels)["status"] == "success"
    }
    assert les == {"1.0", "90.0", "+Inf"}


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("spawn_duration_buckets", []),
        ("spawn_duration_buckets", [0, 1]),
        ("spawn_duration_buckets", [-1, 1]),
        ("spawn_duration_buckets", [2, 1]),
        ("spawn_duration_buckets", [1, 1]),
        ("spawn_duration_buckets", ["1"]),
        ("spawn_duration_buckets", [True]),
        ("spawn_duration_buckets", "5"),
        ("metrics_prefix", ""),
        ("metrics_prefix", "1hub"),
        ("metrics_prefix", "my-hub"),
        ("authenticate_prometheus", "maybe"),
    ],
)
def test_bad_metrics_settings_stop_start_up(setting: str, value: Any) -> None:
    with pytest.raises(ConfigError, match=setting):
        load(environ={}, overrides={setting: value})


def test_metrics_prefix(make_app: Callable[..., Flask]) -> None:
    app = make_app(metrics_prefix="flaskhub")
    client = app.test_client()
    client.get("/hub/api")
    samples = admin_scrape(app, client)
    names = {name for name, _labels in samples}
    assert {n for n in names if not n.startswith("flaskhub_")} == set()
    assert samples.get_value("flaskhub_server_spawn_duration_seconds_count", status="failure") == 0
    assert samples.get_value("flaskhub_running_servers") == 0
    assert samples.get_value(
        "flaskhub_request_duration_seconds_count", method="GET", handler=ROOT_HANDLER, code="200"
    )


def test_request_metrics_are_labelled_by_jupyterhubs_handler_names(app: Flask) -> None:
    client = app.test_client()
    for name in ("alice", "bob", "carol"):
        assert client.get(f"/hub/api/users/{name}").status_code == 403
    client.post("/hub/api/no-such-thing")
    client.post("/hub/no-such-page")
    client.options("/hub/api/users/alice")
    client.put("/hub/api/users/alice/password", json={})
    samples = admin_scrape(app, client)
    handlers = samples.label_values(f"{REQUESTS}_count", "handler")
    assert USER_HANDLER in handlers
    assert not [h for h in handlers if "alice" in h or "bob" in h or "no-such" in h]
    labels = {"method": "GET", "handler": USER_HANDLER, "code": "403"}
    assert samples.get_value(f"{REQUESTS}_count", **labels) == 3
    api404 = {"method": "POST", "handler": "jupyterhub.apihandlers.base.API404", "code": "404"}
    assert samples.get_value(f"{REQUESTS}_count", **api404) == 1
    page404 = {"method": "POST", "handler": "jupyterhub.handlers.base.Template404", "code": "404"}
    assert samples.get_value(f"{REQUESTS}_count", **page404) == 1
    options = {"method": "OPTIONS", "handler": USER_HANDLER, "code": "200"}
    assert samples.get_value(f"{REQUESTS}_count", **options) == 1
    # A rule JupyterHub has no handler for keeps its pattern.
    assert "/hub/api/users/<name>/password" in handlers
    label_names = {frozenset(dict(labels)) for name, labels in samples if name.startswith(REQUESTS)}
    assert label_names == {
        frozenset({"method", "handler", "code"}),
        frozenset({"method", "handler", "code", "le"}),
    }


def test_a_request_that_raises_is_counted_as_the_500_it_gets(app: Flask) -> None:
    def boom() -> str:
        raise RuntimeError("injected")

    app.add_url_rule("/hub/boom", "boom", boom)
    client = app.test_client()
    try:
        assert client.get("/hub/boom").status_code == 500
    except RuntimeError:
        pass  # a testing app hands the exception to the client after answering 500
    samples = admin_scrape(app, client)
    labels = {"method": "GET", "handler": "/hub/boom", "code": "500"}
    assert samples.get_value(f"{REQUESTS}_count", **labels) == 1


# FlaskHub's own rules: JupyterHub routes nothing there, so they keep their pattern.
OWN_RULES = {
    "/hub/api/openapi.json",
    "/hub/api/users/<name>/password",
    "/hub/api/users/<name>/system-account",
    "/hub/favicon.ico",
}


def test_every_rule_has_a_jupyterhub_handler_name_or_is_our_own(app: Flask) -> None:
    rules = {rule.rule for rule in app.url_map.iter_rules()}
    assert rules - set(HANDLER_NAMES) == OWN_RULES
    assert set(HANDLER_NAMES) - rules == set()  # no stale entries
    assert all(name.count(".") >= 2 for name in HANDLER_NAMES.values())


# -- gauges computed at scrape time -------------------------------------------------


def test_state_gauges_are_computed_from_the_database(app: Flask) -> None:
    states = [
        (ServerState.RUNNING, "http://127.0.0.1:1"),
        (ServerState.RUNNING, "http://127.0.0.1:2"),
        (ServerState.RUNNING, None),  # not routed yet: neither ready nor pending
        (ServerState.SPAWNING, None),
        (ServerState.STOPPING, "http://127.0.0.1:3"),
        (ServerState.STOPPED, None),
        (ServerState.FAILED, None),
    ]
    users = get_users(app).create_many([f"user{i}" for i in range(len(states))])
    with get_db(app).write() as session:
        for user, (state, url) in zip(users, states, strict=True):
            session.add(Server(user_id=user.id, name="", state=state, url=url))
    samples = admin_scrape(app)  # creates the admin: one user more
    assert samples.get_value("jupyterhub_total_users") == len(states) + 1
    assert samples.get_value("jupyterhub_running_servers") == 2
    expected = {"active": 4, "pending": 2, "spawn_pending": 1, "stop_pending": 1, "ready": 2}
    for state, count in expected.items():
        assert samples.get_value("jupyterhub_servers", state=state) == count, state
    assert expected == get_servers(app).counts()


def test_active_users_by_period_come_from_last_activity(app: Flask) -> None:
    now = datetime.now(UTC)
    ages = {"hour": timedelta(hours=1), "week": timedelta(days=6), "month": timedelta(days=20)}
    users = get_users(app)
    users.create_many([*ages, "never", "long-ago"])
    for name, age in {**ages, "long-ago": timedelta(days=90)}.items():
        user = users.get(name)
        assert user is not None
        users.record_activity(user.id, now - age, {})
    samples = admin_scrape(app)
    # The admin scraping with their own token is active now too (JupyterHub's).
    expected = {"24h": 2, "7d": 3, "30d": 4}
    for period, count in expected.items():
        assert samples.get_value("jupyterhub_active_users", period=period) == count, period


# -- the recorder the lifecycle reports to -------------------------------------------


def test_the_servers_report_to_the_metrics_recorder(app: Flask) -> None:
    recorder = app.extensions["flaskhub.recorder"]
    assert isinstance(recorder, MetricsRecorder)
    assert get_servers(app).recorder is recorder


@pytest.mark.parametrize(
    ("hook", "args", "sample", "labels"),
    [
        ("spawn", (SpawnStatus.THROTTLED, 0.7), SPAWN, {"status": "throttled"}),
        ("spawn", (SpawnStatus.ALREADY_PENDING, 0.7), SPAWN, {"status": "already-pending"}),
        ("spawn", (SpawnStatus.TOO_MANY_USERS, 0.7), SPAWN, {"status": "too-many-users"}),
        ("proxy_add", (False, 0.7), "jupyterhub_proxy_add_duration_seconds", {"status": "failure"}),
        (
            "proxy_delete",
            (True, 0.7),
            "jupyterhub_proxy_delete_duration_seconds",
            {"status": "success"},
        ),
        ("server_stop", (False, 0.7), "jupyterhub_server_stop_seconds", {"status": "failure"}),
        (
            "server_poll",
            (False, 0.7),
            "jupyterhub_server_poll_duration_seconds",
            {"status": "stopped"},
        ),
        ("check_routes", (0.7,), "jupyterhub_check_routes_duration_seconds", {}),
        ("proxy_poll", (0.7,), "jupyterhub_proxy_poll_duration_seconds", {}),
    ],
)
def test_each_recorder_hook_observes_one_sample(
    app: Flask, hook: str, args: tuple[Any, ...], sample: str, labels: dict[str, str]
) -> None:
    before = admin_scrape(app)
    getattr(get_servers(app).recorder, hook)(*args)
    after = admin_scrape(app)
    changed = {
        key
        for key, value in after.items()
        if key[0].endswith("_count") and key[0] != f"{REQUESTS}_count" and before.get(key) != value
    }
    assert changed == {(f"{sample}_count", frozenset(labels.items()))}
    assert after.delta(before, f"{sample}_sum", **labels) == pytest.approx(0.7)
    if sample == SPAWN:
        assert after.delta(before, f"{sample}_bucket", le="0.5", **labels) == 0
        assert after.delta(before, f"{sample}_bucket", le="1.0", **labels) == 1


class FakeProxy:
    """A proxy with no routes whose add_route fails or works."""

    api_url = "http://127.0.0.1:1"

    def __init__(self, fail: bool) -> None:
        self.fail = fail
        self.added: list[str] = []

    def get_all_routes(self) -> dict[str, Any]:
        return {}

    def add_route(self, prefix: str, target: str, data: dict[str, Any]) -> None:
        if self.fail:
            raise ProxyError("refused")
        self.added.append(prefix)


class FakeProxies(ProxyInstances):
    """One FakeProxy as the hub's only proxy instance."""

    def __init__(self, fail: bool) -> None:
        super().__init__([FakeProxy.api_url], "token")
        self.fake = FakeProxy(fail)

    def _client(self, url: str) -> Any:
        return self.fake


@pytest.mark.parametrize("fail", [False, True])
def test_check_routes_reports_poll_adds_and_duration(app: Flask, fail: bool) -> None:
    servers = get_servers(app)
    servers.routes.use(FakeProxies(fail))
    before = admin_scrape(app)
    if fail:
        with pytest.raises(ProxyError):
            servers.check_routes()
    else:
        assert servers.check_routes() == {"added": 1, "deleted": 0}
    after = admin_scrape(app)
    add = "jupyterhub_proxy_add_duration_seconds_count"
    assert after.delta(before, "jupyterhub_proxy_poll_duration_seconds_count") == 1
    assert after.delta(before, add, status="success") == (0 if fail else 1)
    assert after.delta(before, add, status="failure") == (1 if fail else 0)
    assert after.delta(before, "jupyterhub_check_routes_duration_seconds_count") == (
        0 if fail else 1
    )


def test_two_apps_in_one_process_keep_their_own_metrics(make_app: Callable[..., Flask]) -> None:
    first, second = make_app(), make_app()
    first_before, second_before = admin_scrape(first), admin_scrape(second)
    get_servers(first).recorder.spawn(SpawnStatus.SUCCESS, 1.0)
    assert admin_scrape(first).delta(first_before, f"{SPAWN}_count", status="success") == 1
    assert admin_scrape(second).delta(second_before, f"{SPAWN}_count", status="success") == 0


# -- start-up and event loop ----------------------------------------------------------


def test_the_first_worker_observes_the_start_up_once(
    app: Flask, make_app: Callable[..., Flask], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other_worker = make_app()
    assert not observe_startup(app)  # not started by `flaskhub run`: nothing to observe
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    for name, value in startup_env(time.time() - 3.0, 0.25).items():
        monkeypatch.setenv(name, value)
    assert observe_startup(app)
    assert not observe_startup(other_worker)
    assert not observe_startup(app)
    # The metrics of these apps were made in-process: read them that way.
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR")
    samples = admin_scrape(app)
    startup = "jupyterhub_hub_startup_duration_seconds"
    assert samples.get_value(f"{startup}_count") == 1
    assert 3.0 <= samples.get_value(f"{startup}_sum") < 60
    assert samples.get_value("jupyterhub_init_spawners_duration_seconds_sum") == 0.25
    assert admin_scrape(other_worker).get_value(f"{startup}_count") == 0


def test_the_event_loop_sampler_sees_a_blocked_loop(app: Flask) -> None:
    histogram = "jupyterhub_event_loop_interval_seconds"
    sampler = start_event_loop_sampler(app)
    try:
        gevent.sleep(0.3)  # a responsive loop: wake-ups on time
        quiet = admin_scrape(app)
        assert quiet.get_value(f"{histogram}_count") >= 2
        assert quiet.get_value(f"{histogram}_bucket", le="0.05") == quiet.get_value(
            f"{histogram}_count"
        )
        time.sleep(0.4)  # not gevent's: blocks the whole loop, as a blocking call would
        gevent.sleep(0.15)
    finally:
        sampler.kill()
    blocked = admin_scrape(app)
    assert blocked.delta(quiet, f"{histogram}_bucket", le="0.25") < blocked.delta(
        quiet, f"{histogram}_count"
    )
    assert blocked.get_value(f"{histogram}_sum") >= 0.35
