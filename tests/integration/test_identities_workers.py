"""A hub of two workers keeps each API token's Identity between requests (app.identities),
and a change made through one worker is refused by the very next request in each.

For each change: requests with the token until both workers have answered it (so both
keep its Identity), the change through the API, then requests until both workers have
answered again: every one of them must be refused. Each request opens a connection of
its own, and the access log says which worker served it. On SQLite and PostgreSQL (the
triggers of migration 0017 are written for each).
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
import requests

from tests.integration.conftest import Hub, wait_for
from tests.postgres_server import Postgres

pytestmark = pytest.mark.integration

ROLES = [
    {"name": "reader", "scopes": ["read:users"]},
    {"name": "team-reader", "scopes": ["read:users"], "groups": ["readers"]},
]
# Requests until both workers have served one (the kernel hands connections out).
MAX_TRIES = 80


@dataclass
class Served:
    status: int
    worker: str


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def hub(
    request: pytest.FixtureRequest, postgres: Postgres, hub_factory: Callable[..., Hub]
) -> Iterator[Hub]:
    settings: dict[str, object] = {"workers": 2, "load_roles": ROLES}
    if request.param == "postgresql":
        settings["db_url"] = postgres.create_database()
    yield hub_factory(**settings)


def served(hub: Hub, token: str, path: str) -> Served:
    """GET /hub/api<path> with the token on a new connection, and the worker that served it."""
    probe = secrets.token_hex(8)
    response = requests.get(
        f"{hub.hub_url}/hub/api{path}?probe={probe}",
        headers={"Authorization": f"token {token}", "Connection": "close"},
        timeout=30,
    )
    line = re.compile(rf"^\[I \S+ (\d+) \S+ gunicorn\.access\] .*\?probe={probe} ", re.M)
    worker = wait_for(lambda: (found := line.search(hub.log())) and found.group(1), timeout=10)
    return Served(response.status_code, worker)


def in_every_worker(hub: Hub, token: str, path: str) -> set[int]:
    """The statuses of requests made until each of the two workers has served one."""
    workers: set[str] = set()
    statuses: set[int] = set()
    for _ in range(MAX_TRIES):
        answer = served(hub, token, path)
        workers.add(answer.worker)
        statuses.add(answer.status)
        if len(workers) == 2:
            return statuses
    raise AssertionError(f"{MAX_TRIES} requests all served by worker {workers}")


def admin(hub: Hub, method: str, path: str, **kwargs: object) -> requests.Response:
    response = hub.api(method, path, **kwargs)  # type: ignore[arg-type]
    assert response.status_code < 300, response.text
    return response


def user(hub: Hub, name: str, **model: object) -> str:
    """A new user (with the given model fields) and a token of theirs."""
    admin(hub, "POST", f"/users/{name}", json=model)
    return hub.token(name)


def refused_after(hub: Hub, token: str, path: str, *change: str, **body: object) -> None:
    """GET path with the token: allowed in both workers, then after the change (an admin's
    request: method, path and a JSON body) refused in both."""
    assert in_every_worker(hub, token, path) == {200}  # kept by both workers now
    admin(hub, *change, json=body or None)
    assert in_every_worker(hub, token, path) == {403}


def test_a_revoked_token(hub: Hub) -> None:
    token = user(hub, "tina")
    (listed,) = admin(hub, "GET", "/users/tina/tokens").json()["api_tokens"]
    refused_after(hub, token, "/users/tina", "DELETE", f"/users/tina/tokens/{listed['id']}")


def test_a_removed_role(hub: Hub) -> None:
    token = user(hub, "rita")
    admin(hub, "PATCH", "/users/rita", json={"roles": ["reader"]})
    refused_after(hub, token, "/users/admin", "PATCH", "/users/rita", roles=[])


def test_a_removed_group(hub: Hub) -> None:
    token = user(hub, "gus")
    admin(hub, "POST", "/groups/readers/users", json={"users": ["gus"]})
    refused_after(hub, token, "/users/admin", "DELETE", "/groups/readers")


def test_a_deleted_user(hub: Hub) -> None:
    token = user(hub, "dora")
    refused_after(hub, token, "/users/dora", "DELETE", "/users/dora")


def test_a_lost_admin_flag(hub: Hub) -> None:
    token = user(hub, "ada", admin=True)
    refused_after(hub, token, "/users/admin", "PATCH", "/users/ada", admin=False)


def test_a_revoked_share(hub: Hub) -> None:
    token = user(hub, "sam")
    user(hub, "owen")
    admin(hub, "POST", "/users/owen/server")
    wait_for(lambda: admin(hub, "GET", "/users/owen").json()["servers"][""]["ready"], timeout=60)
    # The model, read through the driver (app.db.Database.rows), typed as JupyterHub's.
    model = admin(hub, "GET", "/users/owen").json()
    assert model["admin"] is False and model["roles"] == ["user"] and model["groups"] == []
    assert model["created"].endswith("Z") and model["servers"][""]["started"].endswith("Z")
    assert model["servers"][""]["user_options"] == {} and model["server"] == "/user/owen/"
    # A share of read:servers is enough to read owen's model (its server).
    admin(hub, "POST", "/shares/owen/", json={"user": "sam", "scopes": ["read:servers"]})
    try:
        refused_after(hub, token, "/users/owen", "PATCH", "/shares/owen/", user="sam")
    finally:
        hub.api("DELETE", "/users/owen/server")
