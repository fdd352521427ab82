"""Issue 21, finding 8: shares and filtered scopes name a server or user by its stable
id, so a rename carries them and a new user of an old name gets nothing."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from flask import Flask
from sqlalchemy import create_engine, text
from werkzeug.test import TestResponse

from app.auth.session import current_identity
from app.db import get_db
from app.migrations import alembic_config, upgrade
from app.models import Server
from app.renames import names_user, renamed_scope
from app.roles import get_roles
from app.users import get_users


class Hub:
    """A hub app, driven through its API as its admin."""

    def __init__(self, app: Flask, admin_token: str) -> None:
        self.app = app
        self.client = app.test_client()
        self.admin_token = admin_token

    def api(self, method: str, path: str, token: str | None = None, **kwargs: Any) -> TestResponse:
        headers = {"Authorization": f"token {token or self.admin_token}"}
        return self.client.open(f"/hub/api{path}", method=method, headers=headers, **kwargs)

    def add_user(self, name: str) -> None:
        """A user with a default server (its row: what a share names)."""
        assert self.api("POST", f"/users/{name}").status_code == 201
        user = get_users(self.app).get(name)
        assert user is not None
        with get_db(self.app).write() as session:
            session.add(Server(user_id=user.id, name=""))

    def rename(self, old: str, new: str) -> None:
        response = self.api("PATCH", f"/users/{old}", json={"name": new})
        assert response.status_code == 200, response.text

    def opens(self, token: str, server: str) -> bool:
        """Whether the token may open the server ("owner/name")."""
        headers = {"Authorization": f"token {token}"}
        with self.app.test_request_context("/hub/api/user", headers=headers):
            return current_identity().has_scope("access:servers", server.split("/")[0], server)


@pytest.fixture
def hub(make_app: Callable[..., Flask], make_token: Callable[..., str]) -> Hub:
    # As JupyterHub's sharing docs: users may share their servers once a role says so.
    user_role = {
        "name": "user",
        "scopes": ["self", "shares!user", "read:users:name", "read:groups:name"],
    }
    app = make_app(load_roles=[user_role])
    get_roles(app).load([user_role])  # as `flaskhub run` does before the workers start
    hub = Hub(app, make_token(app, "admin", admin=True))
    for name in ("carol", "bob"):
        hub.add_user(name)
    return hub


def test_a_share_follows_its_server_through_a_rename(
    hub: Hub, make_token: Callable[..., str]
) -> None:
    carol = make_token(hub.app, "carol")
    assert hub.api("POST", "/shares/carol/", carol, json={"user": "bob"}).status_code == 200
    bob = make_token(hub.app, "bob")
    assert hub.opens(bob, "carol/")
    hub.rename("carol", "carla")
    hub.add_user("carol")  # a new user of the old name
    assert not hub.opens(bob, "carol/")
    assert hub.opens(bob, "carla/")
    shared = hub.api("GET", "/users/bob/shared").json["items"]
    assert [s["scopes"] for s in shared] == [["access:servers!server=carla/"]]
    assert [s["server"]["user"]["name"] for s in shared] == ["carla"]
    # A->B, B->A: the names swap, the share stays with the server it was made for.
    hub.rename("carla", "tmp")
    hub.rename("carol", "carla")
    hub.rename("tmp", "carol")
    assert hub.opens(bob, "carol/") and not hub.opens(bob, "carla/")


def test_a_tokens_filters_follow_a_rename(hub: Hub, make_token: Callable[..., str]) -> None:
    carol = make_token(hub.app, "carol")
    assert hub.api("POST", "/shares/carol/", carol, json={"user": "bob"}).status_code == 200
    narrow = make_token(hub.app, "bob", scopes=["access:servers!server=carol/"])
    by_user = make_token(hub.app, "bob", scopes=["access:servers!user=carol"])
    hub.rename("carol", "carla")
    hub.add_user("carol")
    hub.api("POST", "/shares/carol/", make_token(hub.app, "carol"), json={"user": "bob"})
    # bob may open the new carol's server now (she shared it), but not with tokens that
    # were made for the old carol's.
    assert hub.opens(make_token(hub.app, "bob"), "carol/")
    assert not hub.opens(narrow, "carol/") and not hub.opens(by_user, "carol/")
    assert hub.opens(narrow, "carla/") and hub.opens(by_user, "carla/")


def test_a_deleted_users_name_gives_a_new_user_nothing(
    hub: Hub, make_token: Callable[..., str]
) -> None:
    carol = make_token(hub.app, "carol")
    assert hub.api("POST", "/shares/carol/", carol, json={"user": "bob"}).status_code == 200
    narrow = make_token(hub.app, "bob", scopes=["access:servers!server=carol/", "read:users"])
    only = make_token(hub.app, "bob", scopes=["access:servers!server=carol/"])
    assert hub.api("DELETE", "/users/carol").status_code == 204
    hub.add_user("carol")
    hub.api("POST", "/shares/carol/", make_token(hub.app, "carol"), json={"user": "bob"})
    assert not hub.opens(narrow, "carol/")
    # A token left with nothing is gone, never "no scopes", which would mean all of bob's.
    assert hub.api("GET", "/user", only).status_code == 403
    assert hub.api("GET", "/user", narrow).status_code == 200


def test_the_migration_keeps_shares_by_id(tmp_path: Path) -> None:
    """0014 drops the names stored in shares' and codes' scopes (and downgrade puts back
    those of the servers as named then)."""
    url = f"sqlite:///{tmp_path / 'hub.sqlite'}"
    upgrade(url, "0013")  # the schema before 0014
    engine = create_engine(url)
    # In SQL: today's models have columns (0015) the schema of 0013 has not.
    filtered = json.dumps(["access:servers!server=carol/", "read:servers!server=carol/"])
    with engine.begin() as conn:
        for user_id, name in ((1, "carol"), (2, "bob")):
            conn.execute(
                text(
                    "INSERT INTO users (id, name, admin, created, cookie_id, storage_id)"
                    " VALUES (:id, :name, 0, '2026-01-01 00:00:00', :name, :name)"
                ),
                {"id": user_id, "name": name},
            )
        conn.execute(
            text(
                "INSERT INTO servers (id, user_id, name, spawner_state, user_options)"
                " VALUES (1, 1, '', '{}', '{}')"
            )
        )
        conn.execute(
            text(
                "INSERT INTO shares (created_at, owner_id, server_id, user_id, scopes)"
                " VALUES ('2026-01-01 00:00:00', 1, 1, 2, :scopes)"
            ),
            {"scopes": filtered},
        )
    upgrade(url, "0014")
    with engine.connect() as conn:
        stored = conn.execute(text("SELECT scopes FROM shares")).scalar_one()
    assert json.loads(stored) == ["access:servers", "read:servers"]
    with engine.begin() as conn:
        conn.execute(text("UPDATE users SET name = 'carla' WHERE id = 1"))
    command.downgrade(alembic_config(url), "0013")
    with engine.connect() as conn:
        stored = conn.execute(text("SELECT scopes FROM shares")).scalar_one()
    assert json.loads(stored) == ["access:servers!server=carla/", "read:servers!server=carla/"]
    engine.dispose()


def test_sharing_with_the_owner_is_a_400(hub: Hub, make_token: Callable[..., str]) -> None:
    # Issue 21, finding 10 (here with the other sharing tests of this issue).
    carol = make_token(hub.app, "carol")
    response = hub.api("POST", "/shares/carol/", carol, json={"user": "carol"})
    assert response.status_code == 400
    assert "its owner" in response.json["message"]
    assert hub.api("GET", "/shares/carol", carol).json["_pagination"]["total"] == 0


def test_a_group_share_may_include_the_owner(hub: Hub, make_token: Callable[..., str]) -> None:
    # The owner's team may share her server: she gains nothing by it, the others do.
    assert hub.api("POST", "/groups/team", json={"users": ["carol", "bob"]}).status_code == 201
    carol = make_token(hub.app, "carol")
    granted = hub.api("POST", "/shares/carol/", carol, json={"group": "team"})
    assert granted.status_code == 200, granted.text
    assert hub.opens(make_token(hub.app, "bob"), "carol/")


@pytest.mark.parametrize(
    ("scope", "renamed"),
    [
        ("access:servers!server=carol/", "access:servers!server=carla/"),
        ("access:servers!server=carol/lab", "access:servers!server=carla/lab"),
        ("read:users!user=carol", "read:users!user=carla"),
        # Names that start like carol's are someone else's.
        ("access:servers!server=carolyn/", "access:servers!server=carolyn/"),
        ("read:users!user=carolyn", "read:users!user=carolyn"),
        ("read:users!user=car", "read:users!user=car"),
        ("read:groups!group=carol", "read:groups!group=carol"),
        ("read:users", "read:users"),
    ],
)
def test_renamed_scope(scope: str, renamed: str) -> None:
    assert renamed_scope(scope, "carol", "carla") == renamed
    assert names_user(scope, "carol") == (scope != renamed)


def test_a_deleted_groups_name_gives_a_new_group_nothing(
    hub: Hub, make_token: Callable[..., str]
) -> None:
    assert hub.api("POST", "/groups/team", json={"users": ["carol"]}).status_code == 201
    # An admin's token for the team's members only.
    scopes = ["admin:servers!group=team", "read:users!user=boss"]
    boss = make_token(hub.app, "boss", admin=True, scopes=scopes)
    assert hub.api("DELETE", "/users/carol/server", boss).status_code != 403
    assert hub.api("DELETE", "/groups/team").status_code == 204
    hub.add_user("dave")
    assert hub.api("POST", "/groups/team", json={"users": ["dave"]}).status_code == 201
    assert hub.api("DELETE", "/users/dave/server", boss).status_code == 403
    assert hub.api("GET", "/users/boss", boss).status_code == 200
