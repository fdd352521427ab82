"""app/oauth.py against a real SQLite file migrated to the current schema (``db``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

import pytest
from flask import Flask
from sqlalchemy import func, select, update

from app.db import Database, get_db
from app.models import APIToken, OAuthClient, OAuthCode, Server, utcnow
from app.oauth import CODE_LIFETIME, OAuthError, OAuthService, get_oauth
from app.outcomes import Invalid
from app.tokens import TokenService, get_tokens
from app.users import UserService, get_users

CLIENT_ID = "jupyterhub-user-alice"
REDIRECT_URI = "/user/alice/oauth_callback"


@dataclass
class Registered:
    """A client as a spawn registers it: its secret is the server's token."""

    client: OAuthClient
    secret: str
    server_id: int
    user_id: int


@pytest.fixture
def tokens(db: Database) -> TokenService:
    return TokenService(db)


@pytest.fixture
def oauth(db: Database, tokens: TokenService) -> OAuthService:
    return OAuthService(db, tokens)


def register(db: Database, tokens: TokenService, oauth: OAuthService, user_id: int) -> Registered:
    """Issue a server token and (re-)register alice's client with it, in one transaction."""
    with db.write() as session:
        server = session.scalar(select(Server).where(Server.user_id == user_id))
        if server is None:
            server = Server(user_id=user_id, name="")
            session.add(server)
            session.flush()
        secret, hashed = tokens.add(
            session, user_id, note="Server at /user/alice/", scopes=[], server_id=server.id
        )
        oauth.register_client(
            session,
            client_id=CLIENT_ID,
            secret_hash=hashed,
            redirect_uri=REDIRECT_URI,
            description="Server at /user/alice/",
            server_id=server.id,
        )
    client, _owner = oauth.client_owner(CLIENT_ID)
    return Registered(client, secret, server.id, user_id)


@pytest.fixture
def alice(db: Database, tokens: TokenService, oauth: OAuthService) -> Registered:
    """alice, her default server and its registered client."""
    user = UserService(db).get_or_create("alice")
    return register(db, tokens, oauth, user.id)


def refused(error: str, call: Callable[..., object], *args: object) -> None:
    """call(*args) raises OAuthError with that OAuth error code."""
    with pytest.raises(OAuthError) as info:
        call(*args)
    assert info.value.error == error


def test_client_owner(oauth: OAuthService, alice: Registered) -> None:
    client, owner = oauth.client_owner(CLIENT_ID)
    assert (client.id, client.redirect_uri, owner) == (CLIENT_ID, REDIRECT_URI, ("alice", ""))
    with pytest.raises(Invalid, match="Unknown OAuth client 'nope'"):
        oauth.client_owner("nope")


def test_client_without_a_server_is_unknown(db: Database, oauth: OAuthService) -> None:
    with db.write() as session:
        session.add(OAuthClient(id="orphan", secret_hash="x", redirect_uri="/"))
    with pytest.raises(Invalid, match="Unknown OAuth client"):
        oauth.client_owner("orphan")


def test_exchange_gives_a_token_for_that_server(
    tokens: TokenService, oauth: OAuthService, alice: Registered
) -> None:
    code = oauth.issue_code(alice.client, alice.user_id)
    token, scopes = oauth.exchange_code(CLIENT_ID, alice.secret, code, REDIRECT_URI)
    assert scopes == [
        "access:servers!server=alice/",
        "access:servers!user=alice",
        "identify",
    ]
    row = tokens.lookup(token)
    assert isinstance(row, APIToken)
    assert (row.user_id, row.client_id, row.server_id) == (
        alice.user_id,
        CLIENT_ID,
        alice.server_id,
    )
    assert row.scopes == scopes


def test_the_redirect_uri_may_be_left_out(oauth: OAuthService, alice: Registered) -> None:
    code = oauth.issue_code(alice.client, alice.user_id)
    assert oauth.exchange_code(CLIENT_ID, alice.secret, code)[0]


def test_a_code_is_single_use(oauth: OAuthService, alice: Registered) -> None:
    code = oauth.issue_code(alice.client, alice.user_id)
    oauth.exchange_code(CLIENT_ID, alice.secret, code)
    refused("invalid_grant", oauth.exchange_code, CLIENT_ID, alice.secret, code)


