"""app/db.py: SQLite settings, transactions, and the write lock greenlets need."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from datetime import UTC
from pathlib import Path

import gevent
import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from app.db import Database, DatabaseUnavailable, begin_immediate, when_reachable
from app.user_views import ONE_USER_VIEW


@pytest.fixture
def db(tmp_path: Path) -> Database:
    database = Database(f"sqlite:///{tmp_path}/test.sqlite")
    with database.write() as session:
        session.execute(text("CREATE TABLE t (n INTEGER)"))
    return database


@pytest.mark.parametrize(
    ("pragma", "expected"),
    [("journal_mode", "wal"), ("foreign_keys", 1), ("busy_timeout", 0), ("synchronous", 1)],
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


@contextlib.contextmanager
def write_lock_held_elsewhere(path: Path) -> Iterator[sqlite3.Connection]:
    """Another connection (as another process would) holds the write lock until the end."""
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as other:
        other.execute("BEGIN IMMEDIATE")
        try:
            yield other
        finally:
            if other.in_transaction:
                other.execute("ROLLBACK")


def test_a_write_waits_for_another_process_without_freezing_the_worker(
    db: Database, tmp_path: Path
) -> None:
    served: list[int] = []

    def write() -> None:
        with db.write() as session:
            session.execute(text("INSERT INTO t VALUES (2)"))

    def read() -> None:
        with db.read() as session:
            served.append(session.execute(text("SELECT count(*) FROM t")).scalar_one())

    with write_lock_held_elsewhere(tmp_path / "test.sqlite") as other:
        other.execute("INSERT INTO t VALUES (1)")
        writer = gevent.spawn(write)
        readers = [gevent.spawn(read) for _ in range(5)]
        # The writer waits (cooperatively) while every reader is served.
        gevent.joinall(readers, timeout=30, raise_error=True)
        assert served == [0] * 5
        assert not writer.dead
        other.execute("COMMIT")
        writer.join(timeout=30)
    assert writer.successful(), writer.exception
    read()
    assert served[-1] == 2


def test_a_write_lock_held_too_long_is_a_clear_error(db: Database, tmp_path: Path) -> None:
    with write_lock_held_elsewhere(tmp_path / "test.sqlite"):
        with db.engine.connect() as conn:
            raw = conn.connection.driver_connection
            with pytest.raises(DatabaseUnavailable, match="locked by another process"):
                begin_immediate(raw, timeout=0.2)
            assert not raw.in_transaction
    # The connections given back to the pool still work.
    test_write_commits_and_read_sees_it(db)


def test_a_write_that_may_not_wait_gives_up_at_once(db: Database, tmp_path: Path) -> None:
    with write_lock_held_elsewhere(tmp_path / "test.sqlite"):
        with pytest.raises(DatabaseUnavailable), db.write(wait=False) as session:
            session.execute(text("INSERT INTO t (n) VALUES (1)"))
    # Nothing was written, and the lock of this process is free again.
    with db.write(wait=False) as session:
        session.execute(text("INSERT INTO t (n) VALUES (2)"))
    with db.read() as session:
        assert session.execute(text("SELECT n FROM t")).scalars().all() == [2]


def test_when_reachable_waits_out_an_outage_and_gives_up_after_its_timeout(
    tmp_path: Path,
) -> None:
    """A write that must outlive an outage: tried again while the database is down."""
    down = Database(f"sqlite:///{tmp_path}/missing-dir/db.sqlite")  # cannot be opened
    tries: list[int] = []

    def select_one() -> None:
        with down.read() as session:
            session.execute(text("SELECT 1"))

    def write() -> str:
        tries.append(1)
        if len(tries) < 3:
            select_one()
        return "written"

    try:
        assert when_reachable(write, timeout=10) == "written"
        assert len(tries) == 3
        with pytest.raises(OperationalError):
            when_reachable(select_one, timeout=0.3)
        with pytest.raises(ValueError):  # not an outage: at once
            when_reachable(lambda: int("x"), timeout=10)
    finally:
        down.dispose()


def test_0015_adds_display_name_and_user_info_and_takes_them_back(tmp_path: Path) -> None:
    """JupyterHub 6's server display_name and user user_info: up, down, and up again."""
    from alembic import command
    from sqlalchemy import create_engine, inspect

    from app.migrations import alembic_config, upgrade

    url = f"sqlite:///{tmp_path / 'hub.sqlite'}"

    def columns(table: str) -> set[str]:
        engine = create_engine(url)
        try:
            return {c["name"] for c in inspect(engine).get_columns(table)}
        finally:
            engine.dispose()

    upgrade(url)
    assert "display_name" in columns("servers") and "user_info" in columns("users")
    command.downgrade(alembic_config(url), "0014")
    assert "display_name" not in columns("servers") and "user_info" not in columns("users")
    upgrade(url)
    assert "display_name" in columns("servers")


def test_rows_through_the_driver_are_as_sqlalchemy_gives_them(db_path: Path) -> None:
    """Database.rows: dates (UTC-aware), JSON, booleans and NULLs as SQLAlchemy's own
    execution of the same statement makes them."""
    db = Database(f"sqlite:///{db_path}")  # the current schema
    with db.write() as session:
        session.execute(
            text(
                "INSERT INTO users (id, name, admin, created, last_activity, cookie_id,"
                " storage_id, user_info) VALUES (1, 'ann', 1, '2026-01-02 03:04:05.678901',"
                " NULL, 'c', 's', '{\"initials\": \"A\"}')"
            )
        )
        session.execute(
            text(
                "INSERT INTO servers (user_id, name, state, url, started, user_options,"
                " spawner_state) VALUES (1, '', 'running', 'http://x', '2026-01-03 00:00:00',"
                " '{\"a\": [1]}', '{}'), (1, 'lab', 'stopped', NULL, NULL, '{}', '{\"pid\": 7}')"
            )
        )
        session.execute(text("INSERT INTO groups (id, name, properties) VALUES (1, 'g', '{}')"))
        session.execute(text("INSERT INTO user_group_map (user_id, group_id) VALUES (1, 1)"))
    with db.connect() as conn:
        expected = [tuple(row) for row in conn.execute(ONE_USER_VIEW, {"name": "ann"})]
    found = db.rows(ONE_USER_VIEW, {"name": "ann"})
    assert found == expected
    assert found[-2][3] is True and found[-2][4].tzinfo is UTC  # admin, created
    assert db.rows(ONE_USER_VIEW, {"name": "nobody"}) == []


def test_a_failed_read_through_the_driver_is_unavailable_then_recovers(db: Database) -> None:
    with pytest.raises(DatabaseUnavailable, match="unreachable") as failed:
        db.value("SELECT value FROM no_such_table")
    # The driver's own words are the cause, for the log (a visitor is not shown them).
    assert "no such table" in str(failed.value.__cause__)
    assert db.value("SELECT count(*) FROM t") == 0  # a new reader
