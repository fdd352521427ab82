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

import logging
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Generic, TypeVar

import gevent
import gevent.lock
from flask import Flask, current_app
from sqlalchemy import (
    Column,
    CompoundSelect,
    Connection,
    CursorResult,
    Dialect,
    Engine,
    Select,
    create_engine,
    event,
    inspect,
    text,
)
from sqlalchemy.exc import DisconnectionError, InterfaceError, OperationalError
from sqlalchemy.orm import Session, make_transient_to_detached, sessionmaker
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.pool import PoolProxiedConnection, QueuePool

from app.config import get_settings

# pg_advisory_xact_lock key of FlaskHub's write transactions (any constant bigint;
# advisory locks are per database).
PG_WRITE_LOCK_KEY = 0x466C61736B487562  # "FlaskHub"
# How long a write waits for the write lock before failing.
WRITE_LOCK_TIMEOUT = 10.0
PG_WRITE_LOCK_TIMEOUT = f"{WRITE_LOCK_TIMEOUT:g}s"
# SQLite: the longest nap between two tries of BEGIN IMMEDIATE.
SQLITE_RETRY_MAX_DELAY = 0.05
# SQLite connections kept per process, and how many more concurrent greenlets may open.
SQLITE_POOL_SIZE = 8
SQLITE_POOL_OVERFLOW = 64
# How long a write that must outlive an outage (a spawn's outcome) waits for the database.
OUTCOME_WAIT_SECONDS = 300.0

T = TypeVar("T")
# A prebuilt SELECT (Database.rows).
Query = Select[Any] | CompoundSelect
M = TypeVar("M")


class DatabaseUnavailable(RuntimeError):
    """The database did not answer, or its write lock stayed taken too long."""


# What a visitor is told when the database does not answer (the driver's own message
# names hosts and ports: it goes to the log, as the cause of DatabaseUnavailable).
UNREACHABLE = "The hub's database is unreachable right now; try again in a moment."


# The errors that mean "the database cannot be used now" (down, unreachable, locked)
# rather than a bug: answered with 503, and the reconcile loop waits them out.
DATABASE_DOWN = (DatabaseUnavailable, OperationalError, InterfaceError, DisconnectionError)


