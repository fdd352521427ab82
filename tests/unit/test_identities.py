"""app/identities.py and migration 0017's triggers, on a real SQLite file at the current
schema: every change that decides who a token is moves auth_generation, in the same
transaction; other writes (activity, server state) do not; a kept Identity is used only
at the generation it was made at."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import text

from app.db import Database
from app.grants import HubGrants
from app.groups import get_groups
from app.identities import Identities
from app.identity import ANONYMOUS
from app.models import APIToken, User
from app.tokens import TokenService
from app.users import UserService, get_users
from tests.transactions import counting

# Rows every change below starts from: alice (2) holds role r1 and is in g1, which
# holds r2; bob (3) shares his server 5 with alice; a service row; tokens of both.
SEED = """
INSERT INTO users (id, name, admin, created, cookie_id, storage_id)
    VALUES (2, 'alice', 0, '2026-01-01', 'c2', 's2'), (3, 'bob', 1, '2026-01-01', 'c3', 's3');
INSERT INTO servers (id, user_id, name, state, spawner_state, user_options)
    VALUES (5, 3, '', 'running', '{}', '{}');
INSERT INTO api_tokens (id, hashed, prefix, user_id, note, scopes, created)
    VALUES (7, 'h7', 'p', 2, '', '[]', '2026-01-01'), (8, 'h8', 'p', 3, '', '[]', '2026-01-01');
INSERT INTO roles (id, name, description, scopes) VALUES (1, 'r1', '', '["read:users"]'),
    (2, 'r2', '', '["list:users"]');
INSERT INTO groups (id, name, properties) VALUES (1, 'g1', '{}'), (2, 'g2', '{}');
INSERT INTO user_role_map (user_id, role_id) VALUES (2, 1);
INSERT INTO user_group_map (user_id, group_id) VALUES (2, 1);
INSERT INTO group_role_map (group_id, role_id) VALUES (1, 2);
INSERT INTO service_role_map (service, role_id) VALUES ('svc', 1);
INSERT INTO shares (id, created_at, owner_id, server_id, scopes, user_id)
    VALUES (1, '2026-01-01', 3, 5, '["access:servers"]', 2);
INSERT INTO services (id, name, admin, url, oauth_redirect_uri, oauth_no_confirm, display,
    oauth_client_allowed_scopes, info) VALUES (1, 'svc', 0, '', '', 0, 1, '[]', '{}');
