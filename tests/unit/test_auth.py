"""app/auth: authenticators, the login session and its cookie, CSRF, token scopes."""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from app.auth.authenticators import (
    Authenticator,
    AuthResult,
    DummyAuthenticator,
    PasswordAuthenticator,
    hash_password,
)
from app.auth.providers import authenticator_class
from app.config import AUTHENTICATOR_NAMES, Settings, load
from app.db import Database
from app.grants import HubGrants
from app.identity import ANONYMOUS, Identity
from app.models import APIToken, User
from app.outcomes import Invalid
from app.tokens import Service, get_tokens
from app.users import UserService, get_users
from tests.helpers import SCRIPT_FETCH

PASSWORD = "correct horse battery staple"
XSRF_MESSAGE = "XSRF cookie does not match POST argument"


pytestmark = pytest.mark.usefixtures("clean_env")


@pytest.fixture
def make_settings(tmp_path: Path) -> Callable[..., Settings]:
    """make_settings(**overrides): settings with data_dir in tmp_path."""

    def _make(**overrides: Any) -> Settings:
        return load(environ={}, overrides={"data_dir": str(tmp_path / "data"), **overrides})

    return _make


@pytest.fixture
def users(db: Database) -> UserService:
    """A UserService on a migrated SQLite file."""
    return UserService(db)


# -- authenticators -----------------------------------------------------------


@pytest.mark.parametrize("password", ["", "anything"])
def test_dummy_accepts_any_name(
    make_settings: Callable[..., Settings], users: UserService, password: str
) -> None:
    authenticator = DummyAuthenticator(make_settings(), users)
    assert authenticator.authenticate(" Alice ", password) == AuthResult("alice")


@pytest.mark.parametrize(
    ("password", "expected"),
    [("sesame", "alice"), ("Sesame", None), ("", None), ("sesame ", None)],
)
def test_dummy_password(
    make_settings: Callable[..., Settings], users: UserService, password: str, expected: str | None
) -> None:
    authenticator = DummyAuthenticator(make_settings(dummy_password="sesame"), users)
    assert authenticator.authenticate("alice", password) == (expected and AuthResult(expected))


@pytest.mark.parametrize("name", AUTHENTICATOR_NAMES)
def test_every_authenticator_setting_names_a_class(name: str) -> None:
    assert issubclass(authenticator_class(name), Authenticator)


@pytest.mark.parametrize("authenticator_class", [DummyAuthenticator, PasswordAuthenticator])
def test_invalid_name_raises(
    make_settings: Callable[..., Settings], users: UserService, authenticator_class: type
) -> None:
    authenticator = authenticator_class(make_settings(), users)
    with pytest.raises(Invalid, match="Invalid username"):
        authenticator.authenticate("no/slash", "x")


@pytest.mark.usefixtures("production_argon2")
def test_hash_password_is_salted_argon2() -> None:
    first, second = hash_password(PASSWORD), hash_password(PASSWORD)
    # argon2id at RFC 9106's second recommended cost (64 MiB, 3 passes, 4 lanes).
    assert first.startswith("$argon2id$v=19$m=65536,t=3,p=4$")
    assert first != second
    assert PASSWORD not in first


@pytest.fixture(scope="module")
def password_hash() -> str:
    """PASSWORD hashed once (argon2 is slow on purpose)."""
    return hash_password(PASSWORD)


@pytest.fixture
def password_authenticator(
    make_settings: Callable[..., Settings], users: UserService, password_hash: str
) -> PasswordAuthenticator:
    """Accounts: alice with PASSWORD, bob without a password."""
    users.create_many(["alice", "bob"])
    users.set_password_hash("alice", password_hash)
    return PasswordAuthenticator(make_settings(authenticator="password"), users)


@pytest.mark.parametrize(
    ("name", "password", "expected"),
    [
        ("alice", PASSWORD, "alice"),
        ("ALICE", PASSWORD, "alice"),
        ("alice", PASSWORD.upper(), None),
        ("alice", "", None),
        ("bob", "", None),
        ("bob", PASSWORD, None),
        ("carol", PASSWORD, None),
    ],
)
def test_password_authenticator(
    password_authenticator: PasswordAuthenticator, name: str, password: str, expected: str | None
) -> None:
    result = password_authenticator.authenticate(name, password)
    assert result == (expected and AuthResult(expected))