class Database:
    """An engine, a session factory and the write lock of this process."""

    def __init__(self, url: str) -> None:
        self.is_sqlite = url.startswith("sqlite")
        self.is_postgresql = url.startswith("postgresql")
        self.engine = make_engine(url)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)
        # Serialising writers inside the process: only one greenlet at a time waits
        # for (SQLite) or holds the database's write lock.
        self.write_lock = gevent.lock.RLock()
        # The statements rows() runs, compiled for this database once.
        self._prepared: dict[Query, Prepared] = {}
        # SQLite: the connection of rows() and value(), this process's own.
        self._reader: PoolProxiedConnection | None = None

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A session for lookups; rolled back at the end."""
        with self.sessions() as session:
            yield session

    @contextmanager
    def connect(self) -> Iterator[Connection]:
        """A connection for prebuilt Core lookups (no Session: cheaper); rolled back at
        the end."""
        with self.engine.connect() as conn:
            yield conn

    def value(self, sql: str) -> Any:
        """The first column of the first row of a fixed statement (no parameters), asked
        through the driver itself (for the one read of every request, app.identities)."""
        rows = self._through_driver(sql, ())
        return rows[0][0] if rows else None

    def rows(self, statement: Query, params: dict[str, Any]) -> list[tuple[Any, ...]]:
        """The rows of a prebuilt SELECT, each value as SQLAlchemy would give it, asked
        through the driver itself: SQLAlchemy's execution (a Connection, its transaction,
        the result machinery) costs several times the query on the hottest reads. One
        statement, so one snapshot without a transaction of ours."""
        prepared = self._prepared.get(statement)
        if prepared is None:
            prepared = self._prepared[statement] = Prepared(statement, self.engine.dialect)
        found = self._through_driver(prepared.sql, prepared.parameters(params))
        return [prepared.process(row) for row in found]

    def _through_driver(self, sql: str, parameters: Any) -> list[Any]:
        """fetchall() of one statement on a driver cursor; DatabaseUnavailable if the
        database does not answer."""
        if self.is_sqlite:
            return self._sqlite_read(sql, parameters)
        try:
            # The pool's own connect raises the driver's error, not SQLAlchemy's.
            fairy = self.engine.raw_connection()
        except self.engine.dialect.loaded_dbapi.Error as e:
            raise DatabaseUnavailable(UNREACHABLE) from e
        try:
            cursor = fairy.cursor()
            cursor.execute(sql, parameters)
            rows = cursor.fetchall()
            cursor.close()
        except self.engine.dialect.loaded_dbapi.Error as e:
            # A connection the driver gave up on is not put back in the pool.
            if self.engine.dialect.is_disconnect(e, fairy.dbapi_connection, None):
                fairy.invalidate(e)
            raise DatabaseUnavailable(UNREACHABLE) from e
        finally:
            fairy.close()
        return list(rows)

    def _sqlite_read(self, sql: str, parameters: Any) -> list[Any]:
        """One statement on this process's own SQLite reader connection (autocommit: the
        statement is its snapshot). Greenlets cannot interleave on it: sqlite3 never
        yields to gevent between execute() and fetchall(), and no pool is crossed."""
        if self._reader is None:
            # Made by the pool (its PRAGMAs), then taken out of it for good.
            self._reader = self.engine.raw_connection()
            self._reader.detach()
        try:
            cursor = self._reader.cursor()
            cursor.execute(sql, parameters)
            rows = cursor.fetchall()
            cursor.close()
        except sqlite3.Error as e:
            reader, self._reader = self._reader, None
            reader.close()
            raise DatabaseUnavailable(UNREACHABLE) from e
        return list(rows)

    @contextmanager
    def write(self, *, wait: bool = True) -> Iterator[Session]:
        """A session whose changes are committed at the end, under the write lock.

        With wait=False, DatabaseUnavailable at once if another writer holds the lock
        (for writes that may be skipped, such as noting when a token was used).
        """
        if not self.write_lock.acquire(blocking=wait):
            raise DatabaseUnavailable("Another write is in progress in this process.")
        try:
            with self.sessions() as session:
                self._take_write_lock(session, wait)
                try:
                    yield session
                    session.commit()
                except BaseException:
                    session.rollback()
                    raise
        finally:
            self.write_lock.release()

    def _take_write_lock(self, session: Session, wait: bool) -> None:
        """The database's own write lock, first thing, so that check-then-write is atomic
        across worker processes and hosts too."""
        if self.is_sqlite:
            timeout = None if wait else 0.0
            session.connection(
                execution_options={"flaskhub_immediate": True, "flaskhub_timeout": timeout}
            )
        elif self.is_postgresql and wait:
            # One writer at a time across workers and hosts, released at commit or
            # rollback. Bounded, so a stuck holder fails the request instead of hanging it.
            session.execute(text(f"SET LOCAL lock_timeout = '{PG_WRITE_LOCK_TIMEOUT}'"))
            session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": PG_WRITE_LOCK_KEY})
        elif self.is_postgresql:
            taken = session.scalar(
                text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": PG_WRITE_LOCK_KEY}
            )
            if not taken:
                raise DatabaseUnavailable("Another write is in progress.")

    def ping(self) -> bool:
        """Whether the database answers a query now (for health checks); never raises."""
        try:
            with self.read() as session:
                session.execute(text("SELECT 1"))
            return True
        except Exception as e:  # the drivers' errors vary: any of them means "not healthy"
            logging.getLogger(__name__).warning("Database health check failed: %s", e)
            return False

    def dispose(self) -> None:
        """Close pooled connections (after fork, at exit), and the SQLite reader."""
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.close()
        self.engine.dispose()


class Prepared:
    """A SELECT compiled once for a dialect: its SQL, how its parameters are passed, and
    SQLAlchemy's own processing of each result column (dates, JSON, booleans)."""

    def __init__(self, statement: Query, dialect: Dialect) -> None:
        compiled = statement.compile(dialect=dialect)
        self.sql = str(compiled)
        self.positions = compiled.positiontup if dialect.positional else None
        for name, bind in compiled.binds.items():
            if bind.type.dialect_impl(dialect).bind_processor(dialect) is not None:
                raise TypeError(f"{name}: only parameters the driver takes as they are")
        columns = statement.selected_columns
        self.processors = [
            column.type.dialect_impl(dialect).result_processor(dialect, None) for column in columns
        ]

    def parameters(self, params: dict[str, Any]) -> Any:
        if self.positions is None:
            return params
        return tuple(params[name] for name in self.positions)

    def process(self, row: Sequence[Any]) -> tuple[Any, ...]:
        return tuple(
            value if process is None else process(value)
            for process, value in zip(self.processors, row, strict=True)
        )