"""

MOVES = {
    "token revoked": "DELETE FROM api_tokens WHERE id = 7",
    "token scopes changed": "UPDATE api_tokens SET scopes = '[\"identify\"]' WHERE id = 7",
    "token expiry changed": "UPDATE api_tokens SET expires_at = '2026-01-02' WHERE id = 7",
    "user deleted": "DELETE FROM users WHERE id = 2",
    "user renamed": "UPDATE users SET name = 'alicia' WHERE id = 2",
    "admin flag lost": "UPDATE users SET admin = 0 WHERE id = 3",
    "admin flag given": "UPDATE users SET admin = 1 WHERE id = 2",
    "logins ended": "UPDATE users SET cookie_id = 'new' WHERE id = 2",
    "server deleted": "DELETE FROM servers WHERE id = 5",
    "server renamed": "UPDATE servers SET name = 'lab' WHERE id = 5",
    "group deleted": "DELETE FROM groups WHERE id = 1",
    "group renamed": "UPDATE groups SET name = 'g9' WHERE id = 1",
    "member added": "INSERT INTO user_group_map (user_id, group_id) VALUES (2, 2)",
    "member removed": "DELETE FROM user_group_map WHERE user_id = 2",
    "role created": "INSERT INTO roles (id, name, description, scopes) VALUES (3, 'r3', '', '[]')",
    "role changed": "UPDATE roles SET scopes = '[]' WHERE id = 1",
    "role deleted": "DELETE FROM roles WHERE id = 1",
    "role given": "INSERT INTO user_role_map (user_id, role_id) VALUES (3, 1)",
    "role taken": "DELETE FROM user_role_map WHERE user_id = 2",
    "group role given": "INSERT INTO group_role_map (group_id, role_id) VALUES (2, 1)",
    "group role taken": "DELETE FROM group_role_map WHERE group_id = 1",
    "service role given": "INSERT INTO service_role_map (service, role_id) VALUES ('svc', 2)",
    "service role taken": "DELETE FROM service_role_map WHERE service = 'svc'",
    "share given": "INSERT INTO shares (created_at, owner_id, server_id, scopes, group_id)"
    " VALUES ('2026-01-01', 3, 5, '[]', 1)",
    "share narrowed": "UPDATE shares SET scopes = '[]' WHERE id = 1",
    "share revoked": "DELETE FROM shares WHERE id = 1",
    "service created": "INSERT INTO services (name, admin, url, oauth_redirect_uri,"
    " oauth_no_confirm, display, oauth_client_allowed_scopes, info)"
    " VALUES ('svc2', 0, '', '', 0, 1, '[]', '{}')",
    "service changed": "UPDATE services SET admin = 1 WHERE id = 1",
    "service deleted": "DELETE FROM services WHERE id = 1",
}
STAYS = {
    "token used": "UPDATE api_tokens SET last_activity = '2026-01-03' WHERE id = 7",
    "token issued": "INSERT INTO api_tokens (hashed, prefix, user_id, note, scopes, created)"
    " VALUES ('h9', 'p', 2, '', '[]', '2026-01-01')",
    "user seen": "UPDATE users SET last_activity = '2026-01-03' WHERE id = 2",
    "admin set as it was": "UPDATE users SET admin = 1 WHERE id = 3",
    "user created": "INSERT INTO users (name, admin, created, cookie_id, storage_id)"
    " VALUES ('carol', 0, '2026-01-01', 'c4', 's4')",
    "server state": "UPDATE servers SET state = 'stopped', url = NULL WHERE id = 5",
    "server created": "INSERT INTO servers (user_id, name, state, spawner_state, user_options)"
    " VALUES (2, '', 'spawning', '{}', '{}')",
    "group created": "INSERT INTO groups (name, properties) VALUES ('g3', '{}')",
    "group properties": "UPDATE groups SET properties = '{\"a\": 1}' WHERE id = 1",
}


def generation(path: Path) -> int:
    with closing(sqlite3.connect(path)) as conn:
        return int(conn.execute("SELECT value FROM auth_generation WHERE id = 1").fetchone()[0])


def run(path: Path, sql: str) -> None:
    with closing(sqlite3.connect(path)) as conn:
        conn.execute("PRAGMA foreign_keys = ON")
        conn.executescript(sql)


@pytest.fixture
def seeded(db_path: Path) -> Path:
    run(db_path, SEED)
    return db_path


@pytest.mark.parametrize("sql", MOVES.values(), ids=MOVES.keys())
def test_a_change_of_who_or_what_may_moves_the_generation(seeded: Path, sql: str) -> None:
    before = generation(seeded)
    run(seeded, sql)
    assert generation(seeded) > before


@pytest.mark.parametrize("sql", STAYS.values(), ids=STAYS.keys())
def test_activity_and_server_state_leave_the_generation(seeded: Path, sql: str) -> None:
    before = generation(seeded)
    run(seeded, sql)
    assert generation(seeded) == before


def test_the_generation_moves_in_the_changes_own_transaction(seeded: Path) -> None:
    before = generation(seeded)
    with closing(sqlite3.connect(seeded, isolation_level=None)) as conn:
        conn.execute("BEGIN")
        conn.execute(MOVES["token revoked"])
        assert generation(seeded) == before  # not seen by others before the commit
        conn.execute("ROLLBACK")
    assert generation(seeded) == before


# -- Identities ------------------------------------------------------------------------


class Vouching:
    """Every login still vouched for (auth_refresh_age off)."""

    def recheck(self, user: User) -> User | None:
        return user

    def forget(self) -> None:
        pass


@pytest.fixture
def identities(db: Database, grants: HubGrants) -> Identities:
    return Identities(db, TokenService(db), grants, Vouching())


@pytest.fixture
def alice_token(db: Database) -> tuple[str, APIToken]:
    alice = UserService(db).get_or_create("alice")
    return TokenService(db).create(alice.id)


def revoke(db: Database, row: APIToken) -> None:
    with db.write() as session:
        session.execute(text("DELETE FROM api_tokens WHERE id = :id"), {"id": row.id})


def test_a_kept_identity_costs_one_read(
    db: Database, identities: Identities, alice_token: tuple[str, APIToken]
) -> None:
    token, _ = alice_token
    first = identities.of_token(token)
    assert first.name == "alice" and "read:users:name!user=alice" in first.scopes
    with counting(db.engine) as counts:
        again = identities.of_token(token)
    assert again is first
    # The generation is read through the driver, not SQLAlchemy: no statement counted.
    assert counts.statements == 0, counts.sql


def test_a_token_revoked_in_another_process_is_refused_at_once(
    db: Database, identities: Identities, alice_token: tuple[str, APIToken]
) -> None:
    token, row = alice_token
    assert identities.of_token(token).name == "alice"
    revoke(db, row)
    assert identities.of_token(token) is ANONYMOUS


def test_an_unknown_token_is_not_kept(
    db: Database, identities: Identities, alice_token: tuple[str, APIToken]
) -> None:
    # Tokens are created without moving the generation: one unknown now may exist later.
    alice = UserService(db).get_or_create("alice")
    assert identities.of_token("0" * 32) is ANONYMOUS
    token, _ = TokenService(db).create(alice.id)
    assert identities.of_token(token).name == "alice"


def test_a_kept_token_that_expires_is_refused(
    db: Database, identities: Identities, alice_token: tuple[str, APIToken]
) -> None:
    token, row = alice_token
    kept = identities.of_token(token)
    assert kept.token is not None
    kept.token.expires_at = kept.token.created  # as time passing would make it
    assert identities.of_token(token) is ANONYMOUS


def test_a_change_while_an_identity_is_made_is_seen_by_the_next_request(
    db: Database, grants: HubGrants, alice_token: tuple[str, APIToken]
) -> None:
    """The generation is read before the token: a revocation committed between the two
    reads leaves the identity made on the old generation, which the next read drops."""
    token, row = alice_token
    tokens = TokenService(db)
    find = tokens.find

    def find_then_revoke(hashed: str) -> APIToken | object | None:
        found = find(hashed)
        revoke(db, row)  # another process, just after our read of the token
        return found

    tokens.find = find_then_revoke  # type: ignore[method-assign]
    identities = Identities(db, tokens, grants, Vouching())
    assert identities.of_token(token).name == "alice"  # as of its reads
    tokens.find = find  # type: ignore[method-assign]
    assert identities.of_token(token) is ANONYMOUS


def test_a_login_no_longer_vouched_for_is_refused(
    db: Database, grants: HubGrants, alice_token: tuple[str, APIToken]
) -> None:
    token, _ = alice_token

    class Refusing:
        refuse = False

        def recheck(self, user: User) -> User | None:
            return None if self.refuse else user

        def forget(self) -> None:
            pass

    rechecks = Refusing()
    identities = Identities(db, TokenService(db), grants, rechecks)
    assert identities.of_token(token).name == "alice"
    rechecks.refuse = True
    assert identities.of_token(token) is ANONYMOUS


def test_an_older_generation_read_late_does_not_undo_a_newer_one(
    db: Database, identities: Identities, alice_token: tuple[str, APIToken]
) -> None:
    token, row = alice_token
    identities.of_token(token)
    now = identities.generation()
    assert now is not None
    # Another greenlet already read a newer value (and dropped what was kept).
    identities._generation, identities._kept = now + 5, {}
    # Made again (not kept at a generation other than the newest), and correct.
    assert identities.of_token(token).name == "alice"
    assert identities._kept == {}
    revoke(db, row)
    assert identities.of_token(token) is ANONYMOUS


# -- through the app ---------------------------------------------------------------------


TEAM_BOT = {"name": "team-bot", "api_token": "bot-token", "scopes": ["read:users!group=team"]}


def bob_seen(app: Flask, token: str) -> bool:
    """Whether the token may read bob's model."""
    headers = {"Authorization": f"token {token}"}
    return app.test_client().get("/hub/api/users/bob", headers=headers).status_code == 200


@pytest.mark.parametrize("who", ["service", "admin's token"])
def test_a_group_filter_follows_the_group(
    make_app: Callable[..., Flask], make_token: Callable[..., str], who: str
) -> None:
    """Who is in the group a scope names is asked as it is now: a kept token's Identity,
    or a service of the settings (known without the database), answers from the
    memberships of the moment, not of its first request."""
    app = make_app(services=[TEAM_BOT])
    token = "bot-token"
    if who != "service":
        token = make_token(app, "root", admin=True, scopes=["read:users!group=team"])
    get_users(app).create_many(["bob"])
    groups = get_groups(app)
    groups.create("team")
    assert not bob_seen(app, token)
    groups.add_members("team", ["bob"])
    assert bob_seen(app, token)
    groups.remove_members("team", ["bob"])
    assert not bob_seen(app, token)
