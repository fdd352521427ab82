"""Auth state: keys (crypt_key), encryption at rest, key rotation, the API's auth_state."""

from __future__ import annotations

import base64
import contextlib
import secrets
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from flask import Flask

from app.auth.state import get_auth_states
from app.config import ConfigError, load
from app.crypt import parse_keys
from app.users import get_users

STATE = {
    "access_token": "at-" + secrets.token_hex(16),
    "refresh_token": "rt-" + secrets.token_hex(16),
    "claims": {"sub": "alice", "groups": ["staff"]},
}


def new_key() -> str:
    return secrets.token_hex(32)


def raw_state(app: Flask, name: str) -> bytes | None:
    """users.encrypted_auth_state as the database file holds it (sqlite3, not the hub)."""
    path = app.config["FLASKHUB"].db_url.removeprefix("sqlite:///")
    with contextlib.closing(sqlite3.connect(path)) as db:
        row = db.execute(
            "SELECT encrypted_auth_state FROM users WHERE name = ?", (name,)
        ).fetchone()
    return row[0] if row else None


def test_keys_in_hex_and_base64_several_separated_by_semicolons() -> None:
    raw = secrets.token_bytes(32)
    fernet = Fernet.generate_key().decode()
    keys = parse_keys(f"{raw.hex()}; {fernet};")
    assert keys == [raw, base64.urlsafe_b64decode(fernet)]


@pytest.mark.parametrize("value", ["short", "00" * 31, "zz" * 32, ";", "a" * 44])
def test_a_bad_key_is_named(clean_env: Path, value: str) -> None:
    with pytest.raises(ConfigError, match="crypt_key.*openssl rand -hex 32"):
        load(environ={"FLASKHUB_CRYPT_KEY": value})


def test_secrets_are_not_in_the_settings_repr(clean_env: Path) -> None:
    key = new_key()
    settings = load(
        environ={"FLASKHUB_CRYPT_KEY": key, "FLASKHUB_COOKIE_SECRET": "cookie-s3cret"},
        overrides={"dummy_password": "pw-s3cret", "oauth_client_secret": "client-s3cret"},
    )
    assert settings.crypt_key == key
    shown = repr(settings)
    for secret in (key, "cookie-s3cret", "pw-s3cret", "client-s3cret"):
        assert secret not in shown
    assert "crypt_key" not in shown and "authenticator='dummy'" in shown


def test_stored_encrypted_and_read_after_a_key_rotation(make_app: Callable[..., Flask]) -> None:
    old, new = new_key(), new_key()
    app = make_app(crypt_key=old)
    get_users(app).get_or_create("alice")
    get_auth_states(app).save("alice", STATE)
    raw = raw_state(app, "alice")
    assert raw
    for secret in (STATE["access_token"], STATE["refresh_token"], "staff"):
        assert secret.encode() not in raw
    # The new key first encrypts, the old one second still decrypts.
    rotated = get_auth_states(make_app(crypt_key=f"{new};{old}"))
    assert rotated.load("alice") == STATE
    rotated.save("alice", {**STATE, "access_token": "at-2"})
    assert get_auth_states(make_app(crypt_key=new)).load("alice")["access_token"] == "at-2"


def test_state_no_key_opens_is_ignored(
    make_app: Callable[..., Flask], caplog: pytest.LogCaptureFixture
) -> None:
    app = make_app(crypt_key=new_key())
    get_users(app).get_or_create("alice")
    get_auth_states(app).save("alice", STATE)
    assert get_auth_states(make_app(crypt_key=new_key())).load("alice") is None
    assert "Auth state of alice cannot be read" in caplog.text


def test_without_a_key_nothing_is_kept(make_app: Callable[..., Flask]) -> None:
    app = make_app()
    get_users(app).get_or_create("alice")
    get_auth_states(app).save("alice", STATE)
    assert raw_state(app, "alice") is None
    assert get_auth_states(app).load("alice") is None


@pytest.fixture
def hub(make_app: Callable[..., Flask]) -> Flask:
    """A hub that keeps auth state; alice has some."""
    app = make_app(crypt_key=new_key())
    get_users(app).get_or_create("alice")
    get_auth_states(app).save("alice", STATE)
    return app


def get_user(app: Flask, token: str, name: str = "alice") -> dict[str, object]:
    response = app.test_client().get(
        f"/hub/api/users/{name}", headers={"Authorization": f"token {token}"}
    )
    assert response.status_code == 200, response.text
    return dict(response.json)


def test_only_holders_of_admin_auth_state_see_it(
    hub: Flask, make_token: Callable[..., str]
) -> None:
    assert "auth_state" not in get_user(hub, make_token(hub, "alice"))
    reader = make_token(hub, "reader", admin=True, scopes=["read:users"])
    assert "auth_state" not in get_user(hub, reader)
    assert get_user(hub, make_token(hub, "root", admin=True))["auth_state"] == STATE
    holder = make_token(
        hub, "holder", admin=True, scopes=["read:users", "admin:auth_state!user=alice"]
    )
    assert get_user(hub, holder)["auth_state"] == STATE


def patch(app: Flask, token: str, body: object, name: str = "alice") -> tuple[int, object]:
    response = app.test_client().patch(
        f"/hub/api/users/{name}", json=body, headers={"Authorization": f"token {token}"}
    )
    return response.status_code, response.json


def test_patch_replaces_the_auth_state(hub: Flask, make_token: Callable[..., str]) -> None:
    admin = make_token(hub, "root", admin=True)
    status, model = patch(hub, admin, {"auth_state": {"access_token": "set-by-admin"}})
    assert status == 200, model
    assert get_auth_states(hub).load("alice") == {"access_token": "set-by-admin"}
    assert patch(hub, admin, {"auth_state": None})[0] == 200
    assert get_auth_states(hub).load("alice") is None


@pytest.mark.parametrize(
    ("scopes", "body", "status", "message"),
    [
        (["read:users", "users"], {"auth_state": {}}, 403, "admin:users"),
        (
            ["admin:users", "admin:auth_state"],
            {"auth_state": "x"},
            400,
            "user.auth_state must be an object or null",
        ),
        (["admin:users", "admin:auth_state"], {"auth_states": {}}, 400, "auth_state"),
    ],
)
def test_patch_refusals(
    hub: Flask,
    make_token: Callable[..., str],
    scopes: list[str],
    body: object,
    status: int,
    message: str,
) -> None:
    code, answer = patch(hub, make_token(hub, "tool", admin=True, scopes=scopes), body)
    assert code == status and message in str(answer)
    assert get_auth_states(hub).load("alice") == STATE


def test_patch_without_a_key_says_to_set_one(
    make_app: Callable[..., Flask], make_token: Callable[..., str]
) -> None:
    app = make_app()
    get_users(app).get_or_create("alice")
    code, answer = patch(app, make_token(app, "root", admin=True), {"auth_state": {}})
    assert code == 400 and "crypt_key" in str(answer)


@pytest.mark.parametrize("age", [0, 3600, 0.001])
def test_a_spawn_gets_the_state_as_it_is_when_nothing_is_to_refresh(
    make_app: Callable[..., Flask], age: float
) -> None:
    """Never refreshed (0), fresh (3600), or stale with an authenticator that keeps no
    tokens to refresh (dummy)."""
    app = make_app(crypt_key=new_key(), auth_refresh_age=age)
    get_users(app).get_or_create("alice")
    get_auth_states(app).save("alice", STATE)
    assert get_auth_states(app).for_spawn("alice") == STATE
