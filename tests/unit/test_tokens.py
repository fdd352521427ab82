"""app/tokens.py against a real SQLite file migrated to the current schema (``db``)."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import inspect, select
from sqlalchemy.orm.exc import DetachedInstanceError

from app.db import Database
from app.models import APIToken, OAuthClient, Server, User, utcnow
from app.outcomes import NotFound
from app.tokens import Service, TokenService, hash_token
from app.users import UserService

SERVICES = [
    {"name": "culler", "api_token": "culler-secret", "admin": True},
    {"name": "viewer", "api_token": "viewer-secret"},
]


@pytest.fixture
def tokens(db: Database) -> TokenService:
    """A TokenService that also knows the tokens of SERVICES."""
    return TokenService(db, services=SERVICES)


@pytest.fixture
def alice(db: Database) -> User:
    return UserService(db).get_or_create("alice")


@pytest.fixture
def bob(db: Database) -> User:
    return UserService(db).get_or_create("bob")


def expire(db: Database, row: APIToken) -> None:
    with db.write() as session:
        stored = session.get(APIToken, row.id)
        assert stored is not None
        stored.expires_at = utcnow() - timedelta(seconds=1)


def token_ids(db: Database) -> set[int]:
    with db.read() as session:
        return set(session.scalars(select(APIToken.id)))


def test_tokens_are_stored_hashed(db_path: Path, tokens: TokenService, alice: User) -> None:
    token, row = tokens.create(alice.id, note="for the culler", scopes=["identify"])
    assert row.hashed == hash_token(token)
    with closing(sqlite3.connect(db_path)) as conn:
        rows = conn.execute("SELECT * FROM api_tokens").fetchall()
    assert len(rows) == 1
    assert not any(token in str(column) for column in rows[0])


def test_lookup(tokens: TokenService, alice: User) -> None:
    token, _ = tokens.create(alice.id, expires_in=3600, scopes=["identify"])
    found = tokens.lookup(token)
    assert isinstance(found, APIToken)
    assert found.user is not None and found.user.name == "alice"
    assert found.scopes == ["identify"]
    assert tokens.lookup("0" * 32) is None
    assert tokens.lookup("") is None


def test_lookup_gives_the_token_and_its_owner_as_stored_and_nothing_more(
    db: Database, tokens: TokenService, alice: User
) -> None:
    token, _ = tokens.create(alice.id, expires_in=3600, scopes=["read:users"], note="bench")
    found = tokens.lookup(token)
    assert isinstance(found, APIToken) and found.user is not None
    # The lookup noted the use (last_activity) after its read.
    with db.read() as session:
        stored = session.scalars(select(APIToken).where(APIToken.id == found.id)).one()
        owner = session.get(User, alice.id)
    for kind, loaded, row in ((APIToken, found, stored), (User, found.user, owner)):
        for attr in inspect(kind).column_attrs:
            if attr.key != "last_activity" and not attr.deferred:
                assert getattr(loaded, attr.key) == getattr(row, attr.key), attr.key
    assert inspect(found).detached and inspect(found.user).detached
    # Built without a Session: the owner's collections and deferred columns were not
    # read, and say so.
    with pytest.raises(DetachedInstanceError):
        _ = found.user.servers
    with pytest.raises(DetachedInstanceError):
        _ = found.user.encrypted_auth_state


def test_expired_tokens_are_not_found(db: Database, tokens: TokenService, alice: User) -> None:
    token, row = tokens.create(alice.id, expires_in=3600)
    kept, kept_row = tokens.create(alice.id)
    expire(db, row)
    assert tokens.lookup(token) is None
    assert tokens.lookup(kept) is not None
    assert [t.id for t in tokens.list(alice.id)] == [kept_row.id]
    with pytest.raises(NotFound):
        tokens.get(alice.id, f"a{row.id}")


@pytest.mark.parametrize(
    ("token", "expected"),
    [("culler-secret", Service("culler", admin=True)), ("viewer-secret", Service("viewer", False))],
)
def test_service_tokens_from_config(tokens: TokenService, token: str, expected: Service) -> None:
    assert tokens.lookup(token) == expected


def test_a_token_added_in_the_callers_transaction_rolls_back_with_it(
    db: Database, tokens: TokenService, alice: User
) -> None:
    with pytest.raises(RuntimeError), db.write() as session:
        token, _hashed = tokens.add(session, alice.id, note="", scopes=[])
        raise RuntimeError("the spawn failed")
    assert tokens.lookup(token) is None
    assert token_ids(db) == set()


def test_a_token_added_in_the_callers_transaction_is_stored_as_one_created(
    db: Database, tokens: TokenService, alice: User
) -> None:
    with db.write() as session:
        token, hashed = tokens.add(session, alice.id, note="server", scopes=["identify"])
    row = tokens.lookup(token)
    assert isinstance(row, APIToken) and row.hashed == hashed == hash_token(token)
    assert (row.user_id, row.note, row.scopes, row.prefix) == (
        alice.id,
        "server",
        ["identify"],
        token[:4],
    )
    assert row.created is not None and row.expires_at is None


def test_list_is_per_user(tokens: TokenService, alice: User, bob: User) -> None:
    _, mine = tokens.create(alice.id)
    tokens.create(bob.id)
    assert [t.id for t in tokens.list(alice.id)] == [mine.id]


def test_get_by_public_id(tokens: TokenService, alice: User) -> None:
    _, row = tokens.create(alice.id, note="cli")
    found = tokens.get(alice.id, f"a{row.id}")
    assert (found.id, found.note) == (row.id, "cli")


@pytest.mark.parametrize("token_id", ["b{id}", "a-{id}", "a", "", "{id}", "a{id}0", "a 1"])
def test_get_refuses_bad_ids(tokens: TokenService, alice: User, token_id: str) -> None:
    _, row = tokens.create(alice.id)
    wanted = token_id.format(id=row.id)
    with pytest.raises(NotFound, match=f"No such token {wanted} for user alice"):
        tokens.get(alice.id, wanted)


def test_another_owners_token_is_not_found(tokens: TokenService, alice: User, bob: User) -> None:
    _, row = tokens.create(bob.id)
    with pytest.raises(NotFound, match="for user alice"):
        tokens.get(alice.id, f"a{row.id}")
    with pytest.raises(NotFound):
        tokens.revoke(alice.id, f"a{row.id}")
    assert tokens.get(bob.id, f"a{row.id}").id == row.id


def test_revoke_takes_only_that_token(
    db: Database, tokens: TokenService, alice: User, bob: User
) -> None:
    _, gone = tokens.create(alice.id)
    _, kept = tokens.create(alice.id)
    _, other = tokens.create(bob.id)
    tokens.revoke(alice.id, f"a{gone.id}")
    assert token_ids(db) == {kept.id, other.id}
    with pytest.raises(NotFound):
        tokens.revoke(alice.id, f"a{gone.id}")


def test_revoking_an_oauth_token_revokes_its_clients_tokens(
    db: Database, tokens: TokenService, alice: User, bob: User
) -> None:
    _, first = tokens.create(alice.id, client_id="jupyterhub-user-carol")
    tokens.create(alice.id, client_id="jupyterhub-user-carol")
    _, other_client = tokens.create(alice.id, client_id="jupyterhub-user-dan")
    _, plain = tokens.create(alice.id)
    _, bobs = tokens.create(bob.id, client_id="jupyterhub-user-carol")
    tokens.revoke(alice.id, f"a{first.id}")
    assert token_ids(db) == {other_client.id, plain.id, bobs.id}


def test_revoke_for_server(db: Database, tokens: TokenService, alice: User) -> None:
    with db.write() as session:
        servers = [Server(user_id=alice.id, name=name) for name in ("", "lab")]
        session.add_all(servers)
    _, stopped = tokens.create(alice.id, server_id=servers[0].id)
    _, running = tokens.create(alice.id, server_id=servers[1].id)
    _, own = tokens.create(alice.id)
    with db.write() as session:
        tokens.revoke_for_server(session, servers[0].id)
    assert token_ids(db) == {running.id, own.id}
    assert stopped.id not in {t.id for t in tokens.list(alice.id)}


def test_client_descriptions(db: Database, tokens: TokenService) -> None:
    with db.write() as session:
        session.add_all(
            [
                OAuthClient(id="described", secret_hash="x", redirect_uri="/", description="Lab"),
                OAuthClient(id="bare", secret_hash="x", redirect_uri="/", description=""),
            ]
        )
    assert tokens.client_descriptions(["described", "bare", "gone"]) == {
        "described": "Lab",
        "bare": "bare",
        "gone": "gone",
    }
    assert tokens.client_descriptions([]) == {}


def stored_activity(db: Database, token_id: int) -> object:
    with db.read() as session:
        return session.scalar(select(APIToken.last_activity).where(APIToken.id == token_id))


def test_use_is_recorded_at_most_once_a_minute(
    db: Database, tokens: TokenService, alice: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    token, row = tokens.create(alice.id)
    assert stored_activity(db, row.id) is None
    t0 = utcnow()
    monkeypatch.setattr("app.tokens.utcnow", lambda: t0)
    tokens.lookup(token)
    assert stored_activity(db, row.id) == t0
    # Used again within the minute: no write.
    monkeypatch.setattr("app.tokens.utcnow", lambda: t0 + timedelta(seconds=59))
    found = tokens.lookup(token)
    assert isinstance(found, APIToken) and found.last_activity == t0
    assert stored_activity(db, row.id) == t0
    # A minute later: recorded again.
    monkeypatch.setattr("app.tokens.utcnow", lambda: t0 + timedelta(seconds=61))
    tokens.lookup(token)
    assert stored_activity(db, row.id) == t0 + timedelta(seconds=61)


def test_a_lookup_never_waits_for_another_writer(
    db: Database, db_path: Path, tokens: TokenService, alice: User
) -> None:
    token, row = tokens.create(alice.id)
    with closing(sqlite3.connect(db_path, isolation_level=None)) as other:
        other.execute("BEGIN IMMEDIATE")  # another process writing
        found = tokens.lookup(token)
        other.execute("ROLLBACK")
    # Answered without the write: the use is noted at a later lookup instead.
    assert isinstance(found, APIToken) and found.id == row.id
    assert stored_activity(db, row.id) is None
    tokens.lookup(token)
    assert stored_activity(db, row.id) is not None


def stored_user_activity(db: Database, user_id: int) -> object:
    with db.read() as session:
        return session.scalar(select(User.last_activity).where(User.id == user_id))


def test_a_users_token_is_their_activity_and_a_servers_own_token_is_not(
    db: Database, tokens: TokenService, alice: User, bob: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    mine, _ = tokens.create(alice.id)
    with db.write() as session:
        server = Server(user_id=bob.id, name="")
        session.add(server)
        session.flush()
        server_id = server.id
    servers_own, _ = tokens.create(bob.id, server_id=server_id)
    t0 = utcnow()
    monkeypatch.setattr("app.tokens.utcnow", lambda: t0)
    tokens.lookup(mine)
    tokens.lookup(servers_own)
    assert stored_user_activity(db, alice.id) == t0
    assert stored_user_activity(db, bob.id) is None
    # Activity never moves back: a later server report stays when the token is used.
    later = t0 + timedelta(minutes=5)
    with db.write() as session:
        session.get(User, alice.id).last_activity = later  # type: ignore[union-attr]
    monkeypatch.setattr("app.tokens.utcnow", lambda: t0 + timedelta(minutes=2))
    tokens.lookup(mine)
    assert stored_user_activity(db, alice.id) == later
