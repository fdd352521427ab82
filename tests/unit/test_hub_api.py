"""/hub/api/user's token fields, the server model's full fields and state, health, shutdown."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from flask import Flask
from sqlalchemy import select

from app.db import get_db
from app.models import Server, ServerState, User
from app.users import get_users


@pytest.fixture
def app(make_app: Callable[..., Flask]) -> Flask:
    app = make_app()
    get_users(app).create_many(["alice"])
    with get_db(app).write() as session:
        alice = session.scalar(select(User).where(User.name == "alice"))
        session.add(
            Server(
                user=alice,
                name="",
                state=ServerState.RUNNING,
                url="http://127.0.0.1:1",
                spawner_state={"pid": 4242},
            )
        )
    return app


def call(app: Flask, method: str, path: str, token: str, **kwargs: object):  # type: ignore[no-untyped-def]
    headers = {"Authorization": f"token {token}"}
    return app.test_client().open(f"/hub/api{path}", method=method, headers=headers, **kwargs)


def test_user_model_names_the_token_and_shows_no_state_to_its_owner(
    app: Flask, make_token: Callable[..., str]
) -> None:
    token = make_token(app, "alice")
    me = call(app, "GET", "/user", token).json
    assert me["token_id"].startswith("a") and me["session_id"] is None
    server = me["servers"][""]
    assert server["full_name"] == "alice/"
    assert server["full_url"].endswith("/user/alice/") and server["full_url"].startswith("http")
    assert server["full_progress_url"].endswith("/hub/api/users/alice/server/progress")
    assert "state" not in server


def test_admin_server_state_shows_the_spawners_state(
    app: Flask, make_token: Callable[..., str]
) -> None:
    admin = make_token(app, "admin", admin=True)
    assert call(app, "GET", "/users/alice", admin).json["servers"][""]["state"] == {"pid": 4242}
    reader = make_token(app, "admin", admin=True, scopes=["read:servers"])
    assert "state" not in call(app, "GET", "/users/alice", reader).json["servers"][""]


def test_health_names_what_is_unreachable(app: Flask) -> None:
    # Nothing listens on this hub's proxy API port.
    response = app.test_client().get("/hub/api/health")
    assert response.status_code == 503
    assert response.json == {"status": "failing", "database": "ok", "proxy": "unreachable"}


@pytest.mark.parametrize(
    ("scopes", "body", "status", "fragment"),
    [
        (["read:users"], None, 403, "requires [shutdown]"),
        ([], {"servers": "yes"}, 400, "must be true or false"),
        ([], {"later": True}, 400, 'Send nothing, or {"servers"'),
        ([], {"proxy": False}, 400, "needs an external proxy"),
    ],
)
def test_bad_shutdowns_are_refused(
    app: Flask,
    make_token: Callable[..., str],
    scopes: list[str],
    body: object,
    status: int,
    fragment: str,
) -> None:
    token = make_token(app, "admin", admin=True, scopes=scopes)
    response = call(app, "POST", "/shutdown", token, json=body)
    assert response.status_code == status
    assert fragment in response.json["message"]
