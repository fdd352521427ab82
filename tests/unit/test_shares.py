"""app.shares: the server filter, granting and revoking, group shares, share codes."""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, update

from app.db import Database
from app.grants import granted_scopes
from app.groups import GroupService
from app.models import Server, ShareCode, utcnow
from app.outcomes import Invalid, NotFound
from app.scopes import DEFAULT_ROLES
from app.shares import ShareService, apply_filter, filtered
from app.users import UserService
from tests.transactions import counting

ACCESS = "access:servers!server=alice/"


def shared_scopes(db: Database, user_id: int) -> list[str]:
    """What a user was granted beyond the user role: here, what was shared with them."""
    return [s for s in granted_scopes(db, user_id) if s not in DEFAULT_ROLES["user"]]


@pytest.fixture
def shares(db: Database) -> ShareService:
    return ShareService(db)


@pytest.fixture
def server(db: Database) -> Server:
    users = UserService(db)
    alice = users.get_or_create("alice")
    for name in ("bob", "carol"):
        users.get_or_create(name)
    with db.write() as session:
        row = Server(user_id=alice.id, name="")
        session.add(row)
        session.flush()
        server_id = row.id
    with db.read() as session:
        found = session.get(Server, server_id)
        assert found is not None
        return found


def user_id(db: Database, name: str) -> int:
    user = UserService(db).get(name)
    assert user is not None
    return user.id


@pytest.mark.parametrize(
    ("scopes", "expected"),
    [
        (["access:servers"], [ACCESS]),
        ([ACCESS, "read:servers"], [ACCESS, "read:servers!server=alice/"]),
    ],
)
def test_apply_filter(scopes: list[str], expected: list[str]) -> None:
    assert apply_filter(scopes, "alice", "") == expected


@pytest.mark.parametrize(
    ("scopes", "says"),
    [
        (["access:servers!server=bob/"], "!server=bob/ not allowed"),
        (["access:servers!user=alice"], "!user=alice not allowed"),
        (["no-such-scope"], "no-such-scope"),
    ],
)
def test_apply_filter_refuses(scopes: list[str], says: str) -> None:
    with pytest.raises(Invalid, match=says):
        apply_filter(scopes, "alice", "")


def test_grant_adds_and_revoke_takes_back(
    db: Database, shares: ShareService, server: Server
) -> None:
    bob = user_id(db, "bob")
    shares.grant(server, [ACCESS], user_id=bob, group_id=None)
    share = shares.grant(server, ["read:servers!server=alice/"], user_id=bob, group_id=None)
    # Stored without the filter, which is the server's as named when read.
    assert share.scopes == ["access:servers", "read:servers"]
    assert filtered(share.scopes, share.server) == [ACCESS, "read:servers!server=alice/"]
    assert sorted(shared_scopes(db, bob)) == [ACCESS, "read:servers!server=alice/"]
    left = shares.revoke(server, [ACCESS], user_id=bob, group_id=None)
    assert left is not None and left.scopes == ["read:servers"]
    assert shares.revoke(server, None, user_id=bob, group_id=None) is None
    assert shared_scopes(db, bob) == []


def test_a_group_share_reaches_members_only(
    db: Database, shares: ShareService, server: Server
) -> None:
    team = GroupService(db).create("team", members=["carol"])
    shares.grant(server, [ACCESS], user_id=None, group_id=team.id)
    assert shared_scopes(db, user_id(db, "carol")) == [ACCESS]
    assert shared_scopes(db, user_id(db, "bob")) == []
    rows, total = shares.with_user(user_id(db, "carol"), 0, 10)
    assert total == 1 and rows[0].group is not None and rows[0].group.name == "team"


def test_a_code_is_exchanged_by_others_until_it_expires(
    db: Database, shares: ShareService, server: Server
) -> None:
    row, code = shares.new_code(server, [ACCESS], 3600)
    with pytest.raises(Invalid, match="yourself"):
        shares.exchange(code, server.user_id)
    share = shares.exchange(code, user_id(db, "bob"))
    assert filtered(share.scopes, share.server) == [ACCESS]
    shares.exchange(code, user_id(db, "carol"))
    codes, _total = shares.codes(server.user_id, None, 0, 10)
    assert [(c.id, c.exchange_count) for c in codes] == [(row.id, 2)]
    with db.write() as session:
        expired = utcnow() - timedelta(seconds=1)
        session.execute(update(ShareCode).where(ShareCode.id == row.id).values(expires_at=expired))
    with pytest.raises(Invalid, match="unknown or expired"):
        shares.exchange(code, user_id(db, "bob"))
    assert shares.codes(server.user_id, None, 0, 10) == ([], 0)