def rows_changed(result: Any) -> int:
    """How many rows an UPDATE or DELETE (a Session's or a Connection's result) changed."""
    assert isinstance(result, CursorResult)
    return result.rowcount


class Loader(Generic[M]):
    """Objects of an ORM class built from its columns selected with Core, as a Session
    would load them and close: detached, with no change history, and any
    relationship not set with `set_committed_value` raising when used. For the hottest
    lookups, where a Session costs more than the statement."""

    def __init__(self, cls: type[M]) -> None:
        mapper = inspect(cls)
        # As a Session's query: deferred columns (a user's auth state) left unread.
        loaded = [prop for prop in mapper.column_attrs if not prop.deferred]
        self.columns: tuple[Column[Any], ...] = tuple(prop.columns[0] for prop in loaded)
        self._keys = tuple(prop.key for prop in loaded)
        self._new = mapper.class_manager.new_instance

    def __call__(self, values: Sequence[Any]) -> M:
        """The object of one row's values (in the order of `columns`)."""
        obj = self._new()
        for key, value in zip(self._keys, values, strict=True):
            set_committed_value(obj, key, value)
        make_transient_to_detached(obj)
        return obj


def make_engine(url: str) -> Engine:
    """An engine; on SQLite: WAL, foreign keys, and BEGIN issued by us.

    SQLite's own busy wait sleeps in C and would freeze every greenlet of the
    worker while another process writes: it is off (busy_timeout 0), and
    ``BEGIN IMMEDIATE`` is retried cooperatively instead (`begin_immediate`).
    """
    if not url.startswith("sqlite"):
        return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)
    # A pool per process: a new connection costs its PRAGMAs (~1 ms) on every request.
    # Greenlets take turns on one thread, so a connection may move between them.
    engine = create_engine(
        url,
        connect_args={"timeout": 0, "check_same_thread": False},
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
        cursor.execute("PRAGMA busy_timeout=0")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Any) -> None:
        options = conn.get_execution_options()
        if options.get("flaskhub_immediate"):
            begin_immediate(conn.connection.driver_connection, options.get("flaskhub_timeout"))
        else:
            # On the driver's connection: SQLAlchemy's execution path would cost more
            # than the BEGIN itself, on every read.
            conn.connection.driver_connection.execute("BEGIN")

    return engine


def begin_immediate(connection: sqlite3.Connection, timeout: float | None = None) -> None:
    """BEGIN IMMEDIATE, retried with gevent naps while another process writes.

    Raises DatabaseUnavailable if the lock is still taken after `timeout` seconds
    (default WRITE_LOCK_TIMEOUT).
    """
    timeout = WRITE_LOCK_TIMEOUT if timeout is None else timeout
    deadline = time.monotonic() + timeout
    delay = 0.001
    while True:
        try:
            connection.execute("BEGIN IMMEDIATE")
            return
        except sqlite3.OperationalError as e:
            if e.sqlite_errorcode not in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
                raise
            if time.monotonic() >= deadline:
                raise DatabaseUnavailable(
                    f"The database stayed locked by another process for {timeout:g} seconds; "
                    "try again (if it keeps happening, look for a hub process stuck in a write)."
                ) from e
        gevent.sleep(delay)
        delay = min(delay * 2, SQLITE_RETRY_MAX_DELAY)


def when_reachable(call: Callable[[], T], timeout: float = OUTCOME_WAIT_SECONDS) -> T:
    """call(), tried again with gevent naps while the database is unreachable, for up to
    `timeout` seconds: for writes that must not be lost to a short outage (a spawn's
    outcome, which nobody else would record while its process lives)."""
    deadline = time.monotonic() + timeout
    delay = 0.25
    while True:
        try:
            return call()
        except DATABASE_DOWN:
            if time.monotonic() + delay > deadline:
                raise
        gevent.sleep(delay)
        delay = min(delay * 2, 5.0)


def init_app(app: Flask) -> None:
    """Attach the Database to the app as app.extensions['flaskhub.db']."""
    app.extensions["flaskhub.db"] = Database(get_settings(app).db_url)


def get_db(app: Flask | None = None) -> Database:
    """The Database of the given or current app."""
    return (app or current_app).extensions["flaskhub.db"]
