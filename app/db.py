"""Engine and sessions; the per-process write lock that SQLite needs under gevent.

Transactions are short and never wrap network I/O: ``read()`` for lookups,
``write()`` for changes. Objects come back detached but loaded
(``expire_on_commit=False``), so they can be used after the block.

Write transactions are serialised across every worker and host, so a
check-then-write (the spawn claim, the lease, get-or-create) is atomic: on
SQLite by ``BEGIN IMMEDIATE``, on PostgreSQL by a transaction-scoped advisory
lock taken first thing (no serialization failures to retry; reads never wait).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import gevent.lock
from flask import Flask, current_app
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import QueuePool

from app.config import get_settings

# pg_advisory_xact_lock key of FlaskHub's write transactions (any constant bigint;
# advisory locks are per database).
PG_WRITE_LOCK_KEY = 0x466C61736B487562  # "FlaskHub"
# How long a PostgreSQL write waits for the lock before failing (SQLite: busy_timeout).
PG_WRITE_LOCK_TIMEOUT = "10s"
# SQLite connections kept per process, and how many more concurrent greenlets may open.
SQLITE_POOL_SIZE = 8
SQLITE_POOL_OVERFLOW = 64


class Database:
    """An engine, a session factory and the write lock of this process."""

    def __init__(self, url: str) -> None:
        self.is_sqlite = url.startswith("sqlite")
        self.is_postgresql = url.startswith("postgresql")
        self.engine = make_engine(url)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)
        # SQLite's busy wait is a real sleep that freezes every greenlet of the
        # worker; serialising writers inside the process avoids it entirely.
        self.write_lock = gevent.lock.RLock()

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A session for lookups; rolled back at the end."""
        with self.sessions() as session:
            yield session

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A session whose changes are committed at the end, under the write lock."""
        with self.write_lock, self.sessions() as session:
            if self.is_sqlite:
                # Take the write lock at the start, so check-then-write is atomic
                # across worker processes too.
                session.connection(execution_options={"flaskhub_immediate": True})
            elif self.is_postgresql:
                # The same across workers and hosts: one writer at a time,
                # released at commit or rollback. Bounded, so a stuck holder
                # fails the request instead of hanging it.
                session.execute(text(f"SET LOCAL lock_timeout = '{PG_WRITE_LOCK_TIMEOUT}'"))
                session.execute(
                    text("SELECT pg_advisory_xact_lock(:key)"), {"key": PG_WRITE_LOCK_KEY}
                )
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise

    def dispose(self) -> None:
        """Close pooled connections (after fork, at exit)."""
        self.engine.dispose()


def make_engine(url: str) -> Engine:
    """An engine; on SQLite: WAL, a busy timeout, foreign keys, and BEGIN issued by us."""
    if not url.startswith("sqlite"):
        return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)
    # A pool per process: a new connection costs its PRAGMAs (~1 ms) on every request.
    # Greenlets take turns on one thread, so a connection may move between them.
    engine = create_engine(
        url,
        connect_args={"timeout": 5, "check_same_thread": False},
        poolclass=QueuePool,
        pool_size=SQLITE_POOL_SIZE,
        max_overflow=SQLITE_POOL_OVERFLOW,
    )

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection: Any, _record: Any) -> None:
        # pysqlite's own transaction handling would defer BEGIN; we issue it.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=5000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Any) -> None:
        immediate = conn.get_execution_options().get("flaskhub_immediate")
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


def init_app(app: Flask) -> None:
    """Attach the Database to the app as app.extensions['flaskhub.db']."""
    app.extensions["flaskhub.db"] = Database(get_settings(app).db_url)


def get_db(app: Flask | None = None) -> Database:
    """The Database of the given or current app."""
    return (app or current_app).extensions["flaskhub.db"]