# -- who may do what ----------------------------------------------------------

NAMES = ("alice", "bob", "root", "viewer", "culler")
SCOPES = ("identify", "servers", "users:activity")
# What users may do for themselves: `manages` lists the users an identity may do it for.
OWN_SCOPES = ("read:users", "servers", "tokens")
ALICE = User(name="alice", admin=False)
ROOT = User(name="root", admin=True)


def token(*scopes: str) -> APIToken:
    return APIToken(scopes=list(scopes))


@pytest.mark.parametrize(
    ("identity", "admin", "manages", "scopes"),
    [
        (Identity(user=ALICE, via_cookie=True), False, {"alice"}, set(SCOPES)),
        (Identity(user=ALICE, token=token()), False, {"alice"}, set(SCOPES)),
        (Identity(user=ALICE, token=token("inherit")), False, {"alice"}, set(SCOPES)),
        (Identity(user=ALICE, token=token("identify")), False, set(), {"identify"}),
        (
            Identity(user=ALICE, token=token("users:activity!user=alice", "identify")),
            False,
            set(),
            {"users:activity", "identify"},
        ),
        (Identity(user=ROOT, via_cookie=True), True, set(NAMES), set(SCOPES)),
        (Identity(user=ROOT, token=token("identify")), False, set(), {"identify"}),
        (Identity(service=Service("culler", admin=True)), True, set(NAMES), set(SCOPES)),
        # A service without admin or configured scopes can only identify itself (JupyterHub's).
        (Identity(service=Service("viewer", admin=False)), False, set(), {"identify"}),
        (ANONYMOUS, False, set(), set()),
    ],
    ids=[
        "cookie",
        "full token",
        "inherit token",
        "identify token",
        "activity token",
        "admin cookie",
        "admin identify token",
        "admin service",
        "service",
        "anonymous",
    ],
)
def test_identity_rights(
    identity: Identity, admin: bool, manages: set[str], scopes: set[str], grants: HubGrants
) -> None:
    identity = replace(identity, grants=grants)
    assert identity.admin is admin
    for name in NAMES:
        held = [identity.has_scope(scope, user=name) for scope in OWN_SCOPES]
        assert all(held) is (name in manages), name
    for scope in SCOPES:
        assert identity.has_scope(scope) is (scope in scopes), scope


# -- the hub app: login, cookie, CSRF, tokens ---------------------------------


@pytest.fixture
def app(make_app: Callable[..., Flask]) -> Flask:
    """A hub app; its spawner_cmd is harmless if a test ever starts a server by mistake."""
    return make_app(spawner_cmd=[sys.executable, "-c", "pass"])


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def form_xsrf(html: str) -> str:
    match = re.search(r'name="_xsrf" value="([^"]+)"', html)
    assert match, html
    return match.group(1)


def page_xsrf(html: str) -> str:
    """The token pages give to scripts (home.js sends it as X-XSRFToken)."""
    match = re.search(r'<meta name="xsrf-token" content="([^"]+)">', html)
    assert match, html
    return match.group(1)


def log_in(client: FlaskClient, name: str, password: str = "") -> Any:
    xsrf = form_xsrf(client.get("/hub/login").text)
    form = {"username": name, "password": password, "_xsrf": xsrf, "next": "/hub/home"}
    return client.post("/hub/login", data=form)


@pytest.fixture
def alice_client(client: FlaskClient) -> FlaskClient:
    """A client logged in as alice through the login form."""
    assert log_in(client, "alice").status_code == 302
    return client


def test_login_sets_a_session(client: FlaskClient) -> None:
    assert client.get("/hub/api/user").status_code == 403
    response = log_in(client, "Alice")
    assert response.status_code == 302
    assert response.headers["Location"] == "/hub/home"
    me = client.get("/hub/api/user")
    assert me.status_code == 200
    assert me.json["name"] == "alice"


