"""The database unreachable for 10 seconds (PostgreSQL stopped, then started again).

While it is down the API answers 503 with a message, pages say so, the
reconcile loop keeps going; once it is back every worker reconnects by itself
(pool_pre_ping) and nothing was lost: users, servers still running and routed, and
a spawn that was under way is ready.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
import requests
from sqlalchemy import create_engine, text

from tests.helpers import wait_for
from tests.integration.conftest import Hub, login, server_pids
from tests.postgres_server import Postgres

pytestmark = pytest.mark.integration

OUTAGE_SECONDS = 10
# Its spawn (tests/spawners.py: SLOW_SECONDS, with progress) runs into the outage.
SLOW = "slow-outage"
# Names no other test module uses: server_pids looks at every process of the machine.
USERS = ["outage-alice", "outage-bob", "outage-carol", SLOW]


@pytest.fixture(scope="module")
def pg_hub(postgres: Postgres, hub_factory: Callable[..., Hub]) -> Hub:
    """A hub on PostgreSQL with two workers (set up after, so stopped before, the cluster)."""
    return hub_factory(
        db_url=postgres.create_database(),
        workers=2,
        spawner="tests.spawners:FaultSpawner",
        slow_spawn_timeout=0.5,
    )


def _lease_expiry(url: str) -> object:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(
                text("SELECT expires_at FROM leases WHERE name = 'reconcile'")
            ).scalar()
    finally:
        engine.dispose()


def _ready(hub: Hub, name: str) -> bool:
    server = hub.api("GET", f"/users/{name}").json()["servers"].get("")
    return bool(server and server["ready"])


def _answers_while_down(hub: Hub, browser: requests.Session) -> None:
    """The API and a page, both answered at once with 503 and a message that says why."""
    api = requests.get(
        f"{hub.public_url}/hub/api/users",
        headers={"Authorization": f"token {hub.admin_token}"},
        timeout=10,
    )
    assert api.status_code == 503, api.text
    assert api.headers["Content-Type"] == "application/json"
    assert "database is unreachable" in api.json()["message"]
    assert api.headers["Retry-After"]
    page = browser.get(f"{hub.public_url}/hub/home", timeout=10)
    assert page.status_code == 503, page.text
    assert page.headers["Content-Type"].startswith("text/html")
    assert "database is unreachable" in page.text
    health = requests.get(f"{hub.public_url}/hub/api/health", timeout=10)
    assert health.status_code == 503
    body = health.json()
    assert (body["database"], body["proxy"]) == ("unreachable", "ok"), body


def test_the_hub_rides_out_the_database_down_for_10_seconds(
    pg_hub: Hub, postgres: Postgres
) -> None:
    hub = pg_hub
    assert hub.api("POST", "/users", json={"usernames": USERS}).status_code == 201
    assert hub.api("POST", "/users/outage-alice/server").status_code in (201, 202)
    wait_for(lambda: _ready(hub, "outage-alice"), timeout=30)
    [pid] = server_pids("outage-alice")
    browser = login(hub, "outage-bob")
    assert browser.get(f"{hub.public_url}/hub/home", timeout=10).status_code == 200

    assert hub.api("POST", f"/users/{SLOW}/server").status_code == 202
    postgres.stop("fast")
    down_since = time.monotonic()
    try:
        # The outage itself lasts OUTAGE_SECONDS; every answer meanwhile is a prompt 503.
        while time.monotonic() - down_since < OUTAGE_SECONDS:
            _answers_while_down(hub, browser)
            # outage-alice's server is not the hub's: CHP keeps routing to it.
            status = hub.get("/user/outage-alice/api/status")
            assert status.status_code in (200, 403), status.text
    finally:
        postgres.start()
    wait_for(lambda: hub.api("GET", "/users", timeout=10).status_code == 200, timeout=30)

    assert hub.api("GET", "/health").json()["status"] == "ok"
    users = {u["name"]: u for u in hub.api("GET", "/users").json()}
    assert set(USERS) <= set(users)
    assert _ready(hub, "outage-alice")
    assert server_pids("outage-alice") == [pid]
    # The spawn that started before the outage finished during it: it waited for the
    # database to record that, and is ready (never left pending).
    wait_for(lambda: hub.api("GET", f"/users/{SLOW}").json()["pending"] is None, timeout=60)
    assert _ready(hub, SLOW)
    assert f"/user/{SLOW}" in hub.routes()
    assert "/user/outage-alice" in hub.routes()
    assert browser.get(f"{hub.public_url}/hub/home", timeout=10).status_code == 200
    # The reconcile loop survived: it renews its lease again.
    url = hub.env["FLASKHUB_DB_URL"]
    first = wait_for(lambda: _lease_expiry(url), timeout=10)
    wait_for(lambda: _lease_expiry(url) != first, timeout=10, interval=0.5)
    # And the hub works as before: a new spawn, a stop.
    assert hub.api("POST", "/users/outage-carol/server").status_code in (201, 202)
    wait_for(lambda: _ready(hub, "outage-carol"), timeout=30)
    assert hub.api("DELETE", "/users/outage-alice/server").status_code == 204
    wait_for(lambda: not server_pids("outage-alice"), timeout=10)
    log = hub.log()
    assert "Reconcile pass skipped: the database is unreachable" in log
    assert "The database is reachable again" in log
    assert postgres.password not in log
