"""app/auth/access: who may log in and who is an admin, for every authenticator."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from werkzeug.test import TestResponse

from app.auth.access import admit, allowed, is_admin
from app.auth.authenticators import AuthResult
from app.config import ConfigError, Settings, load
from app.db import Database
from app.models import User
from app.outcomes import Forbidden
from app.users import UserService, get_users

pytestmark = pytest.mark.usefixtures("clean_env")


def settings(**overrides: Any) -> Settings:
    return load(environ={}, overrides=overrides)


def who(name: str, *groups: str, known: bool = True) -> AuthResult:
    return AuthResult(name, frozenset(groups) if known else None)


@pytest.mark.parametrize(
    ("overrides", "result", "expected"),
    [
        # No list of who may: dummy and password admit whoever they accept.
        ({}, who("alice"), True),
        ({"blocked_users": ["Alice"]}, who("alice"), False),
        ({"allowed_users": ["bob"]}, who("alice"), False),
        ({"allowed_users": [" Alice "]}, who("alice"), True),
        ({"allowed_users": ["bob"], "admin_users": ["alice"]}, who("alice"), True),
        ({"allowed_groups": ["staff"]}, who("alice", "staff", "x"), True),
        ({"allowed_groups": ["staff"]}, who("alice", "students"), False),
        ({"allowed_groups": ["staff"]}, who("alice", known=False), False),
        ({"allowed_groups": ["staff"], "admin_groups": ["ops"]}, who("alice", "ops"), True),
        ({"allowed_groups": ["staff"], "allow_all": True}, who("alice"), True),
        # Blocked wins over everything.
        ({"allow_all": True, "blocked_users": ["alice"]}, who("alice"), False),
        ({"admin_users": ["alice"], "blocked_users": ["alice"]}, who("alice"), False),
        ({"allowed_groups": ["staff"], "blocked_users": ["alice"]}, who("alice", "staff"), False),
    ],
)
def test_allowed(overrides: dict[str, Any], result: AuthResult, expected: bool) -> None:
    assert allowed(settings(**overrides), result) is expected


@pytest.mark.parametrize(
    ("overrides", "result", "expected"),
    [
        ({}, who("alice", "ops"), None),
        ({"admin_users": ["alice"]}, who("alice"), True),
        ({"admin_groups": ["ops"]}, who("alice", "ops"), True),
        ({"admin_groups": ["ops"]}, who("alice", "staff"), False),
        # An authenticator that knows no groups neither grants nor takes away.
        ({"admin_groups": ["ops"]}, who("alice", known=False), None),
        ({"admin_groups": ["ops"], "admin_users": ["alice"]}, who("alice"), True),
    ],
)
def test_is_admin(overrides: dict[str, Any], result: AuthResult, expected: bool | None) -> None:
    assert is_admin(settings(**overrides), result) is expected


def admitted(users: UserService, hub: Settings, result: AuthResult) -> User:
    """admit() in a write of its own, as a login's."""
    with users.db.write() as session:
        return admit(session, hub, result)


def test_admin_groups_reread_at_every_login(db: Database) -> None:
    users, hub = UserService(db), settings(allowed_groups=["staff"], admin_groups=["ops"])
    assert admitted(users, hub, who("alice", "staff", "ops")).admin
    assert not admitted(users, hub, who("alice", "staff")).admin
    assert admitted(users, hub, who("alice", "ops")).admin
    assert users.get("alice").admin  # type: ignore[union-attr]


def test_admin_made_by_api_stays_without_admin_groups(db: Database) -> None:
    users = UserService(db)
    users.get_or_create("alice", admin=True)
    assert admitted(users, settings(), who("alice", "staff")).admin


def test_refused_user_is_not_created(db: Database) -> None:
    users = UserService(db)
    with pytest.raises(Forbidden, match="alice may not use this hub"):
        admitted(users, settings(allowed_users=["bob"]), who("alice"))
    assert users.get("alice") is None


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("allowed_users", [""]),
        ("allowed_users", "alice"),
        ("blocked_users", [3]),
        ("allowed_groups", [" "]),
        ("admin_groups", [None]),
        ("allow_all", "yes"),
        # A name the normalisation refuses could never match: stop, naming the setting.
        ("blocked_users", ["ｍａｌｌｏｒｙ"]),
        ("blocked_users", ["mallory\u00a0"]),
        ("allowed_users", ["\u212aate"]),
        ("admin_users", ["𝐚𝐝𝐚"]),
        ("admin_users", ["no/slash"]),
    ],
)
def test_bad_access_setting_is_named(name: str, value: Any) -> None:
    with pytest.raises(ConfigError, match=f"'{name}'"):
        settings(**{name: value})


# -- through the login form ---------------------------------------------------


@pytest.fixture
def hub(make_app: Callable[..., Flask]) -> Flask:
    return make_app(allowed_users=["bob"], blocked_users=["mallory"], admin_users=["mallory"])


@pytest.mark.parametrize("name", ["alice", "mallory"])
def test_not_allowed_gets_a_403_page(
    hub: Flask, log_in: Callable[..., TestResponse], name: str
) -> None:
    client = hub.test_client()
    response = log_in(client, name)
    assert response.status_code == 403
    assert response.mimetype == "text/html"
    # Exactly a wrong password's answer: the form tells no one whose password is right.
    assert "Invalid username or password." in response.text
    assert "may not use this hub" not in response.text
    assert get_users(hub).get(name) is None
    assert client.get("/hub/home").status_code == 302  # not logged in


def test_allowed_user_logs_in(hub: Flask, log_in: Callable[..., TestResponse]) -> None:
    client = hub.test_client()
    response = log_in(client, "Bob")
    assert response.status_code == 302
    assert client.get("/hub/home").status_code == 200


@pytest.mark.parametrize(
    "name", ["MALLORY", " Mallory ", "ｍａｌｌｏｒｙ", "𝐦𝐚𝐥𝐥𝐨𝐫𝐲", "mallory\u3000", "\u00a0mallory"]
)
def test_blocked_user_gets_in_under_no_variant(
    make_app: Callable[..., Flask], log_in: Callable[..., TestResponse], name: str
) -> None:
    hub = make_app(blocked_users=["Mallory"])
    client = hub.test_client()
    response = log_in(client, name)
    assert response.status_code == 403
    assert client.get("/hub/home").status_code == 302  # not logged in
    assert get_users(hub).count() == 0


@pytest.mark.parametrize(
    ("setting", "result", "expected"),
    [
        ({"admin_users": ["Ada"]}, who("ada"), True),
        ({"admin_users": [" ADA "]}, who("ada"), True),
        ({"admin_users": ["ada"]}, who("adа"), None),  # the last letter Cyrillic: not ada
    ],
)
def test_admin_users_compared_in_normal_form(
    setting: dict[str, Any], result: AuthResult, expected: bool | None
) -> None:
    assert is_admin(settings(**setting), result) is expected


def test_the_profile_an_authenticator_gives_is_kept_as_user_info(db: Database) -> None:
    """JupyterHub 6's user_info: set at a login that gives one, kept by one that does not."""
    users = UserService(db)
    profile = {"display_name": "Alice Liddell", "initials": "AL"}
    admitted(users, settings(), AuthResult("alice", user_info=profile))
    view = users.view("alice")
    assert view is not None and view.user_info == profile
    admitted(users, settings(), who("alice"))
    view = users.view("alice")
    assert view is not None and view.user_info == profile
