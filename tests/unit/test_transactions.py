"""tests/transactions.py: what the counts of an action count."""

from __future__ import annotations

from sqlalchemy import select, update

from app.db import Database
from app.models import User
from app.users import UserService
from tests.transactions import counting


def test_a_read_and_a_write_are_counted_apart(db: Database) -> None:
    UserService(db).get_or_create("alice")
    with counting(db.engine) as counts:
        with db.read() as session:
            session.scalar(select(User.id))
        with db.write() as session:
            session.execute(update(User).values(admin=True))
            session.execute(update(User).values(admin=False))
    assert counts.figures() == {"transactions": 2, "writes": 1, "statements": 3}, counts.sql


def test_a_session_that_runs_nothing_is_no_transaction(db: Database) -> None:
    with counting(db.engine) as counts, db.read():
        pass
    assert counts.figures() == {"transactions": 0, "writes": 0, "statements": 0}
