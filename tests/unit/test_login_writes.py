"""A login is one write transaction: failures of the name forgotten, the user admitted
(created if new, bound to the provider's account, profile and admin up to date), their
auth state kept and their activity noted, together."""

from __future__ import annotations

import secrets
from collections.abc import Callable

import pytest
from flask import Flask
from sqlalchemy import select
from werkzeug.test import TestResponse

from app.auth.authenticators import AuthResult
from app.auth.state import get_auth_states
from app.db import get_db
from app.logins import get_throttle, login_keys
from app.models import LoginFailure, User
from app.outcomes import Forbidden
from app.pages import finish_login
from app.users import get_users
from tests.transactions import counting


def test_a_form_login_is_one_write(
    make_app: Callable[..., Flask], log_in: Callable[..., TestResponse]
) -> None:
    app = make_app()
    # Two failures of the name before: forgotten by the login.
    get_throttle(app).failed(login_keys("alice", "127.0.0.1"))
    for attempt in ("new user", "known user"):
        client = app.test_client()
        with counting(get_db(app).engine) as counts:
            assert log_in(client, "alice").status_code == 302
        # The throttle's look, then the login: where the user lands is known from it.
        assert (counts.transactions, counts.writes) == (2, 1), (attempt, counts.sql)
    user = get_users(app).get("alice")
    assert user is not None and user.last_activity is not None
    with get_db(app).read() as session:
        assert session.get(LoginFailure, "name:alice") is None
        # The address's failures stay: a login of one's own does not clear them.
        assert session.get(LoginFailure, "addr:127.0.0.1") is not None


def test_a_provider_login_with_everything_is_one_write(make_app: Callable[..., Flask]) -> None:
    app = make_app(crypt_key=secrets.token_hex(32), admin_users=["alice"])
    result = AuthResult(
        "alice",
        groups=frozenset({"staff"}),
        auth_state={"access_token": "at"},
        subject=("https://issuer.example", "sub-1"),
        user_info={"name": "Alice"},
    )
    with app.test_request_context("/hub/oauth_callback"), counting(get_db(app).engine) as counts:
        assert finish_login(result, "").status_code == 302
    # Nothing before or after the write: where the user lands is known from it.
    assert (counts.transactions, counts.writes) == (1, 1), counts.sql
    assert get_auth_states(app).load("alice") == {"access_token": "at"}
    with get_db(app).read() as session:
        user = session.scalars(select(User).where(User.name == "alice")).one()
        assert (user.provider_issuer, user.provider_subject) == ("https://issuer.example", "sub-1")
        assert user.admin and user.user_info == {"name": "Alice"} and user.last_activity


def test_a_login_refused_for_its_binding_changes_nothing(make_app: Callable[..., Flask]) -> None:
    """Another account of the provider presenting a bound name: refused, and none of the
    login's changes (profile, admin, auth state, activity) is kept."""
    app = make_app(crypt_key=secrets.token_hex(32), admin_users=["alice"])
    owner = AuthResult("alice", auth_state={"t": "mine"}, subject=("https://id", "sub-1"))
    with app.test_request_context("/hub/oauth_callback"):
        finish_login(owner, "")
    before = get_users(app).get("alice")
    assert before is not None
    other = AuthResult(
        "alice",
        groups=frozenset(),
        auth_state={"t": "theirs"},
        subject=("https://id", "sub-2"),
        user_info={"name": "Mallory"},
    )
    with app.test_request_context("/hub/oauth_callback"), pytest.raises(Forbidden):
        finish_login(other, "")
    after = get_users(app).get("alice")
    assert after is not None and after.user_info is None and after.admin
    assert after.last_activity == before.last_activity
    assert get_auth_states(app).load("alice") == {"t": "mine"}