def test_an_expired_code_is_refused(db: Database, oauth: OAuthService, alice: Registered) -> None:
    code = oauth.issue_code(alice.client, alice.user_id)
    with db.write() as session:
        session.execute(update(OAuthCode).values(expires_at=utcnow() - timedelta(seconds=1)))
    refused("invalid_grant", oauth.exchange_code, CLIENT_ID, alice.secret, code)


def test_a_code_lives_for_code_lifetime(
    db: Database, oauth: OAuthService, alice: Registered
) -> None:
    before = utcnow()
    oauth.issue_code(alice.client, alice.user_id)
    with db.read() as session:
        code = session.scalars(select(OAuthCode)).one()
    assert before + CODE_LIFETIME <= code.expires_at <= utcnow() + CODE_LIFETIME


@pytest.mark.parametrize(("client_id", "secret"), [(CLIENT_ID, "wrong"), ("nope", None)])
def test_a_wrong_client_is_refused_and_the_code_kept(
    oauth: OAuthService, alice: Registered, client_id: str, secret: str | None
) -> None:
    code = oauth.issue_code(alice.client, alice.user_id)
    refused("invalid_client", oauth.exchange_code, client_id, secret or alice.secret, code)
    assert oauth.exchange_code(CLIENT_ID, alice.secret, code)[0]


def test_an_unknown_code_is_refused(oauth: OAuthService, alice: Registered) -> None:
    refused("invalid_grant", oauth.exchange_code, CLIENT_ID, alice.secret, "made-up")


def test_a_wrong_redirect_uri_uses_up_the_code(oauth: OAuthService, alice: Registered) -> None:
    code = oauth.issue_code(alice.client, alice.user_id)
    refused("invalid_grant", oauth.exchange_code, CLIENT_ID, alice.secret, code, "/elsewhere")
    refused("invalid_grant", oauth.exchange_code, CLIENT_ID, alice.secret, code, REDIRECT_URI)


def test_another_clients_code_is_refused(
    db: Database, oauth: OAuthService, alice: Registered
) -> None:
    other = OAuthClient(id="other", secret_hash="x", redirect_uri="/")
    with db.write() as session:
        session.add(other)
    code = oauth.issue_code(other, alice.user_id)
    refused("invalid_grant", oauth.exchange_code, CLIENT_ID, alice.secret, code)


def test_registering_again_replaces_the_secret(
    db: Database, tokens: TokenService, oauth: OAuthService, alice: Registered
) -> None:
    again = register(db, tokens, oauth, alice.user_id)
    code = oauth.issue_code(again.client, alice.user_id)
    refused("invalid_client", oauth.exchange_code, CLIENT_ID, alice.secret, code)
    assert oauth.exchange_code(CLIENT_ID, again.secret, code)[0]
    with db.read() as session:
        assert session.scalar(select(func.count()).select_from(OAuthClient)) == 1


# -- the token endpoint answers refusals in OAuth's shape ----------------------


@pytest.mark.parametrize(
    ("form", "status", "error", "description"),
    [
        ({"grant_type": "password"}, 400, "unsupported_grant_type", "Only authorization_code"),
        ({"client_secret": "wrong"}, 401, "invalid_client", "Unknown client or wrong secret"),
        ({"code": "made-up"}, 400, "invalid_grant", "The code is unknown, used or expired"),
    ],
)
def test_token_endpoint_errors(
    make_app: Callable[..., Flask], form: dict[str, str], status: int, error: str, description: str
) -> None:
    app = make_app()
    with app.app_context():
        user = get_users().get_or_create("alice")
        alice = register(get_db(), get_tokens(), get_oauth(), user.id)
    sent = {"grant_type": "authorization_code", "client_id": CLIENT_ID, "code": "x"}
    sent = {**sent, "client_secret": alice.secret, **form}
    response = app.test_client().post("/hub/api/oauth2/token", data=sent)
    assert response.status_code == status
    assert response.json is not None and set(response.json) == {"error", "error_description"}
    assert response.json["error"] == error
    assert response.json["error_description"].startswith(description)
