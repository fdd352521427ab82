"""Passwords of authenticator = "password": the change-password page, the API (own change
with the current password, admin reset), and what each refuses."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from flask import Flask
from flask.testing import FlaskClient

from app.auth.authenticators import hash_password
from app.users import get_users
from tests.helpers import xsrf_token

OLD = "correct horse battery"
NEW = "staple battery horse"


@pytest.fixture
def hub(make_app: Callable[..., Flask]) -> Flask:
    """A password hub: alice (OLD) and bob (OLD)."""
    app = make_app(authenticator="password")
    users = get_users(app)
    for name in ("alice", "bob"):
        users.get_or_create(name)
        users.set_password_hash(name, hash_password(OLD))
    return app


def logged_in(app: Flask, name: str, password: str = OLD) -> FlaskClient:
    client = app.test_client()
    form = {
        "username": name,
        "password": password,
        "_xsrf": xsrf_token(client.get("/hub/login").text),
    }
    response = client.post("/hub/login", data=form)
    assert response.status_code == 302, response.text
    return client


def can_log_in(app: Flask, name: str, password: str) -> bool:
    client = app.test_client()
    form = {
        "username": name,
        "password": password,
        "_xsrf": xsrf_token(client.get("/hub/login").text),
    }
    return client.post("/hub/login", data=form).status_code == 302


def change(
    client: FlaskClient, current: str, new: str, confirm: str | None = None
) -> tuple[int, str]:
    xsrf = xsrf_token(client.get("/hub/change-password").text)
    form = {
        "current_password": current,
        "password": new,
        "password_confirm": new if confirm is None else confirm,
        "_xsrf": xsrf,
    }
    response = client.post("/hub/change-password", data=form)
    return response.status_code, response.text


def test_change_on_the_page(hub: Flask) -> None:
    other_browser = logged_in(hub, "alice")
    client = logged_in(hub, "alice")
    assert 'id="change-password"' in client.get("/hub/home").text
    status, page = change(client, OLD, NEW)
    assert status == 200 and 'id="password-changed"' in page
    assert client.get("/hub/home").status_code == 200  # this browser stays logged in
    assert other_browser.get("/hub/home").status_code == 302  # the others must log in again
    assert can_log_in(hub, "alice", NEW) and not can_log_in(hub, "alice", OLD)


@pytest.mark.parametrize(
    ("current", "new", "confirm", "status", "message"),
    [
        ("wrong password", NEW, NEW, 403, "The current password is wrong"),
        (OLD, "short", "short", 400, "at least 8 characters"),
        (OLD, NEW, NEW + "x", 400, "confirmation differ"),
        (OLD, "x" * 1025, "x" * 1025, 400, "at most 1024 characters"),
    ],
)
def test_page_refusals_leave_the_password(
    hub: Flask, current: str, new: str, confirm: str, status: int, message: str
) -> None:
    client = logged_in(hub, "alice")
    code, page = change(client, current, new, confirm)
    assert code == status and message in page and 'id="password-error"' in page
    assert can_log_in(hub, "alice", OLD)


def test_page_needs_the_csrf_token_and_a_login(hub: Flask) -> None:
    client = logged_in(hub, "alice")
    form = {"current_password": OLD, "password": NEW, "password_confirm": NEW}
    response = client.post("/hub/change-password", data=form)
    assert response.status_code == 403 and "XSRF" in response.text
    anonymous = hub.test_client().get("/hub/change-password")
    assert anonymous.status_code == 302 and "/hub/login" in anonymous.headers["Location"]
    assert can_log_in(hub, "alice", OLD)


def put(app: Flask, token: str, name: str, body: object) -> tuple[int, object]:
    response = app.test_client().put(
        f"/hub/api/users/{name}/password", json=body, headers={"Authorization": f"token {token}"}
    )
    return response.status_code, response.json


def test_api_own_change_needs_the_current_password(
    hub: Flask, make_token: Callable[..., str]
) -> None:
    token = make_token(hub, "alice")
    assert put(hub, token, "alice", {"password": NEW})[0] == 403
    status, answer = put(hub, token, "alice", {"password": NEW, "current_password": "nope"})
    assert status == 403 and "current password is wrong" in str(answer)
    assert put(hub, token, "alice", {"password": NEW, "current_password": OLD})[0] == 204
    assert can_log_in(hub, "alice", NEW)


def test_api_admin_resets_another_password(hub: Flask, make_token: Callable[..., str]) -> None:
    browser = logged_in(hub, "bob")
    admin = make_token(hub, "root", admin=True)
    assert put(hub, admin, "bob", {"password": NEW})[0] == 204
    assert can_log_in(hub, "bob", NEW) and not can_log_in(hub, "bob", OLD)
    assert browser.get("/hub/home").status_code == 302
    assert put(hub, admin, "nobody", {"password": NEW})[0] == 404


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"password": "short"}, 400, "at least 8 characters"),
        ({"password": 12345678}, 400, "as a string"),
        ({"pasword": NEW}, 400, 'Send {"password"'),
        ([NEW], 400, 'Send {"password"'),
    ],
)
def test_api_refusals(
    hub: Flask, make_token: Callable[..., str], body: object, status: int, message: str
) -> None:
    code, answer = put(hub, make_token(hub, "root", admin=True), "bob", body)
    assert code == status and message in str(answer)
    assert can_log_in(hub, "bob", OLD)


def test_a_user_cannot_reset_another_password(hub: Flask, make_token: Callable[..., str]) -> None:
    token = make_token(hub, "alice")
    status, answer = put(hub, token, "bob", {"password": NEW, "current_password": OLD})
    assert status == 403 and "admin:users" in str(answer)
    # Nor can a token of one's own that does not carry all of one's rights.
    limited = make_token(hub, "alice", scopes=["read:users!user=alice"])
    assert put(hub, limited, "alice", {"password": NEW, "current_password": OLD})[0] == 403
    assert can_log_in(hub, "bob", OLD) and can_log_in(hub, "alice", OLD)


def test_no_passwords_on_other_hubs(
    make_app: Callable[..., Flask], make_token: Callable[..., str]
) -> None:
    app = make_app()
    status, answer = put(app, make_token(app, "root", admin=True), "root", {"password": NEW})
    assert status == 400 and "no passwords of its own" in str(answer)
    client = app.test_client()
    form = {"username": "alice", "password": "", "_xsrf": xsrf_token(client.get("/hub/login").text)}
    client.post("/hub/login", data=form)
    assert 'id="change-password"' not in client.get("/hub/home").text
    assert client.get("/hub/change-password").status_code == 404


def test_guessing_the_current_password_shares_the_login_throttle(
    make_app: Callable[..., Flask],
) -> None:
    # Issue 21, finding 10: a stolen cookie must not guess the password without limit.
    hub = make_app(authenticator="password", login_failure_limit=3)
    get_users(hub).get_or_create("alice")
    get_users(hub).set_password_hash("alice", hash_password(OLD))
    client = logged_in(hub, "alice")
    for guess in ("guess one", "guess two", "guess three"):
        assert change(client, guess, NEW)[0] == 403
    status, page = change(client, OLD, NEW)  # even the right one, now
    assert status == 429 and "Too many failed logins" in page
    assert can_log_in(hub, "alice", OLD) is False  # the login form counts them too
    assert get_users(hub).get("alice") is not None
    xsrf = xsrf_token(client.get("/hub/change-password").text)
    api = client.put(
        "/hub/api/users/alice/password",
        json={"current_password": OLD, "password": NEW},
        headers={"X-XSRFToken": xsrf},
    )
    assert api.status_code == 429 and int(api.headers["Retry-After"]) > 0