def test_session_cookie_flags(client: FlaskClient) -> None:
    response = log_in(client, "alice")
    cookie = next(c for c in response.headers.getlist("Set-Cookie") if "flaskhub-session=" in c)
    flags = {part.strip() for part in cookie.split(";")[1:]}
    assert {"HttpOnly", "SameSite=Lax", "Path=/hub/"} <= flags


def test_wrong_password_is_refused(make_app: Callable[..., Flask]) -> None:
    client = make_app(dummy_password="sesame").test_client()
    response = log_in(client, "alice", "wrong")
    assert response.status_code == 403
    assert "Invalid username or password." in response.text
    assert client.get("/hub/api/user").status_code == 403
    assert log_in(client, "alice", "sesame").status_code == 302


def test_invalid_name_is_shown_on_the_form(client: FlaskClient) -> None:
    response = log_in(client, "no/slash")
    assert response.status_code == 403
    assert "Invalid username" in response.text


@pytest.mark.parametrize("xsrf", [None, "forged"])
def test_login_post_needs_the_form_token(client: FlaskClient, xsrf: str | None) -> None:
    client.get("/hub/login")
    form = {"username": "alice", "password": ""}
    if xsrf is not None:
        form["_xsrf"] = xsrf
    response = client.post("/hub/login", data=form)
    assert response.status_code == 403
    assert "XSRF check failed" in response.text
    assert client.get("/hub/api/user").status_code == 403


def test_cookie_api_request_needs_xsrf_header(alice_client: FlaskClient) -> None:
    response = alice_client.delete("/hub/api/users/alice/server")
    assert response.status_code == 403
    assert response.json == {"status": 403, "message": XSRF_MESSAGE}


def test_cookie_api_request_with_xsrf_header_passes(alice_client: FlaskClient) -> None:
    home = alice_client.get("/hub/home")
    assert home.status_code == 200
    headers = {"X-XSRFToken": page_xsrf(home.text)}
    response = alice_client.delete("/hub/api/users/alice/server", headers=headers)
    assert response.status_code == 204


def test_xsrf_token_from_before_login_is_not_accepted(client: FlaskClient) -> None:
    before = form_xsrf(client.get("/hub/login").text)
    form = {"username": "alice", "password": "", "_xsrf": before}
    assert client.post("/hub/login", data=form).status_code == 302
    response = client.delete("/hub/api/users/alice/server", headers={"X-XSRFToken": before})
    assert response.status_code == 403


# What a script's request sends: fetch() or XHR, a frame, an object, no Fetch Metadata
# at all (an old browser, or a client that is no browser).
NOT_NAVIGATIONS = {
    "fetch": SCRIPT_FETCH,
    "no-cors fetch": {**SCRIPT_FETCH, "Sec-Fetch-Mode": "no-cors"},
    "frame": {"Sec-Fetch-Mode": "navigate", "Sec-Fetch-Dest": "iframe"},
    "object": {"Sec-Fetch-Mode": "navigate", "Sec-Fetch-Dest": "object"},
    "no metadata": {"Sec-Fetch-Mode": "", "Sec-Fetch-Dest": ""},
}


@pytest.mark.parametrize("headers", NOT_NAVIGATIONS.values(), ids=NOT_NAVIGATIONS)
def test_a_script_gets_no_login_and_no_token(
    alice_client: FlaskClient, headers: dict[str, str]
) -> None:
    """A page on the hub's origin (a user's server in path mode) reads nothing as the
    visitor: the home page sends it to the login page, whose token is worth nothing."""
    home = alice_client.get("/hub/home", headers=headers)
    assert home.status_code == 302
    assert home.headers["Location"].startswith("/hub/login")
    login_page = alice_client.get("/hub/login", headers=headers)
    assert "set-cookie" not in {name.lower() for name in login_page.headers.keys()}
    stolen = {**headers, "X-XSRFToken": form_xsrf(login_page.text)}
    assert alice_client.get("/hub/api/user", headers=headers).status_code == 403
    mint = alice_client.post("/hub/api/users/alice/tokens", json={}, headers=stolen)
    assert mint.status_code == 403
    # The visitor's own navigation still finds them logged in.
    assert alice_client.get("/hub/home").status_code == 200


