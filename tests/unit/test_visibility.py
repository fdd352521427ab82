"""Filtered scopes on lists and reads, and the model each read scope shows (JupyterHub's)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select
from werkzeug.test import TestResponse

from app.db import get_db
from app.groups import get_groups
from app.models import Server, ServerState, User
from app.roles import get_roles
from app.users import get_users

Get = Callable[..., TestResponse]


@pytest.fixture
def app(make_app: Callable[..., Flask]) -> Flask:
    """alice and bob in team, carol not; alice has a running default and a stopped lab."""
    app = make_app(allow_named_servers=True)
    get_users(app).create_many(["alice", "bob", "carol"])
    get_groups(app).create("team", members=["alice", "bob"])
    get_groups(app).create("ops", members=["carol"])
    with get_db(app).write() as session:
        alice = session.scalar(select(User).where(User.name == "alice"))
        session.add(Server(user=alice, name="", state=ServerState.RUNNING, url="http://x:1"))
        session.add(Server(user=alice, name="lab", state=ServerState.RUNNING, url="http://x:2"))
    return app


@pytest.fixture
def get(app: Flask, make_token: Callable[..., str]) -> Get:
    """get(path, *scopes): GET /hub/api<path> with an admin's token limited to scopes."""
    client = app.test_client()

    def call(path: str, *scopes: str) -> TestResponse:
        token = make_token(app, "admin", admin=True, scopes=scopes)
        return client.get(f"/hub/api{path}", headers={"Authorization": f"token {token}"})

    return call


@pytest.mark.parametrize(
    ("scope", "fields"),
    [
        ("read:users:name", {"kind", "name", "admin", "user_info"}),
        ("read:users:groups", {"kind", "name", "groups"}),
        ("read:users:activity", {"kind", "name", "last_activity"}),
        # read:servers implies read:users:name.
        ("read:servers", {"kind", "name", "admin", "user_info", "servers"}),
        ("read:roles:users", {"kind", "name", "roles", "admin"}),
        (
            "read:users",
            {"kind", "name", "admin", "roles", "groups", "server", "pending", "created"}
            | {"last_activity", "user_info"},
        ),
        (
            "read:users!user=alice",
            {"kind", "name", "admin", "roles", "groups", "server"}
            | {"pending", "created", "last_activity", "user_info"},
        ),
        ("read:users:name!group=team", {"kind", "name", "admin", "user_info"}),
    ],
)
def test_each_read_scope_alone_shows_its_fields(get: Get, scope: str, fields: set[str]) -> None:
    response = get("/users/alice", scope)
    assert response.status_code == 200, response.text
    assert set(response.json) == fields


def test_a_read_scope_on_someone_else_is_403(get: Get) -> None:
    response = get("/users/carol", "read:users!group=team")
    assert response.status_code == 403
    assert "requires any of [read:users, read:users:name" in response.json["message"]


def test_servers_are_shown_one_by_one(get: Get) -> None:
    one = get("/users/alice", "read:servers!server=alice/lab").json
    assert set(one) == {"kind", "name", "servers"} and list(one["servers"]) == ["lab"]
    both = get("/users/alice", "read:servers!user=alice").json
    assert sorted(both["servers"]) == ["", "lab"]


def names(response: TestResponse) -> list[str]:
    assert response.status_code == 200, response.text
    return [user["name"] for user in response.json]


@pytest.mark.parametrize(
    ("scopes", "expected"),
    [
        (("list:users!group=team",), ["alice", "bob"]),
        (("list:users!user=carol",), ["carol"]),
        (("list:users!user=carol", "list:users!group=team"), ["alice", "bob", "carol"]),
        (("list:users",), ["admin", "alice", "bob", "carol"]),
    ],
)
def test_list_users_honours_list_filters(get: Get, scopes: tuple[str], expected: list[str]) -> None:
    assert names(get("/users?sort=name", *scopes)) == expected


def test_a_listed_user_shows_only_what_list_users_shows(get: Get) -> None:
    listed = get("/users", "list:users!group=team").json
    assert listed == [
        {"kind": "user", "name": "alice", "admin": False, "user_info": None},
        {"kind": "user", "name": "bob", "admin": False, "user_info": None},
    ]
    more = get("/users?name_filter=alice", "list:users", "read:users:activity!user=alice").json
    assert set(more[0]) == {"kind", "name", "admin", "user_info", "last_activity"}


def test_a_server_filter_cannot_list_users(get: Get) -> None:
    response = get("/users", "list:users!server=alice/lab")
    assert response.status_code == 403
    assert "cannot list users" in response.json["message"]


def test_a_role_with_a_group_filter_lists_the_team(
    app: Flask, make_token: Callable[..., str]
) -> None:
    get_roles(app).load(
        [{"name": "team-lead", "scopes": ["list:users!group=team"], "users": ["lead"]}]
    )
    token = make_token(app, "lead")
    client = app.test_client()
    response = client.get("/hub/api/users", headers={"Authorization": f"token {token}"})
    assert names(response) == ["alice", "bob"]


@pytest.mark.parametrize(
    ("scopes", "expected"),
    [
        (("read:groups:name", "list:groups"), [{"kind": "group", "name": "team"}]),
        (
            ("list:groups!group=team", "read:roles:groups"),
            [{"kind": "group", "name": "team", "roles": []}],
        ),
    ],
)
def test_groups_show_what_their_scopes_show(
    get: Get, scopes: tuple[str], expected: list[dict[str, Any]]
) -> None:
    listed = get("/groups", *scopes).json
    assert [g for g in listed if g["name"] == "team"] == expected
    assert get("/groups/team", *scopes).json == expected[0]