def test_delete_codes_by_code_or_id(db: Database, shares: ShareService, server: Server) -> None:
    first, code = shares.new_code(server, [ACCESS], 60)
    second, _ = shares.new_code(server, [ACCESS], 60)
    shares.delete_codes(server.id, code=code)
    with pytest.raises(NotFound):
        shares.delete_codes(server.id, code=code)
    with pytest.raises(NotFound):
        shares.delete_codes(server.id, code_id="sc_x")
    shares.delete_codes(server.id, code_id=f"sc_{second.id}")
    assert shares.codes(server.user_id, server.id, 0, 10) == ([], 0)
    assert first.id != second.id


RACING_CHANGES = {
    "revoked": "DELETE FROM share_codes WHERE id = ?",
    "expired": "UPDATE share_codes SET expires_at = '2000-01-01 00:00:00' WHERE id = ?",
}


@pytest.mark.parametrize("change", sorted(RACING_CHANGES))
def test_a_code_revoked_or_expired_once_checked_is_not_exchanged(
    db: Database, db_path: Path, shares: ShareService, server: Server, change: str
) -> None:
    """The owner revokes the code (or it expires) on another connection the moment the
    exchange has looked at it: the exchange refuses it, or it was exchanged first."""
    row, code = shares.new_code(server, [ACCESS], 3600)
    order: list[str] = []
    racer: list[threading.Thread] = []

    def revoke() -> None:
        with contextlib.closing(sqlite3.connect(db_path, timeout=10)) as other:
            other.execute(RACING_CHANGES[change], (row.id,))
            other.commit()
        order.append(change)

    def looked_at_code(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if "share_codes" in statement and not racer:
            racer.append(threading.Thread(target=revoke))
            racer[0].start()
            # Time for it to land, unless the exchange holds the write lock.
            racer[0].join(timeout=0.5)

    event.listen(db.engine, "after_cursor_execute", looked_at_code)
    event.listen(db.engine, "commit", lambda conn: order.append("commit"))
    try:
        shares.exchange(code, user_id(db, "bob"))
    except Invalid as e:
        assert "unknown or expired" in str(e)
        order.append("refused")
    finally:
        for thread in racer:
            thread.join(timeout=15)
        event.remove(db.engine, "after_cursor_execute", looked_at_code)
    granted = shared_scopes(db, user_id(db, "bob"))
    # Refused with nothing granted, or everything committed before the owner's change.
    assert order in ([change, "refused"], ["commit", change]), order
    assert granted == ([] if "refused" in order else [ACCESS])


@pytest.mark.parametrize("made_up", ["", "sc_1", "x" * 10000])
def test_a_made_up_code_is_refused_and_counts_nothing(
    db: Database, shares: ShareService, server: Server, made_up: str
) -> None:
    row, code = shares.new_code(server, [ACCESS], 3600)
    for attempt in (made_up, code + " ", code.upper()):
        with pytest.raises(Invalid, match="unknown or expired"):
            shares.exchange(attempt, user_id(db, "bob"))
    assert shared_scopes(db, user_id(db, "bob")) == []
    assert [c.exchange_count for c in shares.codes(server.user_id, None, 0, 10)[0]] == [0]


def test_an_exchange_is_one_write_of_four_statements(
    db: Database, shares: ShareService, server: Server
) -> None:
    """Use the code, look for a share to extend, add it, read it back with what its
    model shows (not its users' servers, groups and roles)."""
    _row, code = shares.new_code(server, [ACCESS], 3600)
    bob = user_id(db, "bob")
    with counting(db.engine) as counts:
        share = shares.exchange(code, bob)
    assert counts.figures() == {"transactions": 1, "writes": 1, "statements": 4}, counts.sql
    assert share.server.user.name == "alice" and share.user is not None
    assert share.user.name == "bob" and share.group is None