def test_the_hubs_own_scripts_pass_with_the_pages_token(alice_client: FlaskClient) -> None:
    xsrf = page_xsrf(alice_client.get("/hub/home").text)
    me = alice_client.get("/hub/api/user", headers={**SCRIPT_FETCH, "X-XSRFToken": xsrf})
    assert me.status_code == 200 and me.json["name"] == "alice"
    # An EventSource (the progress bar) sends no header: the token in the URL.
    by_query = alice_client.get(f"/hub/api/user?_xsrf={xsrf}", headers=SCRIPT_FETCH)
    assert by_query.status_code == 200
    wrong = alice_client.get("/hub/api/user?_xsrf=forged", headers=SCRIPT_FETCH)
    assert wrong.status_code == 403


@pytest.fixture
def alice_token(app: Flask) -> Callable[..., dict[str, str]]:
    """alice_token(*scopes, admin=False): Authorization headers for a new token of alice."""

    def _headers(*scopes: str, admin: bool = False) -> dict[str, str]:
        users = get_users(app)
        user = users.get_or_create("alice", admin=admin)
        users.set_admin("alice", admin)
        token, _ = get_tokens(app).create(user.id, scopes=list(scopes))
        return {"Authorization": f"token {token}"}

    return _headers


def test_token_requests_need_no_xsrf(
    client: FlaskClient, alice_token: Callable[..., dict[str, str]]
) -> None:
    response = client.delete("/hub/api/users/alice/server", headers=alice_token())
    assert response.status_code == 204


@pytest.mark.parametrize(
    ("method", "path", "scopes", "admin", "status"),
    [
        ("GET", "/hub/api/user", ["identify"], False, 200),
        ("POST", "/hub/api/users/alice/server", ["identify"], False, 403),
        ("DELETE", "/hub/api/users/alice/server", ["identify"], False, 403),
        # Every token may read its owner's name and groups (JupyterHub's identify scopes).
        ("GET", "/hub/api/users/alice", ["identify"], False, 200),
        ("GET", "/hub/api/users/alice", [], False, 200),
        ("GET", "/hub/api/users/alice", ["inherit"], False, 200),
        ("GET", "/hub/api/info", [], False, 403),
        ("GET", "/hub/api/info", [], True, 200),
        ("GET", "/hub/api/info", ["identify"], True, 403),
    ],
)
def test_token_scopes(
    client: FlaskClient,
    alice_token: Callable[..., dict[str, str]],
    method: str,
    path: str,
    scopes: list[str],
    admin: bool,
    status: int,
) -> None:
    response = client.open(path, method=method, headers=alice_token(*scopes, admin=admin))
    assert response.status_code == status, response.json


def test_whoami_shows_a_limited_tokens_scopes(
    client: FlaskClient, alice_token: Callable[..., dict[str, str]]
) -> None:
    response = client.get("/hub/api/user", headers=alice_token("identify"))
    # As JupyterHub 6.1 shows them: what identifies the owner, no internal names.
    assert response.json["scopes"] == ["read:users:groups!user=alice", "read:users:name!user=alice"]


@pytest.mark.parametrize("scheme", ["token", "Token", "bearer", "Bearer"])
def test_authorization_schemes(
    client: FlaskClient, alice_token: Callable[..., dict[str, str]], scheme: str
) -> None:
    value = alice_token()["Authorization"].split(" ", 1)[1]
    response = client.get("/hub/api/user", headers={"Authorization": f"{scheme} {value}"})
    assert response.status_code == 200
    assert response.json["name"] == "alice"


def test_bad_token_is_refused(client: FlaskClient) -> None:
    response = client.get("/hub/api/user", headers={"Authorization": "token " + "0" * 32})
    assert response.status_code == 403


def test_a_script_sending_too_large_a_form_with_the_cookie_gets_413(
    alice_client: FlaskClient,
) -> None:
    """The session opens before the view: a body too large to read for its token is
    still the view's 413, never a 500."""
    big = {"username": "x" * (5 * 1024 * 1024)}
    response = alice_client.post("/hub/login", data=big, headers=SCRIPT_FETCH)
    assert response.status_code == 413
    assert alice_client.get("/hub/home").status_code == 200
