"""app/db.py: SQLite settings, transactions, and the write lock greenlets need."""

from __future__ import annotations

from pathlib import Path

import gevent
import pytest
from sqlalchemy import text

from app.db import Database


@pytest.fixture
def db(tmp_path: Path) -> Database:
    database = Database(f"sqlite:///{tmp_path}/test.sqlite")
    with database.write() as session:
        session.execute(text("CREATE TABLE t (n INTEGER)"))
    return database


@pytest.mark.parametrize(
    ("pragma", "expected"),
    [("journal_mode", "wal"), ("foreign_keys", 1), ("busy_timeout", 5000), ("synchronous", 1)],
)
def test_sqlite_settings(db: Database, pragma: str, expected: object) -> None:
    with db.read() as session:
        assert session.execute(text(f"PRAGMA {pragma}")).scalar() == expected


def test_write_commits_and_read_sees_it(db: Database) -> None:
    with db.write() as session:
        session.execute(text("INSERT INTO t VALUES (1)"))
    with db.read() as session:
        assert session.execute(text("SELECT count(*) FROM t")).scalar() == 1


def test_a_failed_write_stores_nothing(db: Database) -> None:
    with pytest.raises(RuntimeError), db.write() as session:
        session.execute(text("INSERT INTO t VALUES (1)"))
        raise RuntimeError("bad input")
    with db.read() as session:
        assert session.execute(text("SELECT count(*) FROM t")).scalar() == 0


def test_greenlets_that_yield_inside_a_write_do_not_lock_each_other(db: Database) -> None:
    # Without the per-process write lock, the second greenlet's BEGIN IMMEDIATE
    # would busy-wait (a real sleep) on the first one, which cannot run: "locked".
    def writer(n: int) -> None:
        with db.write() as session:
            session.execute(text("INSERT INTO t VALUES (:n)"), {"n": n})
            gevent.sleep(0.01)

    greenlets = [gevent.spawn(writer, n) for n in range(20)]
    gevent.joinall(greenlets, timeout=30, raise_error=True)
    with db.read() as session:
        assert session.execute(text("SELECT count(*) FROM t")).scalar() == 20
